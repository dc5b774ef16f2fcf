"""Numeric precision policies (float32, mixed float16 on GPU, mixed bfloat16 on CPU)."""

from absl import logging
import keras
import tensorflow as tf


def cpu_has_bf16():
  """True when the CPU multiplies bfloat16 natively (AMX or AVX512-BF16)."""
  try:
    with open("/proc/cpuinfo") as f:
      flags = f.read()
  except OSError:
    return False
  return "amx_bf16" in flags or "avx512_bf16" in flags


def set_policy(name):
  """Sets Keras' global dtype policy; warns where the hardware will not gain from it."""
  keras.mixed_precision.set_global_policy(name)
  on_gpu = bool(tf.config.list_physical_devices("GPU"))
  if name == "mixed_bfloat16" and not on_gpu and not cpu_has_bf16():
    logging.warning("mixed_bfloat16 on a CPU without AMX/AVX512-BF16 is emulated and slow")
  if name == "mixed_float16" and not on_gpu:
    logging.warning("mixed_float16 without a GPU is slow on CPUs; use mixed_bfloat16")


def wrap_optimizer(optimizer, policy_name):
  """Dynamic loss scaling for float16 (bfloat16 has float32's range and needs none)."""
  if policy_name == "mixed_float16":
    return keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer
