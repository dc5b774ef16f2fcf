"""The released generator as the authors' TF1 graph code (docs/method.md §1): an
independent oracle built from raw checkpoint variables with plain `tf.nn` ops, shared by
the import tests and experiments/bench_inference.py."""

import numpy as np
import tensorflow as tf


def authors_generator(images, rng=None, arrays=None):
  """The generator graph on `images` ([B, H, W, 3] tensor), inside the current TF1 graph.

  `tf.Variable`s are created in layer order, the instance-norm shift and scale unnamed,
  as the authors' code does. Their values: `arrays` (checkpoint name -> array, e.g.
  `checkpoint_arrays(model)`) or random ones of realistic scale from `rng`, so that every
  variable moves the output.
  """
  count = [0]

  def variable(name, random_value):
    key = f"generator/{name}" if name else "generator/Variable" + (
        f"_{count[0]}" if count[0] else "")
    if not name:
      count[0] += 1
    value = arrays[key] if arrays is not None else random_value()
    return tf.compat.v1.Variable(np.asarray(value, np.float32), name=name)

  def conv(x, i, k, cin, cout):
    w = variable(f"W{i}", lambda: rng.normal(0, (k * k * cin) ** -0.5, (k, k, cin, cout)))
    b = variable(f"b{i}", lambda: rng.normal(0, 0.05, cout))
    return tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME") + b

  def instance_norm(x):
    mu, sigma_sq = tf.nn.moments(x, [1, 2], keepdims=True)
    shift = variable(None, lambda: rng.normal(0, 0.2, 64))
    scale = variable(None, lambda: 1 + rng.normal(0, 0.2, 64))
    return scale * (x - mu) / (sigma_sq + 1e-3) ** 0.5 + shift

  with tf.compat.v1.variable_scope("generator"):
    c = tf.nn.relu(conv(images, 1, 9, 3, 64))
    for i in (2, 4, 6, 8):
      y = tf.nn.relu(instance_norm(conv(c, i, 3, 64, 64)))
      c = tf.nn.relu(instance_norm(conv(y, i + 1, 3, 64, 64))) + c
    c = tf.nn.relu(conv(c, 10, 3, 64, 64))
    c = tf.nn.relu(conv(c, 11, 3, 64, 64))
    return tf.nn.tanh(conv(c, 12, 9, 64, 3)) * 0.58 + 0.5


def checkpoint_arrays(model):
  """name -> array of an instance-norm `Generator`, in the released checkpoint's names."""
  arrays = {}
  for i, conv in enumerate(model.conv_layers(), 1):
    arrays[f"generator/W{i}"] = np.asarray(conv.kernel)
    arrays[f"generator/b{i}"] = np.asarray(conv.bias)
  for k, norm in enumerate(model.norm_layers()):
    for n, v in ((2 * k, norm.shift), (2 * k + 1, norm.scale)):
      arrays["generator/Variable" + (f"_{n}" if n else "")] = np.asarray(v)
  return arrays


def session_runner(arrays, shape):
  """A callable images -> enhanced running the TF1 graph of `arrays` in its own
  `tf.compat.v1.Session`, for inputs of `shape` ([B, H, W, 3])."""
  graph = tf.Graph()
  with graph.as_default():
    images = tf.compat.v1.placeholder(tf.float32, shape)
    enhanced = authors_generator(images, arrays=arrays)
    session = tf.compat.v1.Session(graph=graph)
    session.run(tf.compat.v1.global_variables_initializer())
  return lambda x: session.run(enhanced, {images: x})


def write_authors_checkpoint(prefix, image):
  """Saves the TF1 graph's variables with `tf.compat.v1.train.Saver` (names = op names);
  returns (checkpoint names, the graph's output for `image`)."""
  graph = tf.Graph()
  with graph.as_default():
    enhanced = authors_generator(tf.constant(image[None]), np.random.default_rng(1))
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      expected = sess.run(enhanced)[0]
      saver.save(sess, prefix, write_meta_graph=False)
  return {name for name, _ in tf.train.list_variables(prefix)}, expected
