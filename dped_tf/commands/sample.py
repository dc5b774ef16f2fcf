"""`dped-tf sample`: the embedded sample dataset (scikit-image photos + camera simulator)."""

from absl import flags

from dped_tf.configs import define_phone_flag
from dped_tf.dataloaders import locate
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import
from dped_tf.progress import Progress

sample = lazy_import("dped_tf.dataloaders.sample")

# dped_tf.dataloaders.camera_sim.PROFILES, listed here to keep `--help` free of OpenCV.
CAMERAS = ("iphone", "blackberry", "sony", "midrange")
USAGE = "--phone PHONE"
EXAMPLE = "dped-tf sample --phone sony"
REQUIRED = ("phone",)
RENAMED = {"out": "dped_dir"}


def define_flags(fv):
  define_phone_flag(fv, "Phone folder name of the sample (the DPED layout's <phone>).")
  flags.DEFINE_enum("camera", None, CAMERAS, "Simulated camera (default: the one named like "
                    "--phone). The DPED phones' own: iphone worst, blackberry, sony mildest; "
                    "midrange: a made-up camera that is none of them. Any --phone name with "
                    "--camera makes a sample for a new phone.", flag_values=fv)
  flags.DEFINE_string("dped_dir", locate.SAMPLE_DIR, "Root of the DPED layout to write: "
                      "<dped_dir>/<phone>, with TFRecords in <dped_dir>/<phone>/tfrecords "
                      "(train and evaluate find the default one by themselves).",
                      flag_values=fv)
  flags.DEFINE_integer("patch_size", 100, "Patch side in px.", lower_bound=8,
                       upper_bound=256, flag_values=fv)
  flags.DEFINE_integer("train_patches", 1500, "Training patch pairs.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("test_patches", 200, "Test patch pairs.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed: the same seed gives the same files.", flag_values=fv)
  flags.DEFINE_integer("pairs_per_shard", 2000, "Pairs per TFRecord shard.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Replace an existing <dped_dir>/<phone>.",
                    flag_values=fv)


def main(fv, argv):
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  s = sample.build_sample(fv.dped_dir, fv.phone, fv.patch_size, fv.train_patches,
                          fv.test_patches, fv.seed, fv.overwrite, fv.pairs_per_shard,
                          fv.camera, progress=Progress)
  print(f"{s['phone']}: {s['train']} train / {s['test']} test patch pairs "
        f"({s['sample']})")
  print(f"{s['phone']}: phone vs DSLR on the test patches: PSNR {s['psnr']:.2f} dB, "
        f"SSIM {s['ssim']:.4f}")
  print(f"TFRecords in {s['tfrecords']}")
  print(next_steps(fv.dped_dir, s["phone"]))
  return 0


def next_steps(dped_dir, phone):
  """The commands that train on the sample, evaluate the model and enhance a photo
  (README: Train on the sample)."""
  data = "" if dped_dir == locate.SAMPLE_DIR else f" --dped_dir {dped_dir}"
  model = f"runs/{phone}_sample"
  return "\n".join([
      "Next, train on it (300 iterations: 6 to 11 minutes on 2 busy CPU cores), evaluate, "
      "enhance (README: Train on the sample):",
      f"  dped-tf train --phone {phone}{data} --preset cpu_sample --model_dir {model}",
      f"  dped-tf evaluate --phone {phone}{data} --model {model}/generator.keras",
      f"  dped-tf enhance {dped_dir}/{phone}/test_data/full_size_test_images --model "
      f"{model}/generator.keras --out {model}/enhanced"])
