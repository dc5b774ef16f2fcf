"""One training iteration of the authors' released TF1 code (`train_model.py`) as a plain
`tf.compat.v1` graph, independent of dped_tf's Keras code: the generator of
`authors_graph`, the critic (docs/method.md §2), the VGG-19 content network to relu5_4
with its weights as constants, the losses as the released code computes them (§3:
color on blurred images, texture, content, TV, the critic's cross-entropy) and its two
Adam steps (§4). The reference that experiments/bench_training.py times DPEDTrainer
against, and the oracle of one DPEDTrainer iteration."""

import numpy as np
from scipy import stats
import tensorflow as tf

from dped_tf.testing.authors_graph import authors_generator

IMAGENET_MEAN_RGB = np.array([123.68, 116.779, 103.939], np.float32)
# The released code's weights: content, color, texture, TV (preset `reference`).
REFERENCE_WEIGHTS = {"content": 10.0, "color": 0.5, "texture": 1.0, "tv": 2000.0}
# (filters, kernel, stride, instance norm) of the critic's convolutions.
CRITIC_CONVS = ((48, 11, 4, False), (128, 5, 2, True), (192, 3, 1, True), (192, 3, 1, True),
                (128, 3, 2, True))
# VGG-19 to relu5_4: output channels of each 3x3 conv, "pool" for a 2x2 max-pool.
VGG_LAYOUT = (64, 64, "pool", 128, 128, "pool", 256, 256, 256, 256, "pool",
              512, 512, 512, 512, "pool", 512, 512, 512, 512)


def leaky_relu(x, alpha=0.2):
  return tf.maximum(alpha * x, x)


def authors_critic(image, rng=None, arrays=None):
  """The released `models.adversarial` on a [B, H, W, 1] grayscale batch -> softmax
  [P(DSLR), P(enhanced)]. Variables: `arrays` (`conv{i}/W`, `conv{i}/b`, `norm{i}/shift`,
  `norm{i}/scale`, `fc/W`, `fc/b`, `out/W`, `out/b`) or the released initialisation
  (truncated normal 0.01, biases 0.01) drawn with seeds from `rng`."""

  def variable(name, shape, initial):
    if arrays is not None:
      return tf.compat.v1.Variable(np.asarray(arrays[name], np.float32))
    if initial == "truncated_normal":
      value = tf.random.truncated_normal(shape, stddev=0.01, seed=int(rng.integers(2**31)))
    else:
      value = tf.constant(initial, tf.float32, shape)
    return tf.compat.v1.Variable(value)

  with tf.compat.v1.variable_scope("discriminator"):
    net = image
    for i, (filters, size, stride, norm) in enumerate(CRITIC_CONVS, 1):
      w = variable(f"conv{i}/W", [size, size, net.shape[-1], filters], "truncated_normal")
      b = variable(f"conv{i}/b", [filters], 0.01)
      net = leaky_relu(tf.nn.conv2d(net, w, [1, stride, stride, 1], padding="SAME") + b)
      if norm:
        mu, sigma_sq = tf.nn.moments(net, [1, 2], keepdims=True)
        shift = variable(f"norm{i}/shift", [filters], 0.0)
        scale = variable(f"norm{i}/scale", [filters], 1.0)
        net = scale * (net - mu) / (sigma_sq + 1e-3) ** 0.5 + shift
    flat_size = net.shape[1] * net.shape[2] * net.shape[3]
    flat = tf.reshape(net, [-1, flat_size])
    fc = leaky_relu(tf.matmul(flat, variable("fc/W", [flat_size, 1024], "truncated_normal"))
                    + variable("fc/b", [1024], 0.01))
    return tf.nn.softmax(tf.matmul(fc, variable("out/W", [1024, 2], "truncated_normal"))
                         + variable("out/b", [2], 0.01))


def critic_arrays(discriminator):
  """`authors_critic`'s arrays from a built dped_tf `Discriminator`."""
  arrays = {"fc/W": discriminator.fc.kernel, "fc/b": discriminator.fc.bias,
            "out/W": discriminator.out.kernel, "out/b": discriminator.out.bias}
  for i, (conv, norm) in enumerate(zip(discriminator.convs, discriminator.norms), 1):
    arrays[f"conv{i}/W"], arrays[f"conv{i}/b"] = conv.kernel, conv.bias
    if norm is not None:
      arrays[f"norm{i}/shift"], arrays[f"norm{i}/scale"] = norm.shift, norm.scale
  return {name: np.asarray(value) for name, value in arrays.items()}


def random_vgg_weights(rng):
  """16 (kernel HWIO, bias) pairs of He-scaled random values: the real network's compute."""
  weights, channels = [], 3
  for entry in VGG_LAYOUT:
    if entry != "pool":
      weights.append((rng.normal(0, (2 / (9 * channels)) ** 0.5, (3, 3, channels, entry)),
                      rng.normal(0, 0.01, entry)))
      channels = entry
  return weights


def authors_vgg(image, weights):
  """The released `vgg.net(...)['relu5_4']` on `image` (RGB, 0-255, mean already taken
  off): `weights` as constants, SAME convolutions and 2x2 SAME max-pools."""
  current, convs = image, iter(weights)
  for entry in VGG_LAYOUT:
    if entry == "pool":
      current = tf.nn.max_pool(current, ksize=(1, 2, 2, 1), strides=(1, 2, 2, 1),
                               padding="SAME")
    else:
      kernel, bias = next(convs)
      conv = tf.nn.conv2d(current, tf.constant(np.asarray(kernel, np.float32)),
                          strides=(1, 1, 1, 1), padding="SAME")
      current = tf.nn.relu(tf.nn.bias_add(conv, np.asarray(bias, np.float32).reshape(-1)))
  return current


def gauss_kernel(kernlen=21, nsig=3, channels=3):
  """The released `utils.gauss_kernel`, with scipy's normal CDF."""
  interval = (2 * nsig + 1.) / kernlen
  x = np.linspace(-nsig - interval / 2., nsig + interval / 2., kernlen + 1)
  kern1d = np.diff(stats.norm.cdf(x))
  kernel_raw = np.sqrt(np.outer(kern1d, kern1d))
  kernel = np.array(kernel_raw / kernel_raw.sum(), np.float32).reshape((kernlen, kernlen, 1, 1))
  return np.repeat(kernel, channels, axis=2)


def blur(x):
  return tf.nn.depthwise_conv2d(x, gauss_kernel(21, 3, 3), [1, 1, 1, 1], padding="SAME")


def tensor_size(tensor):
  return int(np.prod(tensor.shape[1:]))


class AuthorsTraining:
  """The released training graph for batches of `batch_size` patches of `patch_size`
  px, in its own graph and session.

  Variables: `arrays` {"generator": `authors_graph.checkpoint_arrays(...)`, "critic":
  `critic_arrays(...)`} and `vgg_weights` (16 (kernel, bias) pairs, RGB input as the
  MatConvNet weights take it), or random ones from `seed`. `iteration` runs one
  iteration: a generator step, then a critic step on another batch.
  """

  def __init__(self, batch_size, patch_size, arrays=None, vgg_weights=None, seed=0,
               learning_rate=5e-4, weights=REFERENCE_WEIGHTS):
    rng = np.random.default_rng(seed)
    self.graph = tf.Graph()
    size = patch_size * patch_size * 3
    with self.graph.as_default():
      self.phone = tf.compat.v1.placeholder(tf.float32, [None, size])
      self.dslr = tf.compat.v1.placeholder(tf.float32, [None, size])
      self.adv = tf.compat.v1.placeholder(tf.float32, [None, 1])
      phone_image = tf.reshape(self.phone, [-1, patch_size, patch_size, 3])
      dslr_image = tf.reshape(self.dslr, [-1, patch_size, patch_size, 3])
      enhanced = authors_generator(phone_image, rng,
                                   arrays and arrays["generator"])
      # The critic sees the enhanced or the DSLR patch, as `adv` says.
      pixels = patch_size * patch_size
      enhanced_gray = tf.reshape(tf.image.rgb_to_grayscale(enhanced), [-1, pixels])
      dslr_gray = tf.reshape(tf.image.rgb_to_grayscale(dslr_image), [-1, pixels])
      adversarial = enhanced_gray * (1 - self.adv) + dslr_gray * self.adv
      predictions = authors_critic(tf.reshape(adversarial, [-1, patch_size, patch_size, 1]),
                                   rng, arrays and arrays["critic"])
      target = tf.concat([self.adv, 1 - self.adv], 1)
      loss_discrim = -tf.reduce_sum(
          target * tf.math.log(tf.clip_by_value(predictions, 1e-10, 1.0)))
      correct = tf.equal(tf.argmax(predictions, 1), tf.argmax(target, 1))
      vgg = vgg_weights if vgg_weights is not None else random_vgg_weights(rng)
      enhanced_vgg = authors_vgg(enhanced * 255 - IMAGENET_MEAN_RGB, vgg)
      dslr_vgg = authors_vgg(dslr_image * 255 - IMAGENET_MEAN_RGB, vgg)
      content_size = tensor_size(dslr_vgg) * batch_size
      dy = enhanced[:, 1:, :, :] - enhanced[:, :patch_size - 1, :, :]
      dx = enhanced[:, :, 1:, :] - enhanced[:, :, :patch_size - 1, :]
      self.terms = {
          "content": 2 * tf.nn.l2_loss(enhanced_vgg - dslr_vgg) / content_size,
          "color": tf.reduce_sum(tf.pow(blur(dslr_image) - blur(enhanced), 2))
                   / (2 * batch_size),
          "texture": -loss_discrim,
          "tv": 2 * (tf.nn.l2_loss(dx) / tensor_size(dx)
                     + tf.nn.l2_loss(dy) / tensor_size(dy)) / batch_size,
      }
      self.terms["g_loss"] = tf.add_n([weights[k] * self.terms[k] for k in weights])
      self.critic = {"d_loss": loss_discrim,
                     "d_accuracy": tf.reduce_mean(tf.cast(correct, tf.float32))}
      networks = tf.compat.v1.global_variables()
      self.generator_variables = [v for v in networks if v.name.startswith("generator")]
      self.critic_variables = [v for v in networks if v.name.startswith("discriminator")]
      self.train_generator = tf.compat.v1.train.AdamOptimizer(learning_rate).minimize(
          self.terms["g_loss"], var_list=self.generator_variables)
      self.train_critic = tf.compat.v1.train.AdamOptimizer(learning_rate).minimize(
          loss_discrim, var_list=self.critic_variables)
      self.session = tf.compat.v1.Session(graph=self.graph)
      self.session.run(tf.compat.v1.global_variables_initializer())

  def _feed(self, phone, dslr, adv):
    return {self.phone: np.reshape(phone, [len(phone), -1]),
            self.dslr: np.reshape(dslr, [len(dslr), -1]), self.adv: adv}

  def iteration(self, phone, dslr, swaps):
    """One iteration on (phone, dslr) [2B, H, W, 3] batches: the generator step on the
    first B pairs (the critic sees enhanced patches), then the critic step on the other B,
    shown the DSLR patch where `swaps` ([B] of 0/1) is 1. Returns the losses, each
    computed before its own step's update."""
    b = len(phone) // 2
    out, _ = self.session.run([self.terms, self.train_generator],
                              self._feed(phone[:b], dslr[:b], np.zeros([b, 1], np.float32)))
    critic, _ = self.session.run([self.critic, self.train_critic], self._feed(
        phone[b:], dslr[b:], np.reshape(swaps, [b, 1]).astype(np.float32)))
    return {k: float(v) for k, v in {**out, **critic}.items()}

  def generator_weights(self):
    """name -> array of the generator's variables now (after the steps run so far)."""
    return {v.name.split(":")[0]: value for v, value in zip(
        self.generator_variables, self.session.run(self.generator_variables))}
