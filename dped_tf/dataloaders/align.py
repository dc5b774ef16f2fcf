"""Phone + DSLR photos of one scene -> aligned patch pairs, the way DPED made its (docs/method.md §5).

Per pair: SIFT keypoints, ratio-test matches, a RANSAC homography (DSLR -> phone), both
photos cropped to their intersection, the larger side downscaled to the smaller one's
resolution (the DSLR crop by warping it into the phone crop), then a non-overlapping
window of `patch_size` px slides over both; the phone window is shifted by up to
`search_radius` px to maximise the normalised cross-correlation (NCC) of the grey
patches, and a pair is kept only when that NCC exceeds `min_ncc`. The phone pixels are
never resampled unless the phone photo has the higher resolution.
"""

import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import os
import shutil

import cv2
import numpy as np

from dped_tf import fileio
from dped_tf import image_io
from dped_tf.dataloaders import dped_folder
from dped_tf.errors import DpedError

IMAGE_EXTENSIONS = image_io.INPUT_EXTENSIONS
JPEG_QUALITY = 95
REPORT = "align_report.json"


@dataclasses.dataclass(frozen=True)
class AlignConfig:
  patch_size: int = 100
  search_radius: int = 4        # px, each way, of the phone window's shift search
  min_ncc: float = 0.9
  ratio: float = 0.75           # Lowe's ratio test
  min_matches: int = 20         # below this many matches (or RANSAC inliers): skip
  ransac_threshold: float = 3.0  # px, at the detection size
  detect_size: int = 1600       # SIFT runs on the photos shrunk to this longest side
  max_scale: float = 8.0        # a homography scaling by more (or less than 1/max_scale)
  max_anisotropy: float = 1.5   # or stretching one axis this much more than the other,
  max_rotation: float = 30.0    # or rotating by more degrees, is degenerate


@dataclasses.dataclass
class PairResult:
  """What aligning one photo pair gave; `patches` holds (phone, dslr) uint8 RGB arrays."""
  status: str = "skipped"       # "ok" or "skipped"
  reason: str = ""
  matches: int = 0
  inliers: int = 0
  reprojection_px: float = float("nan")  # mean inlier error, phone px
  scale: float = float("nan")            # DSLR px per phone px
  kept: int = 0
  rejected_ncc: int = 0
  outside: int = 0                       # windows not wholly inside the intersection
  homography: list = None                # 3x3, DSLR px -> phone px
  patches: list = dataclasses.field(default_factory=list)
  ncc: list = dataclasses.field(default_factory=list)
  shifts: list = dataclasses.field(default_factory=list)  # (dy, dx) of kept phone windows

  def report(self):
    """The JSON-able summary (no pixels)."""
    out = dataclasses.asdict(self)
    del out["patches"]
    out["ncc"] = [round(v, 4) for v in self.ncc]
    out["shifts"] = [list(s) for s in self.shifts]
    for key in ("reprojection_px", "scale"):
      out[key] = None if np.isnan(out[key]) else round(out[key], 4)
    return out


def _gray(image):
  return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def sift_matches(phone, dslr, cfg):
  """Ratio-test SIFT matches -> (dslr_points, phone_points) float32 [N, 2] in full-size px."""
  sift = cv2.SIFT_create()
  found = []
  for image in (dslr, phone):
    f = min(1.0, cfg.detect_size / max(image.shape[:2]))
    gray = _gray(image)
    if f < 1:
      gray = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    keypoints, descriptors = sift.detectAndCompute(gray, None)
    found.append((keypoints, descriptors, f))
  (kd, dd, fd), (kp, dp, fp) = found
  if dd is None or dp is None or len(kd) < 2 or len(kp) < 2:
    return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), fp
  good = [m for m, n in cv2.BFMatcher(cv2.NORM_L2).knnMatch(dd, dp, k=2)
          if m.distance < cfg.ratio * n.distance]
  pd = np.float32([kd[m.queryIdx].pt for m in good]).reshape(-1, 2) / fd
  pp = np.float32([kp[m.trainIdx].pt for m in good]).reshape(-1, 2) / fp
  return pd, pp, fp


def project(h, points):
  """Applies the homography `h` to [N, 2] points."""
  return cv2.perspectiveTransform(np.float32(points).reshape(-1, 1, 2), h).reshape(-1, 2)


def _jacobian(h, point):
  x, y = point
  p = np.array([x, y, 1.0])
  w = h[2] @ p
  u, v = (h[:2] @ p) / w
  return (h[:2, :2] - np.outer([u, v], h[2, :2])) / w


def degeneracy(h, dslr_shape, cfg):
  """Why `h` (DSLR -> phone) is not a plausible camera-to-camera mapping, or ""."""
  height, width = dslr_shape[:2]
  corners = np.float64([[0, 0], [width, 0], [width, height], [0, height]])
  w = corners @ h[2, :2] + h[2, 2]
  if np.any(w <= 1e-9):
    return "the DSLR photo maps through infinity"
  quad = project(h, corners)
  edges = np.roll(quad, -1, axis=0) - quad
  following = np.roll(edges, -1, axis=0)
  if not np.all(edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0] > 0):
    return "the DSLR frame maps to a folded or mirrored quadrilateral"
  jacobian = _jacobian(h, (width / 2, height / 2))
  angle = np.degrees(np.arctan2(jacobian[1, 0] - jacobian[0, 1],
                                jacobian[0, 0] + jacobian[1, 1]))
  if abs(angle) > cfg.max_rotation:
    return f"rotated by {angle:.0f} degrees"
  singular = np.linalg.svd(jacobian, compute_uv=False)
  if not 1 / cfg.max_scale <= np.sqrt(singular[0] * singular[1]) <= cfg.max_scale:
    return f"scale {np.sqrt(singular[0] * singular[1]):.3g} out of range"
  if singular[0] / singular[1] > cfg.max_anisotropy:
    return f"one axis stretched {singular[0] / singular[1]:.2f}x more than the other"
  return ""


def inner_rect(h, dslr_shape, phone_shape):
  """Axis-aligned (x0, y0, x1, y1) in phone px inside both the phone frame and the convex
  image of the DSLR frame under `h`."""
  height, width = dslr_shape[:2]
  tl, tr, br, bl = project(h, [[0, 0], [width, 0], [width, height], [0, height]])
  x0, y0 = max(tl[0], bl[0], 0), max(tl[1], tr[1], 0)
  x1 = min(tr[0], br[0], phone_shape[1])
  y1 = min(bl[1], br[1], phone_shape[0])
  return int(np.ceil(x0)), int(np.ceil(y0)), int(np.floor(x1)), int(np.floor(y1))


def ncc(a, b):
  """Normalised cross-correlation of two equal-size grey arrays (0 when one is flat)."""
  a = np.float64(a) - np.mean(a)
  b = np.float64(b) - np.mean(b)
  norm = np.sqrt(np.sum(a * a) * np.sum(b * b))
  return float(np.sum(a * b) / norm) if norm > 1e-9 else 0.0


def best_shift(phone_region, dslr_patch, radius):
  """(NCC, dy, dx) of the best of the (2r+1)^2 shifts of the phone window (grey arrays;
  `phone_region` is the patch plus `radius` px each side)."""
  template = np.float32(dslr_patch)
  if template.std() < 0.5:  # a flat DSLR patch: NCC is undefined
    return 0.0, 0, 0
  scores = cv2.matchTemplate(np.float32(phone_region), template, cv2.TM_CCOEFF_NORMED)
  _, best, _, (x, y) = cv2.minMaxLoc(scores)
  return float(best), y - radius, x - radius


def align_pair(phone, dslr, cfg=AlignConfig()):
  """Aligns one pair of uint8 RGB photos; returns a PairResult (docs/method.md §5)."""
  result = PairResult()
  pd, pp, fp = sift_matches(phone, dslr, cfg)
  result.matches = len(pd)
  if len(pd) < max(cfg.min_matches, 4):
    result.reason = f"too few matches ({len(pd)} < {cfg.min_matches})"
    return result
  h, mask = cv2.findHomography(pd, pp, cv2.RANSAC, cfg.ransac_threshold / fp)
  if h is None:
    result.reason = "degenerate homography (RANSAC found none)"
    return result
  inliers = mask.ravel().astype(bool)
  result.inliers = int(inliers.sum())
  result.homography = h.tolist()
  result.reprojection_px = float(np.mean(np.linalg.norm(project(h, pd[inliers]) - pp[inliers],
                                                        axis=1)))
  if result.inliers < cfg.min_matches:
    result.reason = f"too few RANSAC inliers ({result.inliers} < {cfg.min_matches})"
    return result
  why = degeneracy(h, dslr.shape, cfg)
  if why:
    result.reason = f"degenerate homography ({why})"
    return result
  x0, y0, x1, y1 = inner_rect(h, dslr.shape, phone.shape)
  centre = ((x0 + x1) / 2, (y0 + y1) / 2)
  scale = float(np.sqrt(abs(np.linalg.det(_jacobian(np.linalg.inv(h), centre)))))
  result.scale = scale
  # The common frame has the resolution of the smaller side: k phone px -> frame px.
  k, d = min(1.0, scale), min(1.0, 1 / scale)
  size = (int((x1 - x0) * k), int((y1 - y0) * k))
  need = cfg.patch_size + 2 * cfg.search_radius
  if min(size) < need:
    result.reason = (f"no overlap (intersection {max(size[0], 0)}x{max(size[1], 0)} px, "
                     f"one patch needs {need}x{need})")
    return result
  phone_frame = phone[y0:y1, x0:x1]
  if k < 1:
    phone_frame = cv2.resize(phone_frame, size, interpolation=cv2.INTER_AREA)
  dslr_small = dslr if d >= 1 else cv2.resize(dslr, None, fx=d, fy=d,
                                              interpolation=cv2.INTER_AREA)
  to_frame = np.diag([k, k, 1.0]) @ np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]])
  h_frame = to_frame @ h @ np.diag([1 / d, 1 / d, 1.0])
  dslr_frame = cv2.warpPerspective(dslr_small, h_frame, size, flags=cv2.INTER_LINEAR)
  valid = cv2.warpPerspective(np.full(dslr_small.shape[:2], 255, np.uint8), h_frame, size,
                              flags=cv2.INTER_NEAREST)
  valid = cv2.erode(valid, np.ones((3, 3), np.uint8)) > 0
  phone_gray, dslr_gray = _gray(phone_frame), _gray(dslr_frame)
  p, r = cfg.patch_size, cfg.search_radius
  for y in range(r, size[1] - p - r + 1, p):
    for x in range(r, size[0] - p - r + 1, p):
      if not valid[y:y + p, x:x + p].all():
        result.outside += 1
        continue
      score, dy, dx = best_shift(phone_gray[y - r:y + p + r, x - r:x + p + r],
                                 dslr_gray[y:y + p, x:x + p], r)
      if score <= cfg.min_ncc:
        result.rejected_ncc += 1
        continue
      result.patches.append((phone_frame[y + dy:y + dy + p, x + dx:x + dx + p].copy(),
                             dslr_frame[y:y + p, x:x + p].copy()))
      result.ncc.append(score)
      result.shifts.append((dy, dx))
  result.kept = len(result.patches)
  result.status = "ok"
  if not result.kept:
    result.reason = "no patch pair passed the NCC test"
  return result


# ---------------------------------------------------------------- photo folders -> layout

def read_image(path):
  """uint8 RGB, upright (`image_io.read_photo`: any input format, EXIF orientation
  applied), or None when the file cannot be decoded."""
  try:
    return image_io.to_depth(image_io.read_photo(path).pixels, np.uint8)
  except DpedError:
    return None


def _images(folder):
  if not os.path.isdir(folder):
    raise DpedError(f"{folder}: photo folder not found")
  return {os.path.splitext(n)[0]: os.path.join(folder, n) for n in sorted(os.listdir(folder))
          if n.lower().endswith(IMAGE_EXTENSIONS)}


def find_pairs(phone_dir=None, dslr_dir=None, pairs_csv=None):
  """[(name, phone_path, dslr_path, split or None)] sorted by name, and the unmatched
  files. Pairs come from a CSV (columns phone, dslr and optionally split; paths relative
  to the CSV's folder) or from equal file names (without extension) in the two folders."""
  if pairs_csv:
    base = os.path.dirname(os.path.abspath(pairs_csv))
    try:
      with open(pairs_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    except OSError as e:
      raise DpedError(f"{pairs_csv}: unreadable ({e.strerror})") from None
    if not rows or not {"phone", "dslr"} <= set(rows[0]):
      raise DpedError(f"{pairs_csv}: expected a header with columns phone,dslr[,split]")
    pairs = []
    for line, row in enumerate(rows, start=2):
      paths = [os.path.join(base, row[k] or "") for k in ("phone", "dslr")]
      for path in paths:
        if not os.path.isfile(path):
          raise DpedError(f"{pairs_csv}: line {line}: {path}: file not found")
      split = (row.get("split") or "").strip() or None
      if split not in (None, "train", "test"):
        raise DpedError(f"{pairs_csv}: line {line}: split must be train or test, got {split!r}")
      pairs.append((os.path.splitext(os.path.basename(paths[0]))[0], *paths, split))
    names = [p[0] for p in pairs]
    if len(set(names)) != len(names):
      raise DpedError(f"{pairs_csv}: two pairs share a phone photo name")
    return sorted(pairs), []
  phones, dslrs = _images(phone_dir), _images(dslr_dir)
  common = sorted(phones.keys() & dslrs.keys())
  if not common:
    raise DpedError(f"{phone_dir}: no photo has a namesake in {dslr_dir}")
  unmatched = sorted([phones[n] for n in phones.keys() - dslrs.keys()]
                     + [dslrs[n] for n in dslrs.keys() - phones.keys()])
  return [(n, phones[n], dslrs[n], None) for n in common], unmatched


def assign_splits(pairs, test_fraction, seed):
  """Fills in the split of each pair (split by photo, never by patch): `test_fraction` of
  the unassigned photos, at least one when there are two or more, chosen by a seeded hash
  of their names."""
  open_names = [p[0] for p in pairs if p[3] is None]
  count = round(test_fraction * len(open_names))
  if test_fraction > 0 and len(open_names) >= 2:
    count = min(max(count, 1), len(open_names) - 1)
  rank = sorted(open_names,
                key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
  test = set(rank[:count])
  return [(n, pp, dp, s or ("test" if n in test else "train")) for n, pp, dp, s in pairs]


def encode_jpeg(rgb, quality=JPEG_QUALITY):
  return image_io.encode_photo(".jpg", image_io.Photo(rgb), quality)


def check_output(out_dir, phone, inputs, overwrite):
  """The final `<out_dir>/<phone>` folder; refuses to replace inputs or earlier output."""
  final = os.path.abspath(os.path.join(out_dir, phone))
  for path in inputs:
    path = os.path.abspath(path)
    if os.path.commonpath([final, path]) == final:
      raise DpedError(f"{final}: output would replace the input folder {path}")
  if os.path.exists(final) and not overwrite:
    raise DpedError(f"{final}: already exists (pass --overwrite to replace it)")
  return final


def make_layout(root, phone):
  for split in ("train", "test"):
    for d in dped_folder.split_dirs(root, phone, split):
      os.makedirs(d, exist_ok=True)
  os.makedirs(dped_folder.full_size_dir(root, phone), exist_ok=True)


def save_patches(root, phone, split, tag, patches):
  """Writes (phone, dslr) uint8 RGB patch pairs of one photo as `<tag>_<j>.jpg` in the
  two folders of `split` (docs/method.md §5); `number_patches` gives them their final names."""
  for j, pair in enumerate(patches):
    for folder, patch in zip(dped_folder.split_dirs(root, phone, split), pair):
      with open(os.path.join(folder, f"{tag}_{j}.jpg"), "wb") as f:
        f.write(encode_jpeg(patch))


def number_patches(root, phone, photos):
  """Renames `<tag>_<j>.jpg` to consecutive `<i>.jpg` per split, in the order of `photos`
  [(tag, split, count)]; returns {split: pairs}."""
  counts = {"train": 0, "test": 0}
  for tag, split, count in photos:
    for j in range(count):
      for folder in dped_folder.split_dirs(root, phone, split):
        os.replace(os.path.join(folder, f"{tag}_{j}.jpg"),
                   os.path.join(folder, f"{counts[split]}.jpg"))
      counts[split] += 1
  return counts


def _process(pair, tag, cfg, root, phone):
  """Aligns one pair and writes its patches; returns the result without pixels."""
  name, phone_path, dslr_path, split = pair
  phone_image, dslr_image = read_image(phone_path), read_image(dslr_path)
  if phone_image is None or dslr_image is None:
    bad = phone_path if phone_image is None else dslr_path
    return PairResult(reason=f"unreadable image: {bad}")
  result = align_pair(phone_image, dslr_image, cfg)
  save_patches(root, phone, split, tag, result.patches)
  if split == "test" and result.kept:
    target = os.path.join(dped_folder.full_size_dir(root, phone), f"{name}.jpg")
    if phone_path.lower().endswith((".jpg", ".jpeg")):
      shutil.copyfile(phone_path, target)
    else:
      with open(target, "wb") as f:
        f.write(encode_jpeg(phone_image))
  result.patches = []
  return result


def align_photos(pairs, out_dir, phone, cfg=AlignConfig(), workers=None, overwrite=False,
                 progress=None):
  """Aligns every pair (in parallel over photos) and writes `<out_dir>/<phone>` in the DPED
  layout with `align_report.json`; returns the report dict. `pairs` must have splits."""
  inputs = sorted({os.path.dirname(p) for _, pp, dp, _ in pairs for p in (pp, dp)})
  final = check_output(out_dir, phone, inputs, overwrite)
  os.makedirs(out_dir, exist_ok=True)
  tmp = os.path.join(out_dir, f".{phone}.tmp-{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  try:
    make_layout(tmp, phone)
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count()) as pool:
      futures = [pool.submit(_process, pair, k, cfg, tmp, phone)
                 for k, pair in enumerate(pairs)]
      for done, _ in enumerate(concurrent.futures.as_completed(futures), start=1):
        if progress:
          progress.update(done)
    results = [f.result() for f in futures]
    counts = number_patches(tmp, phone, [(k, pair[3], r.kept)
                                         for k, (pair, r) in enumerate(zip(pairs, results))])
    report = {
        "config": dataclasses.asdict(cfg),
        "patches": counts,
        "photos": [{"name": n, "phone": pp, "dslr": dp, "split": s, **r.report()}
                   for (n, pp, dp, s), r in zip(pairs, results)],
    }
    with open(os.path.join(tmp, phone, REPORT), "w") as f:
      json.dump(report, f, indent=1)
    fileio.publish_dir(os.path.join(tmp, phone), final)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return report
