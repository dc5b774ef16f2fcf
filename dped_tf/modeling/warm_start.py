"""Where the generator starts: `--init identity` (near the identity map, a demo option)
or `--init_from MODEL.keras` (a trained or imported generator).

The reference initialisation (truncated normal 0.01) starts the generator at a constant
grey image; with no global skip connection it needs thousands of iterations just to
reproduce its input, far more than a 10-minute CPU budget (on the sample data: 23.7 dB
after 300 iterations against 28 dB for the unprocessed input). `identity_init` keeps the
architecture and only sets starting values: channels 0-2 carry the input through conv1,
conv10 and conv11 (centre tap 1, nothing else feeds them; the input is >= 0, so the ReLUs
pass it); each residual block starts as the identity (the scale of its second norm is 0,
"zero-init residual": the scale still gets gradients); conv12 maps the three carriers
back through the output's `tanh(x) * 0.58 + 0.5` with the slope 1 at mid grey. The other
59 channels keep their reference initialisation. A saved model is an ordinary Generator.
"""

import numpy as np

from dped_tf.errors import DpedError
from dped_tf.modeling.factory import describe, load_generator

CARRIERS = 3


def _carry(conv, gain=1.0):
  kernel, bias = (v.numpy() for v in (conv.kernel, conv.bias))
  c = kernel.shape[0] // 2
  kernel[:, :, :, :CARRIERS] = 0.0
  for i in range(CARRIERS):
    kernel[c, c, i, i] = gain
  bias[:CARRIERS] = 0.0
  conv.kernel.assign(kernel)
  conv.bias.assign(bias)


def identity_init(generator):
  """Sets a built `Generator`'s weights so that it starts close to the identity map."""
  _carry(generator.conv1)
  for block in generator.blocks:
    # InstanceNorm's scale; Keras' BatchNormalization calls it gamma (its `scale` is
    # the flag that creates gamma).
    scale = block.norm_b.gamma if generator.norm == "batch" else block.norm_b.scale
    scale.assign(np.zeros(scale.shape, np.float32))
  _carry(generator.conv10)
  _carry(generator.conv11)
  slope = 1.0 / 0.58  # d/dx of tanh(w x - w / 2) * 0.58 + 0.5 at x = 0.5 is 0.58 w
  kernel = np.zeros(generator.conv12.kernel.shape, np.float32)
  c = kernel.shape[0] // 2
  for i in range(CARRIERS):
    kernel[c, c, i, i] = slope
  generator.conv12.kernel.assign(kernel)
  generator.conv12.bias.assign(np.full(generator.conv12.bias.shape, -slope / 2, np.float32))
  return generator


def init_from_file(generator, path):
  """Copies the weights of the `.keras` generator at `path` into the built `generator`;
  DpedError naming the file where its architecture or norm differs."""
  source = load_generator(path)
  if not source.built:
    source.build((None, None, None, 3))
  shapes = [tuple(w.shape) for w in source.weights]
  if describe(source) != describe(generator) or shapes != [
      tuple(w.shape) for w in generator.weights]:
    raise DpedError(f"{path}: holds {describe(source)}; this run trains {describe(generator)} "
                    "(the weights need the same model and norm)")
  generator.set_weights(source.get_weights())
  return generator
