"""Shared by the end-to-end tests: a copy of the project as a fresh clone would hold it."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What `dvc repro` needs of a clone: the library, its DVC layer, the pipeline, its params and
# DVC's config.
PROJECT_FILES = (
    "inttower",
    "inttower_dvc",
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
)


# Small towers and two epochs on CPU: the end-to-end tests train for real, in seconds. The checks
# against the baselines are tested on their own; these runs only need them out of the way.
SMALL_TOWERS = {
    "seed": 42,
    "train.epochs": 2,
    "train.patience": 2,
    "train.batch_size": 1024,
    "train.device": "cpu",
    "model.hidden_units": [32, 16],
    "model.heads": 4,
    "model.head_dim": 8,
    "model.embedding_dim": 8,
    "checks.min_auc_gain_over_rate_logits": -1.0,
    "checks.min_auc_gain_over_dense_logistic": -1.0,
    "checks.min_auc_gain_over_ids_mf": -1.0,
}


def copy_project(target: Path, names: tuple[str, ...] = PROJECT_FILES) -> Path:
    """Copy `names` from the project root into `target` (caches left behind)."""
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target
