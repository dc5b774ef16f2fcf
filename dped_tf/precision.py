"""The one precision vocabulary: compute dtype names -> Keras dtype policies.

Every command and flag takes a compute dtype name or `auto` (`CHOICES`): `train
--precision`, `--vgg_precision`, `enhance`/`evaluate`/`serve --precision`. The Keras
policy (`mixed_bfloat16`, ...) is derived here (`POLICY_OF`): training sets it globally
(`set_policy`), inference runs the model cloned under it (`with_precision`). Light to
import (TensorFlow and Keras through `dped_tf.lazy`): the CLI's flag definitions read
these names.
"""

from absl import logging

from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import

keras = lazy_import("keras")
tf = lazy_import("tensorflow")

# compute dtype -> Keras policy (convolutions in the dtype; variables and the model's
# output stay float32)
POLICY_OF = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
CHOICES = ("auto", *POLICY_OF)
# Keras policy names that `train --precision` took before; still accepted, with a warning.
DEPRECATED = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def canonical(name):
  """`name`, or the compute dtype name of a deprecated Keras policy name (with a
  one-line warning)."""
  if name in DEPRECATED:
    logging.warning("precision %r is deprecated; use %r", name, DEPRECATED[name])
    return DEPRECATED[name]
  return name


def cpu_model():
  """The CPU's model name from /proc/cpuinfo ("unknown CPU" where there is none): printed
  beside every speed figure, since the machines differ."""
  try:
    with open("/proc/cpuinfo") as f:
      return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    return "unknown CPU"


def cpu_has_bf16():
  """True when the CPU multiplies bfloat16 natively (AMX or AVX512-BF16)."""
  try:
    with open("/proc/cpuinfo") as f:
      flags = f.read()
  except OSError:
    return False
  return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve(name):
  """A `CHOICES` (or `DEPRECATED`) name -> a compute dtype name; `auto`: float16 on a
  GPU, bfloat16 on a CPU with AMX/AVX512-BF16, else float32."""
  name = canonical(name)
  if name not in CHOICES:
    raise DpedError(f"precision must be one of {', '.join(CHOICES)}, got {name!r}")
  if name != "auto":
    return name
  if tf.config.list_physical_devices("GPU"):
    return "float16"
  return "bfloat16" if cpu_has_bf16() else "float32"


def with_precision(model, name):
  """`model` itself under `name`'s policy, else a copy built under it with the same
  weights (Keras layers take the global policy when they are made)."""
  policy = POLICY_OF[resolve(name)]
  if model.dtype_policy.name == policy:
    return model
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(policy)
  try:
    clone = type(model).from_config(model.get_config())
  finally:
    keras.mixed_precision.set_global_policy(previous)
  clone.build((None, None, None, 3))
  clone.set_weights(model.get_weights())
  return clone


def set_policy(name):
  """Sets Keras' global dtype policy for the compute dtype `name` (not `auto`); warns
  where the hardware will not gain from it."""
  keras.mixed_precision.set_global_policy(POLICY_OF[name])
  on_gpu = bool(tf.config.list_physical_devices("GPU"))
  if name == "bfloat16" and not on_gpu and not cpu_has_bf16():
    logging.warning("bfloat16 on a CPU without AMX/AVX512-BF16 is emulated and slow")
  if name == "float16" and not on_gpu:
    logging.warning("float16 without a GPU is slow on CPUs; use bfloat16")


def wrap_optimizer(optimizer, name):
  """Dynamic loss scaling for float16 (bfloat16 has float32's range and needs none)."""
  if name == "float16":
      return keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer
