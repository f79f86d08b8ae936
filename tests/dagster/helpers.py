"""Helpers for the Dagster tests: small params, a copy of the project, and git/dvc commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from inttower.config import set_dotted
from inttower_dvc.commands import dvc_executable

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# Small enough to train in seconds on two cores; the same file drives Dagster and `dvc repro`.
SMALL_PARAMS: dict[str, Any] = {
    "seed": 7,
    "model.embedding_dim": 8,
    "model.hidden_units": [32, 16],
    "model.heads": 4,
    "model.head_dim": 8,
    "train.epochs": 1,
    "train.batch_size": 1024,
    "train.device": "cpu",
    "train.threads": 2,
    "checks.min_test_auc": 0.0,  # the gate itself is tested on fixtures in test_checks.py
    "checks.min_auc_gain_over_rate_logits": -1.0,
    "checks.min_auc_gain_over_dense_logistic": -1.0,
    "checks.min_auc_gain_over_ids_mf": -1.0,
}
# What a clone must hold in git for `dvc pull` to restore everything (see the closing note).
GITIGNORE_REPORTS = "!/reports/*.json\n!/reports/plots/\n"


def write_params(target: Path, overrides: dict[str, Any]) -> Path:
    """The project's params.yaml with dotted overrides, as a complete file."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command, failing the test with its output when it exits non-zero."""
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env=env or tool_env(), check=False
    )
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def tool_env(**extra: str) -> dict[str, str]:
    """An environment where `inttower` and `dvc` are this venv's, and git can commit."""
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "inttower tests",
        "GIT_AUTHOR_EMAIL": "tests@inttower.invalid",
        "GIT_COMMITTER_NAME": "inttower tests",
        "GIT_COMMITTER_EMAIL": "tests@inttower.invalid",
        **extra,
    }
    # stage outputs must land in each repo's own data/, as dvc.yaml declares
    env.pop("INTTOWER_DATA_DIR", None)
    return env


def dvc(*args: str, cwd: Path) -> str:
    return run([dvc_executable(), *args], cwd=cwd)


def git(*args: str, cwd: Path) -> str:
    return run(["git", *args], cwd=cwd)


def copy_project(target: Path) -> Path:
    """The files a clone of the project has (code, dvc.yaml, params), without data or caches."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("inttower", "dagster_project"):
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    for name in ("dvc.yaml", "pyproject.toml", ".gitignore"):
        shutil.copy2(ROOT / name, target / name)
    with (target / ".gitignore").open("a") as gitignore:
        gitignore.write(GITIGNORE_REPORTS)
    write_params(target / "params.yaml", SMALL_PARAMS)
    return target
