"""One phone + DSLR photo pair of a scene -> aligned patch pairs, the way DPED made its
(docs/method.md §5); `dped_tf.dataloaders.align` runs it over folders of photos.

SIFT keypoints, ratio-test matches, a RANSAC homography (DSLR -> phone), both photos
cropped to their intersection, the larger side downscaled to the smaller one's
resolution (the DSLR crop by warping it into the phone crop), then a non-overlapping
window of `patch_size` px slides over both; the phone window is shifted by up to
`search_radius` px to maximise the normalised cross-correlation (NCC) of the grey
patches, and a pair is kept only when that NCC exceeds `min_ncc`. The phone pixels are
never resampled unless the phone photo has the higher resolution.
"""

import dataclasses

import cv2
import numpy as np


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
