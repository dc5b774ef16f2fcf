"""Enhancing photos of any size with bounded memory (docs/method.md §1, 7).

- `tiles`: the tile plan and the stage plan, pure arithmetic (no TensorFlow, no I/O).
- `moments`: whole-image instance-norm statistics combined exactly from tiles.
- `storage`: the maps between stages, in RAM or in temporary files, and the buffers
  that hand windows to TensorFlow without a copy.
- `executor`: `Enhancer`, a generator under one precision: whole-image or exact tiled.
- `memory`: `MemorySettings`, the budget that picks whole or tiled and refuses photos.
- `photo`: the per-photo use case (`enhance_file`) of `dped-tf enhance`, the enhance page
  and the experiments.

The modules are imported by name (`from dped_tf.enhancement import photo`): this file
imports none of them, so that `tiles` and `memory` stay free of TensorFlow.
"""
