"""Typed configuration with the named presets of docs/method.md §3-4."""

import dataclasses
import re

from dped_tf.precision import POLICIES as PRECISIONS  # Keras policy names

# The DPED dataset's own phones (docs/method.md §5). Any camera name of letters, digits,
# `-` and `_` works too: patches made by `dped-tf align` from a user's own photo pairs.
DPED_PHONES = ("iphone", "blackberry", "sony")
_PHONE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_phone(name):
  """`name` if it can name a phone folder, else ValueError naming the rule."""
  if not isinstance(name, str) or not _PHONE_NAME.match(name):
    raise ValueError(f"phone name {name!r} must be letters, digits, '-' and '_' "
                     f"(the DPED phones: {', '.join(DPED_PHONES)})")
  return name


def define_phone_flag(fv, help_text, default=None):
  """`--phone`: a DPED phone or any camera name `check_phone` accepts."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  flags.DEFINE_string("phone", default, f"{help_text} One of the DPED phones "
                      f"({', '.join(DPED_PHONES)}) or any name of letters, digits, - and _.",
                      flag_values=fv)
  flags.register_validator("phone", lambda v: v is None or bool(_PHONE_NAME.match(v)),
                           message="must be letters, digits, '-' and '_'", flag_values=fv)


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Weights of the generator's composite loss (docs/method.md §3)."""
  w_content: float = 10.0
  w_color: float = 0.5
  w_texture: float = 1.0
  w_tv: float = 2000.0
  w_mse: float = 0.0                # plain pixel MSE, for the Table 3 ablations
  texture_form: str = "reference"   # "reference" (released code) or "paper" (Eq. 4)
  texture_warmup: int = 0           # iterations with the texture loss off (docs/method.md §4 advice)

  def __post_init__(self):
    if self.texture_form not in ("reference", "paper"):
      raise ValueError(f"texture_form must be 'reference' or 'paper', got {self.texture_form!r}")
    if self.texture_warmup < 0:
      raise ValueError("texture_warmup must be >= 0")


# `reference`: the released code's defaults. `paper`: Eq. 8 of the second version.
LOSS_PRESETS = {
    "reference": LossConfig(),
    "paper": LossConfig(w_content=1.0, w_color=0.1, w_texture=0.4, w_tv=400.0),
    # The baselines of Table 2 (docs/method.md §6): SRCNN under MSE, Johnson et al. under VGG only.
    "srcnn": LossConfig(w_content=0.0, w_color=0.0, w_texture=0.0, w_tv=0.0, w_mse=1.0),
    "johnson": LossConfig(w_content=1.0, w_color=0.0, w_texture=0.0, w_tv=0.0),
    # `make demo` (10 CPU minutes): color + pixel MSE, no critic, no VGG; see dped_tf/demo.py.
    "demo": LossConfig(w_content=0.0, w_color=0.5, w_texture=0.0, w_tv=0.0, w_mse=1000.0),
    # ... with the VGG-19 content term, when ImageNet weights are at hand.
    "demo_vgg": LossConfig(w_content=1.0, w_color=0.5, w_texture=0.0, w_tv=0.0, w_mse=1000.0),
}

MODELS = ("dped", "srcnn", "johnson")   # dped_tf.modeling.baselines
MODEL_PRESETS = {"dped": "reference", "srcnn": "srcnn", "johnson": "johnson"}
INITS = ("reference", "identity")       # identity: dped_tf.modeling.warm_start


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One training run; defaults are the reference procedure (docs/method.md §4)."""
  phone: str = "sony"
  loss: LossConfig = LossConfig()
  norm: str = "instance"             # "instance" (released code) or "batch" (paper text)
  batch_size: int = 50
  patch_size: int = 100
  iterations: int = 20000
  learning_rate: float = 5e-4
  eval_every: int = 1000
  checkpoint_every: int = 1000
  eval_batches: int = 0              # 0: the whole test set
  precision: str = "float32"
  vgg_weights: str = "imagenet"
  vgg_precision: str = "float32"     # "bfloat16": faster content term, not the reference
  shuffle_buffer: int = 10000
  seed: int = 0
  model: str = "dped"                # "dped", or a baseline: "srcnn", "johnson"
  init: str = "reference"            # generator start: "reference" or "identity"

  def __post_init__(self):
    if self.model not in MODELS:
      raise ValueError(f"unknown model {self.model!r} (choose from {', '.join(MODELS)})")
    if self.init not in INITS:
      raise ValueError(f"unknown init {self.init!r} (choose from {', '.join(INITS)})")
    if self.init == "identity" and self.model == "srcnn":
      raise ValueError("init 'identity' applies to the DPED generator, not srcnn")
    check_phone(self.phone)
    if self.vgg_precision not in ("float32", "bfloat16"):
      raise ValueError(f"unknown VGG precision {self.vgg_precision!r} (float32 or bfloat16)")
    if self.precision not in PRECISIONS:
      raise ValueError(f"unknown precision {self.precision!r} "
                       f"(choose from {', '.join(PRECISIONS)})")
    for name in ("batch_size", "patch_size", "iterations", "eval_every", "checkpoint_every"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
    if self.learning_rate <= 0:
      raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
