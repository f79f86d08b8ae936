"""Resources: where parameters come from, where training runs, and where artifacts live, and
the run itself: one params snapshot and one data-folder lock shared by every step.

Each is a typed config object the launchpad can override per run; tests swap in their own.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from inttower.config import Params, load_params
from inttower.pipeline.paths import DATA_DIR_ENV, MIRROR_ENV, REPORTS_DIR_ENV, Paths
from inttower.pipeline.registry import code_digest
from inttower.pipeline.run_lock import run_lock


class Device(enum.Enum):
    """Where training runs; `auto` picks CUDA when torch sees a GPU."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class ParamsResource(dg.ConfigurableResource):
    """params.yaml (the one source DVC reads too) plus per-run overrides of single dotted keys."""

    path: str = Field(
        default="params.yaml", description="Parameter file, relative to the working directory."
    )
    overrides: dict[str, Any] = Field(
        default={},
        description="Single dotted keys to override for this run, e.g. {'train.epochs': 2}. "
        "Recorded in every asset's metadata; a run with overrides is not versioned in DVC.",
    )

    def load(self, extra: dict[str, Any] | None = None) -> Params:
        """Validated params with this run's overrides (and `extra`, e.g. compute) applied."""
        return load_params(self.path, {**self.overrides, **(extra or {})})


class ComputeResource(dg.ConfigurableResource):
    """Training hardware; unset fields keep params.yaml's `train.device` / `train.threads`."""

    device: Device | None = Field(
        default=None, description="auto | cpu | cuda; cuda without a GPU fails the run."
    )
    threads: int | None = Field(default=None, description="torch CPU threads (0 = torch default).")

    def overrides(self) -> dict[str, Any]:
        """The params keys this resource sets, so they are applied and recorded like any other."""
        chosen: dict[str, Any] = {}
        if self.device is not None:
            chosen["train.device"] = self.device.value
        if self.threads is not None:
            chosen["train.threads"] = self.threads
        return chosen


class StorageResource(dg.ConfigurableResource):
    """Project root, artifact folders and the MovieLens mirror; tests point these at tmp dirs."""

    root: str = Field(default=".", description="Project root (holds dvc.yaml and reports/).")
    data_dir: str | None = Field(
        default=None, description=f"Stage outputs; default ${DATA_DIR_ENV} or <root>/data."
    )
    reports_dir: str | None = Field(
        default=None,
        description=f"Reports; default ${REPORTS_DIR_ENV}, else <root>/reports for <root>/data "
        "and <data_dir>/reports for any other data folder.",
    )
    mirror: str | None = Field(
        default=None,
        description=f"Offline MovieLens mirror; default ${MIRROR_ENV}, else GroupLens download.",
    )

    def paths(self) -> Paths:
        """The same layered folders the CLI and dvc.yaml use."""
        return Paths.choose(self.root, self.data_dir, self.reports_dir)

    @contextlib.contextmanager
    def mirror_env(self) -> Iterator[None]:
        """Expose the mirror the way `inttower` reads it (an env var), only for one stage call."""
        if self.mirror is None:
            yield
            return
        before = os.environ.get(MIRROR_ENV)
        os.environ[MIRROR_ENV] = self.mirror
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(MIRROR_ENV, None)
            else:
                os.environ[MIRROR_ENV] = before


@dataclass(frozen=True)
class RunParams:
    """The params one run uses, and every key in which they differ from the params file."""

    params: Params
    overrides: dict[str, Any] = field(default_factory=dict)
    source: str = "params.yaml"


def run_params(params: ParamsResource, compute: ComputeResource) -> RunParams:
    """Params with run-config and compute overrides applied (compute wins for train.device)."""
    overrides = {**params.overrides, **compute.overrides()}
    return RunParams(
        params=params.load(compute.overrides()), overrides=overrides, source=params.path
    )


def file_digest(path: Path | str) -> str:
    """sha256 of a params file's bytes, or "missing": what a run's snapshot is compared with."""
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "missing"


@dataclass(frozen=True)
class RunContext:
    """What one Dagster run uses, fixed when it starts: the params (file + launchpad overrides,
    read once), the artifact paths, and the data-folder lock it holds until it ends."""

    params: Params
    overrides: dict[str, Any]
    source: str  # the params file
    source_digest: str  # its bytes' sha256 when the run started
    paths: Paths
    storage: StorageResource
    run_id: str | None
    changed_keys: tuple[str, ...] = ()  # overrides whose value differs from the params file
    code: str = ""  # code_digest() when the run started
    # when the run started: names the DVC experiment it is saved as
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def overridden(self) -> bool:
        """True when the run's params differ from the file's: DVC cannot version such a run."""
        return bool(self.changed_keys)

    @property
    def snapshot_id(self) -> str:
        """A short hash of every resolved param: equal snapshots, equal ids."""
        blob = json.dumps(self.params.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def params_drift(self) -> str | None:
        """Why the params file no longer matches this run's snapshot, or None."""
        now = file_digest(self.source)
        if now != self.source_digest:
            return f"{self.source} changed on disk after this run started (it read its params once)"
        if self.code and code_digest() != self.code:
            return "inttower/ source files changed on disk after this run started"
        return None

    def metadata(self) -> dict[str, Any]:
        """What every asset of the run records about its params."""
        return {
            "params_source": self.source,
            "params_snapshot": self.snapshot_id,
            "params_overridden": self.overridden,
            "params_overrides": dg.MetadataValue.json(self.overrides),
        }


OVERRIDE_TAG = "inttower/params_overridden"
SNAPSHOT_TAG = "inttower/params_snapshot"


@dg.resource(
    required_resource_keys={"params", "compute", "storage"},
    description="The run's params snapshot and its lock on the data folder (whole run).",
)
def run_context(init_context: dg.InitResourceContext) -> Iterator[RunContext]:
    """Resolve params once and lock the data folder for the whole run: with the in-process
    executor, Dagster builds this once per run and tears it down when the run ends."""
    params: ParamsResource = init_context.resources.params
    compute: ComputeResource = init_context.resources.compute
    storage: StorageResource = init_context.resources.storage
    digest = file_digest(params.path)
    chosen = run_params(params, compute)
    on_disk = load_params(params.path)
    changed = tuple(
        sorted(
            key for key in chosen.overrides if on_disk.section(key) != chosen.params.section(key)
        )
    )
    run_id = init_context.run.run_id if init_context.run else None
    context = RunContext(
        params=chosen.params,
        overrides=chosen.overrides,
        source=params.path,
        source_digest=digest,
        paths=storage.paths(),
        storage=storage,
        run_id=run_id,
        changed_keys=changed,
        code=code_digest(),
    )
    run_name = f"dagster run {run_id or '(no run id)'}"
    with run_lock(context.paths.data, description=run_name):
        if init_context.instance is not None and run_id:
            tags = {SNAPSHOT_TAG: context.snapshot_id, OVERRIDE_TAG: str(context.overridden)}
            if context.overridden:
                tags["inttower/params_overrides"] = json.dumps(context.overrides, sort_keys=True)
            init_context.instance.add_run_tags(run_id, tags)
        yield context
