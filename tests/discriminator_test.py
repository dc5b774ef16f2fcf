"""The texture critic against docs/method.md §2."""

import numpy as np

from dped_tf.modeling.discriminator import Discriminator


def test_discriminator_shapes_and_flatten_size():
  d = Discriminator()
  probs = d(np.random.default_rng(5).random((3, 100, 100, 1)).astype(np.float32))
  assert probs.shape == (3, 2)
  np.testing.assert_allclose(probs.numpy().sum(axis=1), 1.0, rtol=1e-6)
  assert d.fc.kernel.shape == (128 * 7 * 7, 1024)
  d64 = Discriminator()
  assert d64(np.zeros((1, 64, 64, 1), np.float32)).shape == (1, 2)
  assert d64.fc.kernel.shape == (128 * 4 * 4, 1024)
  convs = 11 * 11 * 48 + 48 + 5 * 5 * 48 * 128 + 128 + 9 * 128 * 192 + 192 + 9 * 192 * 192 \
      + 192 + 9 * 192 * 128 + 128
  norms = 2 * (128 + 192 + 192 + 128)
  dense = 6272 * 1024 + 1024 + 1024 * 2 + 2
  assert d.count_params() == convs + norms + dense
