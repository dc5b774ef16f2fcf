"""`dped-tf` flags generated from the config dataclasses (`configs.option` fields).

Names, defaults, help and allowed values come from the dataclass fields, so a new
`TrainConfig` or `LossConfig` option is a flag without further code.
"""

import dataclasses

from absl import flags

from dped_tf import configs


def _define(fv, field, default, help_text):
  meta = field.metadata
  kind = field.type
  common = dict(flag_values=fv)
  if kind is bool:
    flags.DEFINE_bool(field.name, default, help_text, **common)
  elif kind is int:
    flags.DEFINE_integer(field.name, default, help_text, lower_bound=meta["lower_bound"],
                         **common)
  elif kind is float:
    flags.DEFINE_float(field.name, default, help_text, lower_bound=meta["lower_bound"],
                       **common)
  elif meta["choices"]:
    flags.DEFINE_enum(field.name, default, list(meta["choices"]), help_text, **common)
  else:
    flags.DEFINE_string(field.name, default, help_text, **common)


def option_fields(cls):
  """The fields of a config dataclass that are flags."""
  return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def define_train_flags(fv):
  """`--preset`, one flag per `LossConfig` field (default: the preset's value) and one per
  `TrainConfig` option."""
  flags.DEFINE_enum("preset", None, list(configs.LOSS_PRESETS),
                    "Loss weights: 'reference' (released code), 'paper' (Eq. 8), 'srcnn', "
                    "'johnson', 'demo' (color + MSE), 'demo_vgg', 'cpu_sample' (the demo's loss, "
                    "sized for the sample on a 2-core CPU: --init identity, --batch_size 8, "
                    "300 iterations, --precision auto); default: the --architecture's own "
                    "(dped: reference). The flags below override single values.",
                    flag_values=fv)
  for field in option_fields(configs.LossConfig):
    _define(fv, field, None, f"{field.metadata['help']} Default: the --preset's "
            f"(reference: {field.default}).")
  for field in option_fields(configs.TrainConfig):
    _define(fv, field, field.default, field.metadata["help"])


def train_config_from_flags(fv, **fixed):
  """The `TrainConfig` the flags describe: the preset's loss with the loss flags given
  applied, then every `TrainConfig` option (the preset's `PRESET_OPTIONS` where the flag
  is not given); `fixed` sets the other fields (phone).
  ValueError where a value breaks a rule."""
  sized = configs.PRESET_OPTIONS.get(fv.preset, {})
  options = {f.name: fv[f.name].value if fv[f.name].present or f.name not in sized
             else sized[f.name] for f in option_fields(configs.TrainConfig)}
  loss = configs.LOSS_PRESETS[fv.preset or configs.ARCHITECTURE_PRESETS[options["architecture"]]]
  overrides = {f.name: fv[f.name].value for f in option_fields(configs.LossConfig)
               if fv[f.name].value is not None}
  return configs.TrainConfig(loss=dataclasses.replace(loss, **overrides), **options, **fixed)
