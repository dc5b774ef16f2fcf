"""The web pages in a real browser (headless Chromium through Selenium): two raters
complete a study by clicking, and a photo uploaded in the serve page comes back as
`dped-tf enhance` makes it."""

import collections
import csv
import os
import struct
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib

import cv2
from dped_tf.testing.models import random_weights_model
import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from dped_tf.testing.data import write_study_folders
from dped_tf.testing import browser as webtools

from dped_tf import cli

CLASSES = ("phone", "dped", "dslr", "pro", "apple")
GRAY = {40 * (i + 1): name for i, name in enumerate(CLASSES)}  # write_study_folders' colors
SCENES = ("a<i>", "b", "c")

PIXEL_JS = """
const img = arguments[0], c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext('2d'); g.drawImage(img, 0, 0);
return Array.from(g.getImageData(0, 0, 1, 1).data.slice(0, 3));"""


def wait_for(driver, css, timeout=60):
  return WebDriverWait(driver, timeout).until(
      expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def shown_class(driver, side):
  """The class of the picture on `side`, read from its pixels in the page."""
  img = driver.find_element(By.ID, f"img-{side}")
  WebDriverWait(driver, 30).until(lambda d: d.execute_script(
      "return arguments[0].complete && arguments[0].naturalWidth > 0", img))
  return GRAY[driver.execute_script(PIXEL_JS, img)[0]]


def rate(url, prefer, clicks, screenshot=None):
  """One rater through the whole study; `prefer(left, right)` -> side to click.
  Appends (experiment classes shown, scene, winner, loser) to `clicks`."""
  driver = webtools.chromium()
  try:
    driver.get(url)
    driver.find_element(By.ID, "start").click()
    while True:
      wait_for(driver, "#done, #progress")
      if driver.find_elements(By.ID, "done"):
        return
      number = driver.find_element(By.ID, "progress").text
      if screenshot and number == "Question 2 of 18":
        driver.find_element(By.ID, "zoom").click()
        driver.find_element(By.ID, "zoom").click()
        driver.save_screenshot(screenshot)
      left, right = shown_class(driver, "left"), shown_class(driver, "right")
      scene = driver.find_element(By.ID, "scene").text
      side = prefer(left, right)
      winner, loser = (left, right) if side == "left" else (right, left)
      clicks.append((scene, winner, loser))
      driver.find_element(By.ID, f"choose-{side}").click()
      WebDriverWait(driver, 30).until(
          lambda d, n=number: not d.find_elements(By.ID, "progress")
          or d.find_element(By.ID, "progress").text != n)
  finally:
    driver.quit()


@pytest.fixture(scope="module")
def study_server(tmp_path_factory):
  root = tmp_path_factory.mktemp("study")
  folders = write_study_folders(str(root), CLASSES, SCENES)
  db = str(root / "votes.sqlite")
  process, url = webtools.start_server(
      "study", "--db", db, "--experiment", "phone,dped,dslr", "--experiment", "dped,pro,apple",
      *[f"--class_dir={k}={v}" for k, v in folders.items()])
  yield url, db, root
  webtools.stop(process)


def test_two_raters_complete_a_study_by_clicking(study_server, tmp_path):
  url, db, _ = study_server
  brighter = lambda l, r: "left" if CLASSES.index(l) > CLASSES.index(r) else "right"  # noqa
  coin = np.random.default_rng(7)
  coin_flip = lambda l, r: "left" if coin.random() < 0.5 else "right"  # noqa
  clicks = {"bright": [], "coin": []}
  shot = str(tmp_path / "study.png")
  raters = [threading.Thread(target=rate, args=(url, brighter, clicks["bright"], shot)),
            threading.Thread(target=rate, args=(url, coin_flip, clicks["coin"]))]
  for t in raters:
    t.start()
  for t in raters:
    t.join()
  assert len(clicks["bright"]) == len(clicks["coin"]) == 18
  with open(shot, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  experiments = {"phone-dped-dslr": ("phone", "dped", "dslr"),
                 "dped-pro-apple": ("dped", "pro", "apple")}  # no pair in both
  # Each rater saw every pair of every experiment on every scene once.
  for rater_clicks in clicks.values():
    seen = sorted((s, *sorted((w, l))) for s, w, l in rater_clicks)
    expected = sorted((s, *sorted((a, b))) for cl in experiments.values()
                      for i, a in enumerate(cl) for b in cl[i + 1:] for s in SCENES)
    assert seen == expected
  # The results page and the CSV agree with the clicks.
  all_clicks = clicks["bright"] + clicks["coin"]
  expected_rows = {}
  for e, cl in experiments.items():
    for i, a in enumerate(cl):
      for b in cl[i + 1:]:
        per_scene = []
        for s in SCENES:
          mine = [w for sc, w, l in all_clicks if sc == s and {w, l} == {a, b}]
          per_scene.append(sum(w == a for w in mine) / len(mine))
        expected_rows[(e, f"{a} > {b}")] = f"{np.mean(per_scene):.4f}"
    wins = collections.Counter(w for s, w, l in all_clicks if {w, l} <= set(cl))
    for c in cl:
      expected_rows[(e, f"{c} (all choices)")] = f"{wins[c] / 18:.4f}"
  out = tmp_path / "results"
  assert cli.main(["dped-tf", "study", "--results", "--db", db, "--out", str(out)]) == 0
  with open(out / "results.csv") as f:
    rows = {(r["experiment"], r["comparison"]): r["fraction"] for r in csv.DictReader(f)}
  assert rows == expected_rows
  assert cv2.imread(str(out / "figure10.png")) is not None
  driver = webtools.chromium()
  try:
    driver.get(url + "/results")
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in driver.find_elements(By.CSS_SELECTOR, "table tr")]
  finally:
    driver.quit()
  page = {(r[0], r[1]): r[2] for r in cells if r and ">" in r[1]}
  page.update({(r[0], f"{r[1]} (all choices)"): r[2] for r in cells if r and ">" not in r[1]})
  assert page == expected_rows


def test_a_rater_who_leaves_resumes_where_they_stopped(study_server):
  url, _, _ = study_server
  driver = webtools.chromium()
  try:
    driver.get(url)
    driver.find_element(By.ID, "start").click()
    for _ in range(2):
      wait_for(driver, "#choose-left").click()
      wait_for(driver, "#progress")
    driver.get("about:blank")
    driver.get(url)
    assert wait_for(driver, "#progress").text == "Question 3 of 18"
  finally:
    driver.quit()


def _bomb_png(path):
  def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_uploaded_photo_comes_back_as_enhance_makes_it(tmp_path, capsys):
  model = str(tmp_path / "g.keras")
  random_weights_model().save(model)
  photo = str(tmp_path / "in" / "my photo.jpg")
  os.makedirs(os.path.dirname(photo))
  rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
  cv2.imwrite(photo, cv2.GaussianBlur(rgb, (5, 5), 0))
  bomb = str(tmp_path / "in" / "bomb.png")
  _bomb_png(bomb)
  out, tmp = tmp_path / "served", tmp_path / "tmp"
  os.makedirs(tmp)
  process, url = webtools.start_server("serve", "--model", model, "--out", str(out),
                                       "--precision", "float32", env={"TMPDIR": str(tmp)})
  driver = webtools.chromium()
  try:
    driver.get(url)
    driver.find_element(By.ID, "photo").send_keys(photo)
    link = WebDriverWait(driver, 120).until(
        expected_conditions.visibility_of_element_located((By.ID, "download")))
    with urllib.request.urlopen(link.get_attribute("href")) as r:
      served = r.read()
    assert "Enhanced my_photo.jpg" in driver.find_element(By.ID, "status").text
    assert driver.execute_script(
        "return document.getElementById('after').naturalWidth") == 64
    driver.find_element(By.ID, "photo").send_keys(bomb)
    error = WebDriverWait(driver, 60).until(
        lambda d: d.find_element(By.ID, "error").text)
    for name, data in (("notes.txt", b"x"), ("../../up.jpg", b""), ("noext", b"x")):
      request = urllib.request.Request(f"{url}/upload?name={urllib.parse.quote(name)}",
                                       data=data, method="PUT")
      with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
      assert refused.value.code in (400, 413), name
  finally:
    driver.quit()
    webtools.stop(process)
  assert cli.main(["dped-tf", "enhance", bomb, "--model", model, "--out",
                   str(tmp_path / "cli"), "--precision", "float32"]) == 1
  cli_error = capsys.readouterr().err.splitlines()[0]
  assert "is over the" in error and cli_error == f"dped-tf enhance: error: {bomb}: " + error[10:]
  assert cli.main(["dped-tf", "enhance", photo, "--model", model, "--out",
                   str(tmp_path / "cli"), "--precision", "float32"]) == 0
  with open(tmp_path / "cli" / "my photo.jpg", "rb") as f:
    assert served == f.read()
  assert os.listdir(tmp) == []  # nothing written outside --out
  written = [os.path.relpath(os.path.join(d, n), out)
             for d, _, names in os.walk(out) for n in names]
  written = [w for w in written if not w.startswith("tmp" + os.sep)]
  assert sorted(w.split(os.sep, 1)[1] for w in written) == [
      "after.jpg", "before.jpg", "in/bomb.png", "in/my_photo.jpg", "my_photo.jpg"]
