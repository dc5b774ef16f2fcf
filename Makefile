# dped_tf: `make test` and `make demo` work on a fresh clone (they set up .venv first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PHONE ?= sony
DPED_DIR ?= data/dped
ARGS ?=

.PHONY: install test browser bench train demo notebook clean

$(VENV)/.installed: setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,web,export,beam]'
	touch $@

install: $(VENV)/.installed

# Headless Chromium and its driver from the OS packages for the browser tests
# (tests/study_page_test.py, tests/serve_page_test.py);
# does nothing when both are there.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium chromium-driver; }

test: install browser
	$(PY) -m pytest -q --durations=15

# Side-by-side measurements (minutes); not part of `make test`.
bench: install
	@for script in experiments/bench_*.py; do \
	  echo "== $$script"; $(PY) $$script || exit 1; done

train: install
	$(VENV)/bin/dped-tf train --phone $(PHONE) --dped_dir $(DPED_DIR) $(ARGS)

# The sample pipeline end to end on a 2-core CPU (about 10 minutes): runs/demo/report.md.
# VGG=/path/to/vgg19 .h5 or .mat: ImageNet VGG-19 weights for the content term.
demo: install
	$(PY) experiments/demo.py --phone $(PHONE) $(if $(VGG),--vgg_weights $(VGG))

# JupyterLab on the project's environment, on the loss-ablation notebook.
notebook: install
	$(PY) -m pip install --quiet -e '.[notebook]'
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/loss_ablations.ipynb

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
