# Fresh-machine entry points: `make run` (main job) and `make test` (lint, docs build, test suite); `make docs` builds the site;
# `make lint` (ruff + mypy) and `make test-fast` (the fast core of the suite) while developing.
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
SPACE ?= lcnet_resnet20_warm
EPOCHS ?= 3
# The shipped latency table measured on this CPU (lcnas.latency.resolve_table), else the AMD EPYC one
# (predictions then describe that machine: lcnas warns). Expanded when the run's recipe starts, after setup.
LUT ?= $(shell $(PY) -c "from lcnas.latency import resolve_table; print(resolve_table('auto'))" 2>/dev/null || echo cpu-amd-epyc-1t.json)

.PHONY: setup setup-dev setup-docs run lint test test-fast docs clean-venv

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

$(VENV)/.installed-docs: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[docs]'
	touch $@

setup: $(VENV)/.installed-optuna
setup-dev: $(VENV)/.installed-dev
setup-docs: $(VENV)/.installed-docs

# Main job: a small LC-Net search on CIFAR-10 (Optuna, SQLite in runs/<name>/search/study.db) against the
# shipped latency table, then the knee of its front retrained on the full training split, then a report
# that ends with where the model stands against the static networks. Trials fine-tune the shipped
# ResNet-20 Layer-Net (search_spaces/lcnet_resnet20_warm.yaml): 15 minutes on 2 cores refine trained
# gates; they cannot train gates from the static backbone. SPACE=lcnet_cifar10 searches from scratch.
DATA_FLAG = $(if $(DATA_ROOT),--data-root $(DATA_ROOT),)
run: setup
	$(VENV)/bin/lcnas search --space $(SPACE) --trials $(TRIALS) --lut $(LUT) --seed 0 --out runs/$(RUN_NAME)/search $(DATA_FLAG)
	$(VENV)/bin/lcnas retrain runs/$(RUN_NAME)/search --pick knee --epochs $(EPOCHS) --name $(RUN_NAME)-retrain $(DATA_FLAG)
	$(VENV)/bin/lcnas report runs/$(RUN_NAME)-retrain --lut $(LUT) $(DATA_FLAG)

# The docs site (MkDocs + Material, API reference from docstrings) into $(SITE_DIR) (git-ignored), offline.
# --strict: a broken link, a missing page or an unresolved reference fails the build.
SITE_DIR ?= site
MKDOCS = NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir $(SITE_DIR)
docs: setup-docs
	$(MKDOCS)

# Ruff (style, imports, bug patterns) and mypy (types) on the package; both configured in pyproject.toml.
lint: setup-dev
	$(VENV)/bin/ruff check lcnas
	$(VENV)/bin/mypy

# CI runs this (.ci/run): lint, the strict docs build, then the test suite.
test: lint
	$(MKDOCS)
	$(PY) -m pytest -q tests

# The fast core: every test but the slow ones and those needing Ray, NNI or PostgreSQL (markers in pyproject.toml).
test-fast: setup-dev
	$(PY) -m pytest -q -m "not slow and not backends" tests

clean-venv:
	rm -rf $(VENV)
