"""dvc.yaml rendered from the stage registry, so DVC and Dagster run one graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from inttower.pipeline.catalog import ARTIFACTS
from inttower.pipeline.paths import Paths
from inttower.pipeline.registry import STAGE_LIST, Stage

DVC_PATHS = Paths(data=Path("data"), reports=Path("reports"))

HEADER = (
    "# Generated from inttower/pipeline/registry.py and inttower/pipeline/catalog.py by\n"
    "# `inttower dvc-yaml`; do not edit by hand. Stage outputs always go to data/ and reports/ here (the CLI's\n"
    "# --data-dir), whatever INTTOWER_DATA_DIR says. Code deps are each stage's import closure.\n"
    "# persist: DVC must not delete outputs before a stage runs: a stage that fails (or finds\n"
    "# the data folder locked by another run) leaves what the last good run produced in place.\n"
)


def _stage_entry(stage: Stage) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "desc": stage.description,
        "cmd": f"inttower {stage.name} --data-dir data",
    }
    if stage.always_changed:
        entry["always_changed"] = True
    deps = [*stage.code, *(str(path) for path in stage.dependencies(DVC_PATHS))]
    entry["deps"] = deps
    if stage.params:
        entry["params"] = list(stage.params)
    outs = [{str(path): {"persist": True}} for path in stage.outs(DVC_PATHS)]
    outs += [{str(path): {"cache": False, "persist": True}} for path in stage.reports(DVC_PATHS)]
    if outs:
        entry["outs"] = outs
    if metrics := stage.metrics(DVC_PATHS):
        entry["metrics"] = [{str(path): {"cache": False, "persist": True}} for path in metrics]
    if plots := stage.plots(DVC_PATHS):
        entry["plots"] = [{str(path): {"cache": False, "persist": True}} for path in plots]
    return entry


def render() -> str:
    """The dvc.yaml text for the current registry."""
    document = {
        "stages": {stage.name: _stage_entry(stage) for stage in STAGE_LIST},
        # images only: `dvc plots show` embeds them, with no Vega to fetch from the internet
        "plots": [str(DVC_PATHS[item.name]) for item in ARTIFACTS if item.role == "plot"],
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=100)
