"""Study folders (phone/, dped/, dslr/) from `make demo`'s held-out photos, for
`dped-tf study` (docs/method.md §8).

The sample has one held-out full-size photo (chelsea), so the scenes are the whole photo
and five crops of it at the same coordinates in all three classes (the simulated phone is
off the DSLR by at most 3 px). Pictures are written as PNG (the phone's JPEG artifacts
stay in its pixels).

  python experiments/study_from_demo.py --demo runs/demo --data data/demo --out runs/study
"""

import argparse
import os

import cv2

from dped_tf import image_io
from dped_tf.dataloaders import dped_folder, sample


def crops(height, width):
  """name -> (y0, y1, x0, x1): the whole frame, its four overlapping quarters, its centre."""
  h, w = height * 3 // 5, width * 3 // 5
  return {"whole": (0, height, 0, width), "top_left": (0, h, 0, w),
          "top_right": (0, h, width - w, width), "bottom_left": (height - h, height, 0, w),
          "bottom_right": (height - h, height, width - w, width),
          "centre": ((height - h) // 2, (height + h) // 2, (width - w) // 2, (width + w) // 2)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--demo", default="runs/demo", help="the demo's --out")
  parser.add_argument("--data", default="data/demo", help="the demo's --data")
  parser.add_argument("--phone", default="sony")
  parser.add_argument("--out", default="runs/study")
  args = parser.parse_args()
  for name in sample.PHOTOS["test"]:
    stem = os.path.splitext(name)[0]
    pictures = {
        "phone": image_io.read_rgb8(os.path.join(
            dped_folder.full_size_dir(args.data, args.phone), stem + ".jpg")),
        "dped": image_io.read_rgb8(os.path.join(args.demo, "enhanced", stem + ".png")),
        "dslr": sample.load_photo(name)}
    height, width = pictures["dslr"].shape[:2]
    for label, (y0, y1, x0, x1) in crops(height, width).items():
      for cls, image in pictures.items():
        os.makedirs(os.path.join(args.out, cls), exist_ok=True)
        cv2.imwrite(os.path.join(args.out, cls, f"{stem}_{label}.png"),
                    image[y0:y1, x0:x1, ::-1])
  print(f"wrote {args.out}/phone, dped, dslr")


if __name__ == "__main__":
  main()
