"""Training DPED (docs/method.md §4).

- `trainer`: `DPEDTrainer`, the Keras model whose `train_step` is one reference iteration
  (generator step, then critic step) and whose `test_step` scores both test protocols.
- `run`: a run apart from its loop: the strategy, the model folder (one lock), `run.json`,
  the checkpoint a resumed run restores.
- `loop`: `build_trainer` (a `TrainConfig` -> compiled trainer) and `train` /
  `run_training`: `fit()` in epochs of `eval_every` iterations.
- `callbacks`: what a run does that Keras' own callbacks do not (evaluation, checkpoints,
  TensorBoard at the run's iteration, before/after grids, generator export,
  `metrics.jsonl`/`summary.md`, SIGTERM checkpoint).
"""
