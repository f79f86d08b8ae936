"""The hashes DVC records in dvc.lock, computed without DVC: a Dagster asset's data version is
the same md5 `dvc repro` writes for it, so the two front ends agree on what changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from inttower.io import file_md5
from inttower.pipeline.paths import Paths
from inttower.pipeline.registry import Stage
from inttower_dvc.dvcfile import DVC_PATHS


def dvc_md5(path: Path) -> str | None:
    """The md5 DVC 3 records in dvc.lock: a file's md5, or a folder's `.dir` hash (the md5 of
    the JSON list of its files' md5s sorted by relative path, exactly as dvc-data builds it)."""
    if path.is_file():
        return file_md5(path)
    if not path.is_dir():
        return None
    entries = sorted(
        (
            {"md5": file_md5(file), "relpath": file.relative_to(path).as_posix()}
            for file in path.rglob("*")
            if file.is_file()
        ),
        key=lambda entry: entry["relpath"],
    )
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def output_hashes(stage: Stage, paths: Paths) -> dict[str, str | None]:
    """DVC hash of every output the stage declares, keyed by its dvc.yaml path."""
    declared, actual = _outputs(stage, DVC_PATHS), _outputs(stage, paths)
    return {str(name): dvc_md5(path) for name, path in zip(declared, actual, strict=True)}


def _outputs(stage: Stage, where: Paths) -> list[Path]:
    return [*stage.outs(where), *stage.reports(where), *stage.metrics(where), *stage.plots(where)]
