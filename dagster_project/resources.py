"""Resources: where parameters come from, where training runs, and where artifacts live.

Each is a typed config object the launchpad can override per run; tests swap in their own.
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from inttower.config import Params, load_params
from inttower.paths import DATA_DIR_ENV, MIRROR_ENV, Paths


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
    reports_dir: str | None = Field(default=None, description="Reports; default <root>/reports.")
    mirror: str | None = Field(
        default=None,
        description=f"Offline MovieLens mirror; default ${MIRROR_ENV}, else GroupLens download.",
    )
    dssm_metrics: str | None = Field(
        default=None,
        description="metrics.json of a DSSM run that the quality gate compares against; "
        "default <reports>/baselines/dssm/metrics.json (skipped when absent).",
    )

    def paths(self) -> Paths:
        """The same layered folders the CLI and dvc.yaml use."""
        defaults = Paths.from_env(self.root)
        return Paths(
            data=Path(self.data_dir) if self.data_dir else defaults.data,
            reports=Path(self.reports_dir) if self.reports_dir else defaults.reports,
        )

    def dssm_metrics_path(self) -> Path:
        """Where the quality gate looks for a DSSM run's metrics.json."""
        if self.dssm_metrics:
            return Path(self.dssm_metrics)
        return self.paths().reports / "baselines" / "dssm" / "metrics.json"

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
