#!/usr/bin/env bash
# Install inttower into .venv from scratch: torch (CPU wheel) first, the project, then DVC.
#
# DVC gets an environment of its own under .venv/dvc-tool, linked as .venv/bin/dvc: DVC's hydra
# pins antlr4-python3-runtime 4.9, while Dagster's asset-selection parser (`--select '*'`)
# needs 4.13; in one environment one of them breaks. They only meet through the command line.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# pinned: the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[dev]"

python3 -m venv .venv/dvc-tool
.venv/dvc-tool/bin/python -m pip install --quiet --upgrade pip
.venv/dvc-tool/bin/python -m pip install --quiet "dvc>=3.67,<4"
ln -sf ../dvc-tool/bin/dvc .venv/bin/dvc
.venv/bin/dvc --version >/dev/null

# `dagster dev` finds the code through [tool.dagster] in pyproject.toml, but Dagster 1.13's
# `dagster asset materialize` reads only flags or its DAGSTER_CLI_* variables: export that
# variable on activation so `dagster asset materialize --select '*'` needs no flags either.
if ! grep -q DAGSTER_CLI_ASSET_MATERIALIZE_MODULE_NAME .venv/bin/activate; then
  echo 'export DAGSTER_CLI_ASSET_MATERIALIZE_MODULE_NAME=dagster_project.definitions' >> .venv/bin/activate
fi
# Runs from the CLI appear in `dagster dev` only when both use one instance: a project-local,
# git-ignored DAGSTER_HOME unless one is set already.
if ! grep -q 'DAGSTER_HOME' .venv/bin/activate; then
  echo 'export DAGSTER_HOME="${DAGSTER_HOME:-$(dirname "$VIRTUAL_ENV")/.dagster_home}"' >> .venv/bin/activate
fi
mkdir -p .dagster_home
touch .venv/.installed  # what `make` checks before installing again
echo "installed: source .venv/bin/activate"
