"""`defs`: the Dagster code location. Definitions are grouped by concern and merged once here.

`dg dev`, `dg launch --assets '*'` and `dg check defs` find this module through pyproject.toml's
[tool.dg] (`dagster dev` through [tool.dagster]); run them from the project root, where
params.yaml lives.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dagster_project.assets import pipeline_definitions
from dagster_project.automation import automation_definitions
from dagster_project.backtest import backtest_definitions
from dagster_project.checks import check_definitions
from dagster_project.resources import (
    ComputeResource,
    ParamsResource,
    StorageResource,
    run_context,
)
from dagster_project.retraining import retraining_definitions
from dagster_project.tuning import tuning_definitions
from dagster_project.versioning import versioning_definitions
from inttower.config import load_params


def build_definitions(
    params_path: Path | str = "params.yaml", storage: StorageResource | None = None
) -> dg.Definitions:
    """All definitions for one params file: code versions and the schedule are read from it
    when the code location loads, so reload the location after editing params.yaml."""
    params = load_params(params_path)
    shared = dg.Definitions(
        resources={
            "params": ParamsResource(path=str(params_path)),
            "compute": ComputeResource(),
            "storage": storage or StorageResource(),
            "run": run_context,
        },
        # The stages run one after another in one process: that saves the ~5 s of imports
        # (torch, polars) each step would pay, and it makes `run` one resource for the whole
        # run — one params snapshot, one data-folder lock held from first step to last.
        executor=dg.in_process_executor,
    )
    return dg.Definitions.merge(
        pipeline_definitions(params),
        check_definitions(),
        retraining_definitions(params),
        versioning_definitions(params),
        automation_definitions(params),
        backtest_definitions(),
        tuning_definitions(),
        shared,
    )


defs = build_definitions()
