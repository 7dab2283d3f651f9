# privacy-ray: `make run` runs the pipeline on an embedded Ray, `make test` runs the tests.
# Both set up .venv themselves. TORCH_SPEC pins a CPU torch so no multi-GB CUDA build is pulled
# by accident; a GPU user sets e.g. TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url URL".

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install run test test-fast lint bench bench-quick serve model clean help

help:
	@echo "make run | test | test-fast | lint | bench | bench-quick | serve | model | clean"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,presidio]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/privacy-ray run

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	bash scripts/lint-deploy.sh

bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

serve: $(STAMP)
	$(BIN)/privacy-ray serve

model: $(STAMP)
	$(BIN)/privacy-ray train --out models/default

clean:
	rm -rf output build dist *.egg-info .pytest_cache .ruff_cache
