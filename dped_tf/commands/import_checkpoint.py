"""`dped-tf import-checkpoint`: the authors' TF1 generator checkpoint -> `.keras`
(docs/method.md §1)."""

import os

from absl import flags

from dped_tf.errors import DpedError
from dped_tf.fileio import save_keras_atomic
from dped_tf.lazy import lazy_import

interop = lazy_import("dped_tf.interop")

USAGE = "--checkpoint PREFIX --out FILE.keras"
EXAMPLE = ("dped-tf import-checkpoint --checkpoint DPED/models_orig/sony_orig "
           "--out sony_orig.keras")
REQUIRED = ("checkpoint", "out")


def define_flags(fv):
  flags.DEFINE_string("checkpoint", None, "TF1 checkpoint prefix (PREFIX.index + "
                      "PREFIX.data-00000-of-00001), e.g. models_orig/iphone_orig.",
                      flag_values=fv)
  flags.DEFINE_string("out", None, "Output .keras model.", flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Replace an existing output model.", flag_values=fv)


def _prefix(fv):
  return fv.checkpoint[:-len(".index")] if fv.checkpoint.endswith(".index") else fv.checkpoint


def check(fv, argv):
  """The checkpoint and the output file, before TensorFlow loads."""
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  if not fv.out.endswith(".keras"):
    raise DpedError(f"{fv.out}: output must end in .keras")
  if os.path.exists(fv.out) and not fv.overwrite:
    raise DpedError(f"{fv.out}: exists (pass --overwrite to replace it)")
  if not os.path.isfile(_prefix(fv) + ".index"):
    raise DpedError(f"{_prefix(fv)}: not a readable TF checkpoint (no {_prefix(fv)}.index)")


def main(fv, argv):  # pylint: disable=unused-argument  (check read argv)
  prefix = _prefix(fv)
  generator = interop.import_checkpoint(prefix)
  os.makedirs(os.path.dirname(os.path.abspath(fv.out)), exist_ok=True)
  save_keras_atomic(generator, fv.out)
  print(f"imported {len(generator.weights)} variables ({generator.count_params():,} "
        f"parameters) from {prefix} into {fv.out}")
