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

# On a CUDA machine the full final recipe; on the CPU one epoch (140 steps of 256) of the quarter-width
# network on 36,000 training images: 60% in 1 min 43 s on 2 cores in fp32, render included (benchmarks/README.md);
# 63% in 24 s of training in bf16 on 2 AMX cores; 64% in 35 s on 2 AMD EPYC (Zen 4) cores (bf16 + channels_last, the auto choice).
CUDA = $(shell $(PY) -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null)
DEMO_CPU = --width-mult 0.25 --epochs 1 --batch-size 256 --subset 36000 --test-subset 2000

demo: install
	$(VENV)/bin/graphnet render specs/bag_of_tricks.py -o $(OUT)/bag_of_tricks.svg
	$(VENV)/bin/graphnet train --data $(DATA) $(if $(filter 1,$(CUDA)),,$(DEMO_CPU)) --out $(OUT)/demo --overwrite

bench: install
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) $(OUT) *.egg-info
