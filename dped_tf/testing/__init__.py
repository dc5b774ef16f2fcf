"""What the tests, the experiments and the benchmarks share: small data they make, models
with random weights, independent oracles (the authors' TF1 graph, numpy metrics) and a
headless browser. Not used by the library itself.

- `data`: tiny DPED-layout folders and TFRecords cut from a real photo, study folders.
- `models`: a built generator of any kind with random weights that all matter.
- `authors_graph`: the released generator as the authors' TF1 graph code.
- `authors_training`: one training iteration of the released TF1 code (critic, VGG-19,
  losses, two Adam steps) around that generator.
- `numpy_metrics`: PSNR, SSIM, the released MS-SSIM and NCC re-derived with numpy and
  scipy.
- `photo_pairs`: phone + DSLR photo pairs through a known homography (the align tests).
- `numpy_layers`: the generator's instance norm re-derived with numpy.
- `browser`: a `dped-tf` server in a subprocess and headless Chromium (selenium).
- `photos`: synthetic photos of any size (the enhancement tests and benchmarks).
- `bench`: best-of-N timing and commands timed in a subprocess (the benchmarks).
"""
