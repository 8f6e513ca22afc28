# Quick start: `make demo` (main job) and `make test` (tests); each makes the venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/cifar10-jpeg.tar.gz
OUT ?= out

.PHONY: install test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/graphnet render specs/bag_of_tricks.py -o $(OUT)/bag_of_tricks.svg
	$(VENV)/bin/graphnet train --data $(DATA) --subset 5000 --width-mult 0.25 --epochs 2 --out $(OUT)/demo

bench: install
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) $(OUT) *.egg-info
