"""The enhance page (`dped-tf serve`) in a real browser (headless Chromium through
Selenium): an uploaded photo comes back as `dped-tf enhance` makes it, errors are the
command's one-line errors, and nothing is written outside --out.

Every wait waits on a condition looked up afresh on each try, never on a sleep."""

import os
import struct
import urllib.parse
import urllib.request
import zlib

import cv2
import numpy as np
import pytest
from selenium.common.exceptions import NoSuchElementException
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from dped_tf import cli
from dped_tf.errors import DpedError
from dped_tf.testing import browser as webtools
from dped_tf.testing.http_client import Client
from dped_tf.testing.models import random_weights_model
from dped_tf.web.serve import app

# Generous, for a busy machine (the first photo also traces the model): each wait ends as
# soon as its condition holds.
WAIT_S = 300


def wait_until(driver, condition, timeout=WAIT_S):
  """`condition(driver)` once it is truthy; a missing or stale element counts as not yet."""
  return WebDriverWait(driver, timeout, ignored_exceptions=(
      NoSuchElementException, StaleElementReferenceException)).until(condition)


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
    link = wait_until(driver, lambda d: d.find_element(By.ID, "download").is_displayed()
                      and d.find_element(By.ID, "download"))
    with urllib.request.urlopen(link.get_attribute("href")) as r:
      served = r.read()
    assert "Enhanced my_photo.jpg" in driver.find_element(By.ID, "status").text
    # The preview loads after the link shows: its size once it has.
    assert wait_until(driver, lambda d: d.execute_script(
        "const img = document.getElementById('after');"
        "return img.complete && img.naturalWidth")) == 64
    driver.find_element(By.ID, "photo").send_keys(bomb)
    error = wait_until(driver, lambda d: d.find_element(By.ID, "error").text)
    client = Client(url)
    client.request("GET", "/")  # the session cookie and its CSRF token
    for name, data in (("notes.txt", b"x"), ("../../up.jpg", b""), ("noext", b"x")):
      status = client.request("PUT", f"/upload?name={urllib.parse.quote(name)}", data,
                              {"X-CSRF-Token": client.csrf})[0]
      assert status in (400, 413), name
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
  assert sorted(w.split(os.sep, 2)[2] for w in written) == [
      "after.jpg", "before.jpg", "in/bomb.png", "in/my_photo.jpg", "my_photo.jpg"]


def test_upload_names_are_reduced_to_safe_file_names():
  extensions = (".jpg", ".png")
  assert app.safe_name("my photo.JPG", extensions) == "my_photo.jpg"
  assert app.safe_name("../../etc/up.png", extensions) == "up.png"
  assert app.safe_name("C:\\Users\\x\\.hidden.png", extensions) == "hidden.png"
  assert app.safe_name("été-1.png", extensions) == "_t_-1.png"
  for name in ("notes.txt", "noext", "", ".png"):
    with pytest.raises(DpedError, match="not a supported photo type"):
      app.safe_name(name, extensions)
