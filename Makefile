# Two commands. `make run`: set everything up on first use (from the lock), then run the main
# Dagster job on ml-100k (from $MOVIELENS_MIRROR when set, else downloaded from GroupLens,
# checksum verified); the run is recorded in DAGSTER_HOME, so `dg dev` shows it. `make test`:
# the test suite, exactly what .ci/run runs.
.DEFAULT_GOAL := run
VENV := .venv
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

$(VENV)/.installed: scripts/install.sh pyproject.toml uv.lock tools/dvc.lock.txt
	scripts/install.sh

.PHONY: install run test dev
install: $(VENV)/.installed

run: $(VENV)/.installed
	mkdir -p "$(DAGSTER_HOME)"
	$(VENV)/bin/dg launch --job inttower_pipeline

dev: $(VENV)/.installed
	mkdir -p "$(DAGSTER_HOME)"
	$(VENV)/bin/dg dev

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q
