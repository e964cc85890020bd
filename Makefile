# Fresh-machine entry points: `make run` (main job) and `make test` (test suite).
# Each creates .venv and installs what it needs; re-running skips finished installs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The real CIFAR-10 beside this checkout when present; otherwise lcnas's default root (downloads if online).
DATA_ROOT ?= $(if $(wildcard ../shared/data/cifar10/cifar-10-batches-py),../shared/data/cifar10,)
# Fixed once (:=), so every step below names the same run.
ifndef RUN_NAME
RUN_NAME := quickstart-$(shell date +%Y%m%d-%H%M%S)
endif
TRIALS ?= 8
EPOCHS ?= 3
LUT ?= cpu-amd-epyc-1t.json

.PHONY: setup setup-dev run test clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-optuna: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[optuna]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed-optuna
setup-dev: $(VENV)/.installed-dev

# Main job: a small LC-Net search on CIFAR-10 (Optuna, SQLite in runs/<name>/search/study.db) against the
# shipped latency table, then the knee of its front retrained on the full training split, then a report.
DATA_FLAG = $(if $(DATA_ROOT),--data-root $(DATA_ROOT),)
run: setup
	$(VENV)/bin/lcnas search --space lcnet_cifar10 --trials $(TRIALS) --lut $(LUT) --seed 0 --out runs/$(RUN_NAME)/search $(DATA_FLAG)
	$(VENV)/bin/lcnas retrain runs/$(RUN_NAME)/search --pick knee --epochs $(EPOCHS) --name $(RUN_NAME)-retrain $(DATA_FLAG)
	$(VENV)/bin/lcnas report runs/$(RUN_NAME)-retrain --lut $(LUT) $(DATA_FLAG)

test: setup-dev
	$(PY) -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
