"""`dped-tf train`: the reference DPED training procedure (docs/method.md §4)."""

import dataclasses
import os

from absl import flags

from dped_tf import configs
from dped_tf.commands import prepare
from dped_tf.errors import DpedError



def define_flags(fv):
  d = configs.TrainConfig()
  configs.define_phone_flag(fv, "Phone to train for.")
  flags.DEFINE_string("dped_dir", "data/dped", "Root of the DPED layout.", flag_values=fv)
  flags.DEFINE_string("tfrecord_dir", None, "TFRecords from `dped-tf prepare` (default "
                      "<dped_dir>/<phone>/tfrecords, converted on first use).", flag_values=fv)
  flags.DEFINE_string("model_dir", None, "Output folder (default runs/<phone>).",
                      flag_values=fv)
  flags.DEFINE_string("vgg_weights", d.vgg_weights, "'imagenet' (Keras download/cache), a "
                      "Keras .h5, a MatConvNet imagenet-vgg-verydeep-19.mat, or 'none' (random "
                      "weights: not the paper's content loss).", flag_values=fv)
  flags.DEFINE_enum("model", d.model, list(configs.MODELS), "Network: 'dped' (the "
                    "generator) or a Table-2 baseline: 'srcnn' (Dong et al.), 'johnson' "
                    "(Johnson et al.: the generator under the VGG content loss only).",
                    flag_values=fv)
  flags.DEFINE_enum("preset", None, list(configs.LOSS_PRESETS),
                    "Loss weights: 'reference' (released code), 'paper' (Eq. 8), 'srcnn', "
                    "'johnson', 'demo' (color + MSE); default: the --model's own "
                    "(dped: reference).", flag_values=fv)
  flags.DEFINE_enum("init", d.init, list(configs.INITS), "Generator start: 'reference' "
                    "(truncated normal 0.01) or 'identity' (near the identity map; "
                    "short CPU runs).", flag_values=fv)
  flags.DEFINE_enum("texture_form", None, ["reference", "paper"],
                    "Override the generator's texture loss form.", flag_values=fv)
  flags.DEFINE_integer("texture_warmup", 0, "Iterations with the texture loss off.",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_enum("norm", d.norm, ["instance", "batch"], "Generator normalisation.",
                    flag_values=fv)
  flags.DEFINE_integer("iterations", d.iterations, "Training iterations.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("batch_size", d.batch_size, "Patches per sub-step (the global batch, "
                       "split over the replicas of --strategy).", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("patch_size", d.patch_size, "Patch side.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_float("learning_rate", d.learning_rate, "Adam learning rate (both nets).",
                     lower_bound=0.0, flag_values=fv)
  flags.DEFINE_integer("eval_every", d.eval_every, "Evaluate, save images and the generator "
                       "every N iterations.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("checkpoint_every", d.checkpoint_every, "Checkpoint every N "
                       "iterations.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("eval_batches", d.eval_batches, "Test batches per evaluation "
                       "(0: all).", lower_bound=0, flag_values=fv)
  flags.DEFINE_enum("vgg_precision", d.vgg_precision, ["float32", "bfloat16"],
                    "VGG-19 compute dtype: float32 (reference numerics, under any policy) or "
                    "bfloat16 (opt-in: about 1.5x faster bf16 iterations on CPU).",
                    flag_values=fv)
  flags.DEFINE_enum("precision", d.precision, list(configs.PRECISIONS), "Numeric policy.",
                    flag_values=fv)
  flags.DEFINE_bool("xla", False, "Compile the train step with XLA.", flag_values=fv)
  flags.DEFINE_integer("seed", d.seed, "Random seed: with --deterministic, the same seed "
                       "gives the same weights on one device.", lower_bound=0, flag_values=fv)
  flags.DEFINE_bool("deterministic", False, "Deterministic TensorFlow ops "
                    "(tf.config.experimental.enable_op_determinism; may be slower on GPU).",
                    flag_values=fv)
  flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                    "tf.distribute strategy: one device, the GPUs of this machine, or the "
                    "machines of TF_CONFIG (every worker runs the same command; the chief "
                    "writes --model_dir).", flag_values=fv)
  flags.mark_flag_as_required("phone", flag_values=fv)


def main(fv, argv):
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  tfrecord_dir = fv.tfrecord_dir or prepare.default_out(fv.dped_dir, fv.phone)
  has_records = os.path.isfile(os.path.join(tfrecord_dir, "meta.json"))
  if not has_records and fv.strategy == "multi_worker":
    raise DpedError(f"{tfrecord_dir}: no TFRecords; with --strategy=multi_worker run "
                    "`dped-tf prepare` first (workers must not convert concurrently)")
  if not has_records and not os.path.isdir(fv.dped_dir):
    raise DpedError(f"{fv.dped_dir}: dataset folder not found (and no TFRecords in "
                    f"{tfrecord_dir})")
  loss = configs.LOSS_PRESETS[fv.preset or configs.MODEL_PRESETS[fv.model]]
  loss = dataclasses.replace(loss, texture_warmup=fv.texture_warmup,
                             texture_form=fv.texture_form or loss.texture_form)
  try:
    cfg = configs.TrainConfig(
        phone=fv.phone, loss=loss, norm=fv.norm, batch_size=fv.batch_size,
        patch_size=fv.patch_size, iterations=fv.iterations, learning_rate=fv.learning_rate,
        eval_every=fv.eval_every, checkpoint_every=fv.checkpoint_every,
        eval_batches=fv.eval_batches, precision=fv.precision, vgg_weights=fv.vgg_weights,
        vgg_precision=fv.vgg_precision,
        seed=fv.seed, model=fv.model, init=fv.init)
  except ValueError as e:
    raise DpedError(str(e)) from None
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from dped_tf import train_lib  # pylint: disable=import-outside-toplevel
  from dped_tf.dataloaders import tfrecords  # pylint: disable=import-outside-toplevel
  from dped_tf.modeling import vgg  # pylint: disable=import-outside-toplevel
  if fv.deterministic:
    tf.config.experimental.enable_op_determinism()
  strategy = train_lib.make_strategy(fv.strategy)
  # Unusable VGG weights fail before any time goes into data conversion.
  with strategy.scope():
    content = vgg.load_content_network(cfg.vgg_weights, seed=cfg.seed,
                                       compute_dtype=cfg.vgg_precision)
  if not has_records:
    print(f"Converting {fv.dped_dir} ({fv.phone}) to TFRecords in {tfrecord_dir}")
    tfrecords.convert_dped_folder(fv.dped_dir, fv.phone, tfrecord_dir, cfg.patch_size)
  try:
    train_lib.train(cfg, tfrecord_dir, fv.model_dir or os.path.join("runs", fv.phone),
                    jit_compile=fv.xla, vgg=content, strategy=strategy)
  except tf.errors.DataLossError as e:
    raise DpedError(f"{tfrecord_dir}: corrupt TFRecords ({e.message.splitlines()[0]}); "
                    "convert again with `dped-tf prepare --overwrite`") from None
