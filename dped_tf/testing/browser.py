"""For the web tests and the study rater: a `dped-tf` server in a subprocess, headless Chromium."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_server(*args, env=None, timeout=120, port=None):
  """`dped-tf ARGS --port P` (P: `port` or a free one) in a subprocess; returns (process,
  base url) once it answers."""
  port = port or free_port()
  env = dict(os.environ, **(env or {}))
  process = subprocess.Popen([sys.executable, "-m", "dped_tf.cli", *args, "--port", str(port)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  url = f"http://127.0.0.1:{port}"
  deadline = time.time() + timeout
  while time.time() < deadline:
    if process.poll() is not None:
      raise RuntimeError(f"server exited: {process.stdout.read().decode()}")
    try:
      urllib.request.urlopen(url + "/static/style.css", timeout=2).close()
      return process, url
    except urllib.error.HTTPError:  # answers, behind a token
      return process, url
    except OSError:
      time.sleep(0.2)
  process.kill()
  raise RuntimeError("server did not start")


def stop(process):
  process.terminate()
  try:
    process.wait(10)
  except subprocess.TimeoutExpired:
    process.kill()
    process.wait()


def chromium(width=1100, height=700, profile=None):
  """Headless Debian Chromium through Selenium and the system chromedriver; `profile`:
  a user-data folder that keeps cookies between runs."""
  options = webdriver.ChromeOptions()
  options.binary_location = "/usr/bin/chromium"
  for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}"):
    options.add_argument(arg)
  if profile:
    options.add_argument(f"--user-data-dir={os.path.abspath(profile)}")
  return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
