#!/usr/bin/env bash
# Install inttower into .venv from the committed lock: the same environment on every install.
#
# 1. uv (pinned) and torch (pinned; the one package beside uv.lock): CPU and CUDA builds of
#    torch share a version but not an index. pip takes the CPU wheel where one is configured
#    (a local wheel folder, or TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu); on a GPU
#    machine use `uv sync --locked --extra torch` (PyPI's CUDA build, locked) instead.
# 2. Everything else exactly as uv.lock says (`uv sync --locked`: fails if the lock is stale).
# 3. DVC as a uv tool in its own environment, pinned by tools/dvc.lock.txt: DVC's hydra pins
#    antlr4-python3-runtime 4.9 while Dagster's asset-selection parser needs 4.13. Its `dvc`
#    lands in .venv/bin, on PATH whenever the project's environment is.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
TORCH_VERSION=2.13.0

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
torch_index=()
[ -n "${TORCH_INDEX_URL:-}" ] && torch_index=(--index-url "$TORCH_INDEX_URL")
.venv/bin/python -m pip install --quiet --disable-pip-version-check "${torch_index[@]}" \
  "torch==$TORCH_VERSION"

# --inexact keeps torch (and uv) that pip installed beside the lock
.venv/bin/uv sync --locked --inexact --extra dev --quiet

UV_TOOL_DIR="$PWD/.venv/tools" UV_TOOL_BIN_DIR="$PWD/.venv/bin" \
  .venv/bin/uv tool install --quiet --force --python "$PWD/.venv/bin/python" \
  --constraints tools/dvc.lock.txt "dvc==3.67.1"
.venv/bin/dvc --version >/dev/null

# Runs from the CLI appear in `dg dev` only when both use one instance: a project-local,
# git-ignored DAGSTER_HOME unless one is set already. Its dagster.yaml queues runs one at a
# time: every run takes the same data folder (inttower/pipeline/run_lock.py).
if ! grep -q 'DAGSTER_HOME' .venv/bin/activate; then
  echo 'export DAGSTER_HOME="${DAGSTER_HOME:-$(dirname "$VIRTUAL_ENV")/.dagster_home}"' >> .venv/bin/activate
fi
mkdir -p .dagster_home
cp scripts/dagster.yaml .dagster_home/dagster.yaml
touch .venv/.installed  # what `make` checks before installing again
echo "installed: source .venv/bin/activate"
