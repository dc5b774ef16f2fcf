"""The Beam pipelines against the one-process commands, side by side in one run
(README "At scale").

Prints the CPU model; photos/s and MPix/s of `dped-tf enhance FOLDER` and of
`dped-tf enhance FOLDER --beam` on the DirectRunner (multi-processing, `--workers`
processes: with TensorFlow's default threads, and with one thread per operation per
worker) on a folder of 1280x720 JPEGs, each in a fresh process (start-up included, as
a user meets it), with a check that the outputs are the same bytes; then pairs/s of
`dped-tf align` (which runs `prepare`'s conversion) against `dped-tf align --beam` on
synthetic phone/DSLR pairs of scikit-image photos with a known homography.

  python experiments/bench_beam.py [--photos 12] [--pairs 32] [--workers 2]
      [--size 720x1280] [--precision auto]      (--photos 0: the dataset rows only)

The generator has He-scaled random weights (dped_tf/testing/models.py): its speed is
that of a trained one of the same kind.
"""

import argparse
import filecmp
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
from skimage import data as skdata  # noqa: E402

from dped_tf import precision  # noqa: E402
from dped_tf.testing.bench import run_timed  # noqa: E402
from dped_tf.testing.models import random_weights_model  # noqa: E402
from dped_tf.testing.photo_pairs import known_homography  # noqa: E402
from dped_tf.testing.photo_pairs import synthetic_phone  # noqa: E402
from dped_tf.testing.photos import smooth_photo  # noqa: E402

SCENES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
          "retina", "motorcycle")


def dped_tf(*args):
  """Seconds of `dped-tf ARGS` in a fresh Python process."""
  return run_timed([sys.executable, "-m", "dped_tf.cli", *args])[0]


def write_pairs(folder, count):
  """`count` phone/DSLR pairs (scikit-image photos as the DSLR side, a simulated phone
  through a known homography) and their pairs.csv, every third one in the test split."""
  rows = ["phone,dslr,split"]
  for k in range(count):
    name = SCENES[k % len(SCENES)]
    dslr = skdata.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skdata, name)()
    dslr = cv2.resize(dslr, (768, 512), interpolation=cv2.INTER_AREA)
    phone = synthetic_phone(dslr, known_homography(), (560, 380), seed=k)
    for side, image in (("phone", phone), ("dslr", dslr)):
      os.makedirs(os.path.join(folder, side), exist_ok=True)
      cv2.imwrite(os.path.join(folder, side, f"{k}.png"), image[..., ::-1])
    rows.append(f"phone/{k}.png,dslr/{k}.png,{'test' if k % 3 == 2 else 'train'}")
  path = os.path.join(folder, "pairs.csv")
  with open(path, "w") as f:
    f.write("\n".join(rows) + "\n")
  return path


def bench_enhance(args, work, height, width, beam):
  """The enhance rows: the command, then --beam with default and with 1 thread."""
  rows = []
  model = os.path.join(work, "g.keras")
  random_weights_model().save(model)
  folder = os.path.join(work, "in")
  os.makedirs(folder)
  for i in range(args.photos):
    cv2.imwrite(os.path.join(folder, f"p{i}.jpg"),
                smooth_photo(height, width, seed=i)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
  common = [folder, "--model", model, "--precision", args.precision]
  runs = {"dped-tf enhance FOLDER": [],
          "--beam": ["--beam", *beam],
          "--beam --threads 1": ["--beam", "--threads", "1", *beam]}
  outs = {}
  for label, extra in runs.items():
    outs[label] = os.path.join(work, f"out{len(outs)}")
    seconds = dped_tf("enhance", *common, "--out", outs[label], *extra)
    rows.append((label, args.photos / seconds, args.photos * height * width / 1e6 / seconds,
                 seconds))
  names = sorted(os.listdir(outs["dped-tf enhance FOLDER"]))
  same = {label: len(filecmp.cmpfiles(outs["dped-tf enhance FOLDER"], out, names,
                                      shallow=False)[0]) for label, out in outs.items()}
  assert same["--beam"] == args.photos, "--beam: outputs differ from dped-tf enhance's"
  print(f"\nenhance: {args.photos} JPEGs of {width}x{height}, precision {args.precision}; "
        "'same': outputs byte-identical to dped-tf enhance's (the same flags give the "
        "same bytes; another --threads changes oneDNN's summation order)")
  print(f"{'run':<26} {'photos/s':>9} {'MPix/s':>8} {'wall s':>8} {'ratio':>6} {'same':>5}")
  for label, photos_s, mpix_s, seconds in rows:
    print(f"{label:<26} {photos_s:>9.3f} {mpix_s:>8.3f} {seconds:>8.1f} "
          f"{photos_s / rows[0][1]:>6.2f} {same[label]:>5}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--photos", type=int, default=12, help="photos in the folder (0: none)")
  parser.add_argument("--pairs", type=int, default=32, help="photo pairs to align")
  parser.add_argument("--workers", type=int, default=2, help="DirectRunner workers")
  parser.add_argument("--size", default="720x1280", help="photo size, HxW")
  parser.add_argument("--precision", default="auto", help="as enhance's --precision")
  args = parser.parse_args()
  height, width = (int(v) for v in args.size.lower().split("x"))
  beam = ["--", "--direct_running_mode=multi_processing",
          f"--direct_num_workers={args.workers}"]
  print(f"CPU: {precision.cpu_model()}, {os.cpu_count()} cores; {args.workers} Beam workers "
        "(DirectRunner, multi-processing); every row a fresh process, start-up included")
  with tempfile.TemporaryDirectory() as work:
    if args.photos:
      bench_enhance(args, work, height, width, beam)
    csv_path = write_pairs(os.path.join(work, "pairs"), args.pairs)
    align = ["align", f"--pairs_csv={csv_path}", "--phone=bench", "--patch_size=100"]
    align_s = dped_tf(*align, f"--dped_dir={os.path.join(work, 'a')}", f"--workers={args.workers}")
    beam_s = dped_tf(*align, f"--dped_dir={os.path.join(work, 'b')}", "--beam", *beam)
  print(f"\ndataset: {args.pairs} photo pairs (768x512 DSLR, 560x380 phone), 100 px patches")
  print(f"{'run':<26} {'pairs/s':>9} {'wall s':>8} {'ratio':>6}")
  print(f"{'dped-tf align (+prepare)':<26} {args.pairs / align_s:>9.3f} {align_s:>8.1f} "
        f"{1:>6.2f}")
  print(f"{'dped-tf align --beam':<26} {args.pairs / beam_s:>9.3f} {beam_s:>8.1f} "
        f"{align_s / beam_s:>6.2f}")


if __name__ == "__main__":
  main()
