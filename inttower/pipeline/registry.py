"""The stage registry: the one DAG that dvc.yaml and the Dagster assets are both built from.

A stage names the catalog artifacts it reads and the params keys it uses; what it writes comes
from the catalog, its code from the import closure of its function, and its upstream stages from
who writes what it reads. Nothing here is listed twice.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from inttower.config import Params
from inttower.io import append_jsonl, staging_area
from inttower.pipeline import catalog, code_deps
from inttower.pipeline.paths import Paths
from inttower.pipeline.stages import (
    encode,
    encoders,
    evaluate,
    export,
    features,
    ingest,
    source,
    split,
    train,
    validate,
)

REPO_ROOT = code_deps.REPO_ROOT


class StageSummary(Protocol):
    """What a stage's `run` returns: a frozen dataclass beside the code that makes it
    (`inttower.io.Summary`); JSON only when it leaves the process."""

    def to_json(self) -> dict[str, Any]: ...

    def timings(self) -> dict[str, Any]: ...


@dataclass(frozen=True, eq=False)
class Stage:
    """One pipeline step: what it reads (catalog names), which params keys, how to run it."""

    name: str
    noun: str  # the artifact it leaves behind: the Dagster asset's key
    run: Callable[..., StageSummary]
    description: str
    group: str
    reads: tuple[str, ...]
    params: tuple[str, ...]  # exact dotted keys the stage reads
    kinds: tuple[str, ...] = ("python", "polars")
    always_changed: bool = False  # DVC runs it every time (it looks at the outside world)

    @property
    def writes(self) -> list[catalog.Artifact]:
        return catalog.written_by(self.name)

    def _of(self, paths: Paths, role: catalog.Role) -> list[Path]:
        return [paths[item.name] for item in self.writes if item.role == role]

    def outs(self, paths: Paths) -> list[Path]:
        """Artifacts DVC caches."""
        return self._of(paths, "out")

    def metrics(self, paths: Paths) -> list[Path]:
        """Small JSON kept in git that DVC shows as metrics."""
        return self._of(paths, "metric")

    def plots(self, paths: Paths) -> list[Path]:
        return self._of(paths, "plot")

    def reports(self, paths: Paths) -> list[Path]:
        """Small summaries kept in git that are not DVC metrics (uncached outs)."""
        return self._of(paths, "report")

    def produces(self, paths: Paths) -> list[Path]:
        """Everything the stage writes that DVC or Dagster hashes."""
        return [paths[item.name] for item in self.writes]

    def dependencies(self, paths: Paths) -> list[Path]:
        """The versioned units the stage reads (a folder for a file inside it), in read order."""
        units = dict.fromkeys(catalog.versioned_unit(name).name for name in self.reads)
        return [paths[name] for name in units]

    @property
    def upstream(self) -> tuple[str, ...]:
        """The stages whose outputs this stage reads: the graph's edges, derived from the data."""
        writers = {catalog.versioned_unit(name).stage for name in self.reads}
        return tuple(stage.name for stage in STAGE_LIST if stage.name in writers)

    @cached_property
    def code(self) -> tuple[str, ...]:
        """Source files (relative to the repo root) the stage's function can execute."""
        return tuple(code_deps.function_files(self.run))

    def code_version(self, params: Params) -> str:
        """Changes when the stage's source files or its params change."""
        digest = hashlib.sha256(params.fingerprint(list(self.params)).encode())
        return hash_sources(digest, self.code).hexdigest()[:16]


def hash_sources(digest: Any, relatives: Iterable[str]) -> Any:
    """Feed each source file (its repo-relative name, then its bytes) into a hashlib digest."""
    for relative in relatives:
        digest.update(relative.encode())
        digest.update((REPO_ROOT / relative).read_bytes())
    return digest


STAGE_LIST: tuple[Stage, ...] = (
    Stage(
        name="source",
        noun="movielens_source",
        run=source.run,
        description="fingerprint of the raw source (mirror files' md5, archive md5, or "
        "synthetic params): ingest reruns exactly when what it would read changed",
        group="ingestion",
        reads=(),
        params=("seed", "data"),  # the synthetic generator is seeded
        kinds=("python",),
        always_changed=True,
    ),
    Stage(
        name="ingest",
        noun="raw_movielens",
        run=ingest.run,
        description="MovieLens from the mirror or GroupLens (checksummed), parsed to canonical tables",
        group="ingestion",
        reads=("source.fingerprint",),
        params=("seed", "data"),
    ),
    Stage(
        name="validate",
        noun="validated_movielens",
        run=validate.run,
        description="pandera schemas and referential integrity; a failure stops the chain",
        group="ingestion",
        reads=(*(f"ingested.{table}" for table in catalog.TABLES), "ingested.sources"),
        params=(),
        kinds=("python", "polars", "pandera"),
    ),
    Stage(
        name="split",
        noun="labelled_split",
        run=split.run,
        description="labels (rating 3 dropped) and the chronological train/valid/test split",
        group="preparation",
        reads=("validated.interactions",),
        params=("seed", "data.as_of", "label", "split"),
    ),
    Stage(
        name="features",
        noun="event_features",
        run=features.run,
        description="point-in-time user/item statistics, behaviour features and positive-item history",
        group="preparation",
        reads=("split.events", "validated.users", "validated.items"),
        params=("features", "split.protocol"),
    ),
    Stage(
        name="encoders",
        noun="feature_encoders",
        run=encoders.run,
        description="vocabularies and scalers fit on the train split only (JSON)",
        group="preparation",
        reads=("features.events", "features.users", "features.items"),
        params=("encoders", "split.protocol"),
    ),
    Stage(
        name="encode",
        noun="encoded_splits",
        run=encode.run,
        description="train/valid/test encoded as tensors (safetensors) with their field specs",
        group="preparation",
        reads=("features.events", "features.users", "features.items", "encoders"),
        params=(),
        kinds=("python", "polars", "safetensors"),
    ),
    Stage(
        name="train",
        noun="inttower_model",
        run=train.run,
        description="IntTower (or a baseline) trained with early stopping on validation AUC",
        group="modeling",
        reads=("encoded",),
        params=("seed", "data.as_of", "model", "train"),
        kinds=("python", "pytorch"),
    ),
    Stage(
        name="evaluate",
        noun="model_evaluation",
        run=evaluate.run,
        description="test AUC, logloss, GAUC, calibration; cold/warm users; baselines (no model, "
        "features alone, ids alone); full-catalogue top-K beside popularity",
        group="modeling",
        # the ranking metrics also read the catalogue, the users' and items' tables, the
        # encoders and every rating (items rated before a period are no candidates)
        reads=(
            "model",
            "encoded",
            "features.events",
            "ingested.oracle",
            "split.events",
            "features.users",
            "features.items",
            "encoders",
            "validated.items",
            "validated.interactions",
        ),
        # the model is rebuilt from its params, on the configured device, and scored in fp32
        # whatever train.precision trained it; `label` turns the oracle's ratings into labels
        params=(
            "data.as_of",
            "evaluate",
            "serving",
            "model",
            "train.device",
            "train.threads",
            "split.protocol",
            "label",
        ),
        kinds=("python", "pytorch"),
    ),
    Stage(
        name="export",
        noun="serving_bundle",
        run=export.run,
        description="serving bundle: user tower and scorer as ONNX, the item cache of the whole "
        "catalogue, every user's features as of the end of the log, encoders, calibration",
        group="serving",
        reads=(
            "model",
            "metrics",  # after evaluation: the manifest carries the model's test scores
            "encoded",
            "encoders",
            "split.events",
            "features.users",
            "features.items",
            "validated.items",
            "validated.interactions",
        ),
        # the model is rebuilt from its params; features as of now are computed with `features`;
        # `serving` says what the top-K is ranked by
        params=("data.as_of", "features", "model", "serving"),
        kinds=("python", "pytorch", "onnx"),
    ),
)
STAGES: dict[str, Stage] = {stage.name: stage for stage in STAGE_LIST}


def code_digest() -> str:
    """sha256 over every stage's source files: what DVC records in dvc.lock, and what a
    champion's lineage and a Dagster run's drift check compare."""
    files = sorted({name for stage in STAGE_LIST for name in stage.code})
    return hash_sources(hashlib.sha256(), files).hexdigest()


def stage_names() -> list[str]:
    return [stage.name for stage in STAGE_LIST]


def run_stage(
    stage: Stage, params: Params, paths: Paths, front_end: str, **options: Any
) -> StageSummary:
    """Run one stage the way every front end does: temporary files in the staging area (never in
    an output folder), and a line in the uncached run log with the summary's timings."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    with staging_area(paths.staging):
        summary = stage.run(params, paths, **options)
    append_jsonl(
        {
            "stage": stage.name,
            "front_end": front_end,
            "started_at": started_at.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 3),
            "params_fingerprint": params.fingerprint(list(stage.params)) if stage.params else "",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **summary.timings(),
        },
        paths.run_log,
    )
    return summary
