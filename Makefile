# Fresh-machine entry points: `make run` (main job) and `make test` (test suite).
# Each creates .venv and installs what it needs; re-running skips finished installs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The real CIFAR-10 beside this checkout when present; otherwise lcnas's default root (downloads if online).
DATA_ROOT ?= $(if $(wildcard ../shared/data/cifar10/cifar-10-batches-py),../shared/data/cifar10,)
RUN_NAME ?= quickstart-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup setup-dev run test clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# Main job: train a short ResNet-20 on CIFAR-10 and evaluate its checkpoint on the test set.
run: setup
	$(VENV)/bin/lcnas train -c studies/quickstart_cifar10.yaml --set name=$(RUN_NAME) $(if $(DATA_ROOT),--data-root $(DATA_ROOT),)
	$(VENV)/bin/lcnas evaluate runs/$(RUN_NAME)/final.pt $(if $(DATA_ROOT),--data-root $(DATA_ROOT),) --format json

test: setup-dev
	$(PY) -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
