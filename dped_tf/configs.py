"""Typed configuration with the named presets of docs/method.md §3-4."""

import dataclasses
import os
import re

from absl import flags

from dped_tf import precision as precisions
from dped_tf.errors import DpedError

# The DPED dataset's own phones (docs/method.md §5). Any camera name of letters, digits,
# `-` and `_` works too: patches made by `dped-tf align` from a user's own photo pairs.
DPED_PHONES = ("iphone", "blackberry", "sony")
# The authors' released generators by name, taken wherever a model is
# (dped_tf.modeling.released).
RELEASED_MODELS = tuple(f"dped:{phone}" for phone in DPED_PHONES)
RELEASED_HELP = ("or dped:iphone|blackberry|sony (the authors' released model, downloaded "
                 "once into Keras' cache)")


def check_model(model):
  """A `--model` value that can be loaded: a released name, or a file that exists;
  DpedError otherwise (before TensorFlow loads; `modeling.factory` reads the file)."""
  if model.startswith("dped:"):
    if model not in RELEASED_MODELS:
      raise DpedError(f"{model}: no such released model (choose from "
                      f"{', '.join(RELEASED_MODELS)})")
  elif not os.path.isfile(model):
    raise DpedError(f"{model}: model file not found")


_PHONE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_phone(name):
  """`name` if it can name a phone folder, else ValueError naming the rule."""
  if not isinstance(name, str) or not _PHONE_NAME.match(name):
    raise ValueError(f"phone name {name!r} must be letters, digits, '-' and '_' "
                     f"(the DPED phones: {', '.join(DPED_PHONES)})")
  return name


def define_phone_flag(fv, help_text, default=None):
  """`--phone`: a DPED phone or any camera name `check_phone` accepts."""
  flags.DEFINE_string("phone", default, f"{help_text} One of the DPED phones "
                      f"({', '.join(DPED_PHONES)}) or any name of letters, digits, - and _.",
                      flag_values=fv)
  flags.register_validator("phone", lambda v: v is None or bool(_PHONE_NAME.match(v)),
                           message="must be letters, digits, '-' and '_'", flag_values=fv)


VGG_PRECISIONS = ("float32", "bfloat16")
NORMS = ("instance", "batch")
TEXTURE_FORMS = ("reference", "paper")
ARCHITECTURES = ("dped", "srcnn", "johnson")   # dped_tf.modeling.factory.KINDS
INITS = ("reference", "identity")       # identity: dped_tf.modeling.warm_start


def option(default, help_text, choices=None, lower_bound=None):
  """A config field that is also a `dped-tf` flag: its help, allowed values and lower
  bound live here once; `dped_tf.config_flags` turns it into the flag and
  `__post_init__` checks the same rules."""
  metadata = {"help": help_text, "choices": choices, "lower_bound": lower_bound}
  return dataclasses.field(default=default, metadata=metadata)


def check_options(config):
  """ValueError naming the first field outside its `option` choices or bound."""
  for f in dataclasses.fields(config):
    value, meta = getattr(config, f.name), f.metadata
    if meta.get("choices") and value not in meta["choices"]:
      raise ValueError(f"unknown {f.name} {value!r} (choose from {', '.join(meta['choices'])})")
    if meta.get("lower_bound") is not None and value < meta["lower_bound"]:
      raise ValueError(f"{f.name} must be >= {meta['lower_bound']}, got {value}")


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Weights of the generator's composite loss (docs/method.md §3)."""
  w_content: float = option(10.0, "Weight of the VGG-19 content loss.", lower_bound=0.0)
  w_color: float = option(0.5, "Weight of the color loss (blurred MSE).", lower_bound=0.0)
  w_texture: float = option(1.0, "Weight of the adversarial texture loss (0: no critic).",
                            lower_bound=0.0)
  w_tv: float = option(2000.0, "Weight of the total variation loss.", lower_bound=0.0)
  w_mse: float = option(0.0, "Weight of the plain pixel MSE (Table 3 ablations).",
                        lower_bound=0.0)
  texture_form: str = option("reference", "Texture loss form: 'reference' (released "
                             "code) or 'paper' (Eq. 5).", choices=TEXTURE_FORMS)
  texture_warmup: int = option(0, "Iterations with the texture loss off "
                               "(docs/method.md §4 advice).", lower_bound=0)

  def __post_init__(self):
    check_options(self)


# `reference`: the released code's defaults. `paper`: Eq. 8 of the second version.
LOSS_PRESETS = {
    "reference": LossConfig(),
    "paper": LossConfig(w_content=1.0, w_color=0.1, w_texture=0.4, w_tv=400.0),
    # The baselines of Table 2 (docs/method.md §6): SRCNN under MSE, Johnson et al. under VGG only.
    "srcnn": LossConfig(w_content=0.0, w_color=0.0, w_texture=0.0, w_tv=0.0, w_mse=1.0),
    "johnson": LossConfig(w_content=1.0, w_color=0.0, w_texture=0.0, w_tv=0.0),
    # `make demo` (10 CPU minutes): color + pixel MSE, no critic, no VGG; see experiments/demo.py.
    "demo": LossConfig(w_content=0.0, w_color=0.5, w_texture=0.0, w_tv=0.0, w_mse=1000.0),
    # ... with the VGG-19 content term, when ImageNet weights are at hand.
    "demo_vgg": LossConfig(w_content=1.0, w_color=0.5, w_texture=0.0, w_tv=0.0, w_mse=1000.0),
    # "Train on the sample" (README): the demo's loss, with the run options of PRESET_OPTIONS.
    "cpu_sample": LossConfig(w_content=0.0, w_color=0.5, w_texture=0.0, w_tv=0.0,
                             w_mse=1000.0),
}
# Presets that also size the run: defaults of the `TrainConfig` options a flag does not set.
# `cpu_sample`: a gain on `dped-tf sample`'s 100 px patches within minutes on a 2-core CPU
# (README "Train on the sample"); no VGG-19 weights needed (no content term).
PRESET_OPTIONS = {
    "cpu_sample": dict(init="identity", batch_size=8, iterations=300, eval_every=100,
                       checkpoint_every=100, log_every=10, precision="auto"),
}
ARCHITECTURE_PRESETS = {"dped": "reference", "srcnn": "srcnn", "johnson": "johnson"}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One training run; defaults are the reference procedure (docs/method.md §4).

  Every field but `phone` and `loss` is a `dped-tf train` flag of the same name
  (`dped_tf.config_flags`); the loss weights come from `--preset` and the LossConfig
  flags."""
  phone: str = "sony"
  loss: LossConfig = LossConfig()
  architecture: str = option("dped", "Network: 'dped' (the generator) or a Table-2 baseline: "
                      "'srcnn' (Dong et al.), 'johnson' (Johnson et al.: the generator under "
                      "the VGG content loss only).", choices=ARCHITECTURES)
  norm: str = option("instance", "Generator normalisation: 'instance' (released code) or "
                     "'batch' (the paper's text); not with --architecture srcnn.", choices=NORMS)
  init: str = option("reference", "Generator start: 'reference' (truncated normal 0.01) or "
                     "'identity' (near the identity map; short CPU runs).", choices=INITS)
  init_from: str = option("", "A generator to start from: a .keras file (from `dped-tf "
                          f"import-checkpoint` or a run) {RELEASED_HELP}; same --architecture and "
                          "--norm; the critic "
                          "and optimizers start fresh. Ignored when the run resumes from "
                          "its checkpoints.")
  batch_size: int = option(50, "Patches per sub-step (the global batch, split over the "
                           "replicas of --strategy).", lower_bound=1)
  patch_size: int = option(100, "Patch side.", lower_bound=1)
  iterations: int = option(20000, "Training iterations.", lower_bound=1)
  learning_rate: float = option(5e-4, "Adam learning rate (both nets).", lower_bound=0.0)
  adam_epsilon: float = option(1e-8, "Adam epsilon (1e-8: the released code's TF1 "
                               "AdamOptimizer).", lower_bound=0.0)
  eval_every: int = option(1000, "Iterations per epoch of fit(): evaluate, save images "
                           "and the generator at the end of each, and at the last "
                           "iteration.", lower_bound=1)
  checkpoint_every: int = option(1000, "Checkpoint every N iterations.", lower_bound=1)
  log_every: int = option(10, "TensorBoard scalars of the iteration's losses, and a "
                          "progress line when the output is not a terminal, every N "
                          "iterations.", lower_bound=1)
  eval_batches: int = option(0, "Test batches per evaluation (0: all).", lower_bound=0)
  precision: str = option("float32", "Compute dtype of the generator and critic: float32 "
                          "(reference), bfloat16 (CPUs with AMX/AVX512-BF16), float16 (GPUs, "
                          "dynamic loss scaling) or auto (float16 on a GPU, bfloat16 where "
                          "the CPU has it, else float32); mixed_bfloat16 and mixed_float16 "
                          "are deprecated spellings.",
                          choices=(*precisions.CHOICES, *precisions.DEPRECATED))
  vgg_weights: str = option("imagenet", "'imagenet' (Keras download/cache), a Keras .h5, "
                            "a MatConvNet imagenet-vgg-verydeep-19.mat, or 'none' (random "
                            "weights: not the paper's content loss).")
  vgg_precision: str = option("float32", "VGG-19 compute dtype: float32 (reference "
                              "numerics, under any policy) or bfloat16 (opt-in: about 1.5x "
                              "faster bf16 iterations on CPU).", choices=VGG_PRECISIONS)
  shuffle_buffer: int = option(10000, "Training records in the shuffle buffer.",
                               lower_bound=1)
  seed: int = option(0, "Random seed: with --deterministic, the same seed gives the same "
                     "weights on one device.", lower_bound=0)

  def __post_init__(self):
    check_options(self)
    check_phone(self.phone)
    object.__setattr__(self, "precision", precisions.canonical(self.precision))
    for name in ("learning_rate", "adam_epsilon"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
    if self.architecture == "srcnn" and self.init == "identity":
      raise ValueError("init 'identity' applies to the DPED generator, not srcnn")
    if self.architecture == "srcnn" and self.norm != "instance":
      raise ValueError(f"norm {self.norm!r}: srcnn has no normalisation layers")
