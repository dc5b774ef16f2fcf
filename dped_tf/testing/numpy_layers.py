"""The generator's layers re-derived with numpy (docs/method.md §1), independently of
dped_tf.modeling: the oracles the model tests compare with."""

import numpy as np


def np_instance_norm(x, scale, shift, eps=1e-3):
  """`scale * (x - mean) / sqrt(var + eps) + shift` over H and W of each image and channel."""
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = x.var(axis=(1, 2), keepdims=True)
  return scale * (x - mean) / np.sqrt(var + eps) + shift
