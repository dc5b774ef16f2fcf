"""The study's pages in a real browser (headless Chromium through Selenium): two raters
complete a study by clicking, and a rater who leaves resumes where they stopped.

Every wait waits on a condition looked up afresh on each try, never on a sleep; after a
click that submits a form, on a new document completely loaded, so no lookup meets a page
mid-navigation."""

import collections
from concurrent import futures
import csv

import cv2
import numpy as np
import pytest
from selenium.common.exceptions import NoSuchElementException
from selenium.common.exceptions import StaleElementReferenceException
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from dped_tf import cli
from dped_tf.testing import browser as webtools
from dped_tf.testing.data import write_study_folders

CLASSES = ("phone", "dped", "dslr", "pro", "apple")
GRAY = {40 * (i + 1): name for i, name in enumerate(CLASSES)}  # write_study_folders' colors
SCENES = ("a<i>", "b", "c")
# Generous, for a busy machine: each wait ends as soon as its condition holds.
WAIT_S = 120
RESULTS_TOKEN = "results-token-of-the-test"

PIXEL_JS = """
const img = arguments[0], c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext('2d'); g.drawImage(img, 0, 0);
return Array.from(g.getImageData(0, 0, 1, 1).data.slice(0, 3));"""


def wait_until(driver, condition, timeout=WAIT_S):
  """`condition(driver)` once it is truthy; a try that meets an element missing or gone
  stale counts as not yet."""
  return WebDriverWait(driver, timeout, ignored_exceptions=(
      NoSuchElementException, StaleElementReferenceException)).until(condition)


def submit(driver, button_id):
  """Clicks the button that submits the page's form, then waits for the next page: a
  document without the mark put on this one, completely loaded (pictures too). The wait
  holds no element of the old page and asks the browser through scripts only, and a try
  that meets the page mid-navigation (chromedriver reports a context or node of the
  unloading document as several kinds of error) counts as not yet."""
  driver.execute_script("document.dpedSubmitted = true")
  driver.find_element(By.ID, button_id).click()
  WebDriverWait(driver, WAIT_S, ignored_exceptions=(WebDriverException,)).until(
      lambda d: d.execute_script(
          "return !document.dpedSubmitted && document.readyState === 'complete'"),
      f"no new page loaded after clicking #{button_id}")


def shown_class(driver, side):
  """The class of the picture on `side`, read from its pixels in the page."""
  img = wait_until(driver, lambda d: d.find_element(By.ID, f"img-{side}"))
  wait_until(driver, lambda d: d.execute_script(
      "return arguments[0].complete && arguments[0].naturalWidth > 0", img))
  return GRAY[driver.execute_script(PIXEL_JS, img)[0]]


def rate(url, prefer, clicks, screenshot=None):
  """One rater through the whole study; `prefer(left, right)` -> side to click.
  Appends (experiment classes shown, scene, winner, loser) to `clicks`."""
  driver = webtools.chromium()
  try:
    driver.get(url)
    submit(driver, "start")
    while not driver.find_elements(By.ID, "done"):
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
      submit(driver, f"choose-{side}")
  finally:
    driver.quit()


@pytest.fixture(scope="module")
def study_server(tmp_path_factory):
  root = tmp_path_factory.mktemp("study")
  folders = write_study_folders(str(root), CLASSES, SCENES)
  db = str(root / "votes.sqlite")
  process, url = webtools.start_server(
      "study", "--db", db, "--experiment", "phone,dped,dslr", "--experiment", "dped,pro,apple",
      "--results_token", RESULTS_TOKEN,
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
  with futures.ThreadPoolExecutor(2) as pool:
    raters = [pool.submit(rate, url, brighter, clicks["bright"], shot),
              pool.submit(rate, url, coin_flip, clicks["coin"])]
  for rater in raters:
    rater.result()  # a rater's exception, if any, fails the test here
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
    assert "results token" in driver.find_element(By.TAG_NAME, "body").text  # not a rater's
    driver.get(f"{url}/results?results_token={RESULTS_TOKEN}")
    assert driver.current_url == url + "/results"  # the token left the address bar
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in driver.find_elements(By.CSS_SELECTOR, "table tr")]
    chart_width = wait_until(driver, lambda d: d.execute_script(
        "const img = document.getElementById('figure10');"
        "return img.complete && img.naturalWidth"))
  finally:
    driver.quit()
  assert chart_width == cv2.imread(str(out / "figure10.png")).shape[1]  # the same chart
  page = {(r[0], r[1]): r[2] for r in cells if r and ">" in r[1]}
  page.update({(r[0], f"{r[1]} (all choices)"): r[2] for r in cells if r and ">" not in r[1]})
  assert page == expected_rows


def test_a_rater_who_leaves_resumes_where_they_stopped(study_server):
  url, _, _ = study_server
  driver = webtools.chromium()
  try:
    driver.get(url)
    submit(driver, "start")
    for _ in range(2):
      submit(driver, "choose-left")
    driver.get("about:blank")
    driver.get(url)
    progress = wait_until(driver, lambda d: d.find_element(By.ID, "progress").text)
    assert progress == "Question 3 of 18"
  finally:
    driver.quit()
