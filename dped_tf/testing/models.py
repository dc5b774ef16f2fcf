"""Generators with random weights, for tests and benchmarks."""

import numpy as np

from dped_tf.modeling.factory import make_generator


def random_weights_model(kind="dped", norm="instance", seed=0):
  """A built generator (`kind` dped/johnson: `Generator(norm)`; srcnn: `SRCNN`) with
  He-scaled random weights and non-trivial norm parameters and statistics, so that every
  layer (and the instance-norm statistics) matters to the output."""
  rng = np.random.default_rng(seed)
  model = make_generator(kind, norm)
  model.build((None, None, None, 3))
  for layer in model.layers if kind == "srcnn" else model.conv_layers():
    k = layer.kernel.shape
    layer.kernel.assign(rng.normal(0, np.sqrt(2 / (k[0] * k[1] * k[2])), k))
    layer.bias.assign(rng.normal(0, 0.1, k[3]))
  for layer in [] if kind == "srcnn" else model.norm_layers():
    if norm == "instance":
      layer.shift.assign(rng.normal(0, 0.3, 64))
      layer.scale.assign(rng.uniform(0.5, 1.5, 64))
    else:
      layer.beta.assign(rng.normal(0, 0.3, 64))
      layer.gamma.assign(rng.uniform(0.5, 1.5, 64))
      layer.moving_mean.assign(rng.normal(0, 0.5, 64))
      layer.moving_variance.assign(rng.uniform(0.5, 2.0, 64))
  return model
