"""Rate a running `dped-tf study` from the shell, one step per call, in headless Chromium.

How the README's study was run: a rater who cannot sit at a browser (here an AI agent)
looks at each screenshot and names the side it prefers on the next call. The browser
profile in --profile keeps the rater's cookie, so every call resumes the same rater.

  python experiments/study_rater.py --url http://127.0.0.1:8000 --profile /tmp/rater \
      --shot q.png                              # start or resume; screenshot the question
  python experiments/study_rater.py ... --position 0 --choose left --shot q.png
"""

import argparse
import os
import sys

from dped_tf.testing import browser


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--url", required=True)
  parser.add_argument("--profile", required=True, help="Chromium profile folder (the rater)")
  parser.add_argument("--shot", required=True, help="screenshot PNG of the next question")
  parser.add_argument("--choose", choices=("left", "right"))
  parser.add_argument("--position", type=int, help="the question --choose answers (0-based)")
  parser.add_argument("--width", type=int, default=1400)
  parser.add_argument("--height", type=int, default=800)
  args = parser.parse_args()
  # pylint: disable=import-outside-toplevel
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import expected_conditions
  from selenium.webdriver.support.ui import WebDriverWait
  driver = browser.chromium(args.width, args.height, profile=args.profile)
  try:
    driver.get(args.url)
    if driver.find_elements(By.ID, "start"):
      driver.find_element(By.ID, "start").click()
    if args.choose:
      shown = driver.find_element(By.NAME, "position").get_attribute("value")
      if int(shown) != args.position:
        sys.exit(f"the page shows question {shown}, not {args.position}: nothing clicked")
      old_page = driver.find_element(By.TAG_NAME, "html")
      driver.find_element(By.ID, f"choose-{args.choose}").click()
      WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old_page))
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"))
    driver.save_screenshot(args.shot)
    if driver.find_elements(By.ID, "done"):
      print("done: every question answered")
    else:
      print(driver.find_element(By.ID, "progress").text, "| position",
            driver.find_element(By.NAME, "position").get_attribute("value"),
            "| scene", driver.find_element(By.ID, "scene").text)
  finally:
    driver.quit()


if __name__ == "__main__":
  main()
