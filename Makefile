# dped_tf: `make test` and `make demo` work on a fresh clone (they set up .venv first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PHONE ?= sony
DPED_DIR ?= data/dped
ARGS ?=

.PHONY: install test bench train demo clean

$(VENV)/.installed: setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: install
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
	$(PY) -m dped_tf.demo --phone $(PHONE) $(if $(VGG),--vgg_weights $(VGG))

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
