"""dvc.yaml rendered from the stage registry, so DVC and Dagster run one graph."""

from __future__ import annotations

from typing import Any

import yaml

from inttower.pipeline import REGISTRY_PATHS as DVC_PATHS
from inttower.pipeline import STAGE_LIST, Stage

HEADER = (
    "# Generated from inttower/pipeline.py by `inttower dvc-yaml`; do not edit by hand.\n"
    "# Stage outputs always go to data/ here (the CLI's --data-dir), whatever INTTOWER_DATA_DIR says.\n"
)


def _stage_entry(stage: Stage) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "desc": stage.description,
        "cmd": f"inttower {stage.name} --data-dir data",
        "deps": [*stage.code, *(str(path) for path in stage.reads(DVC_PATHS))],
    }
    if stage.params:
        entry["params"] = list(stage.params)
    outs: list[Any] = [str(path) for path in stage.outs(DVC_PATHS)]
    if outs:
        entry["outs"] = outs
    if metrics := stage.metrics(DVC_PATHS):
        entry["metrics"] = [{str(path): {"cache": False}} for path in metrics]
    if plots := stage.plots(DVC_PATHS):
        entry["plots"] = [{str(path): {"cache": False}} for path in plots]
    return entry


def render() -> str:
    """The dvc.yaml text for the current registry."""
    document = {
        "stages": {stage.name: _stage_entry(stage) for stage in STAGE_LIST},
        "plots": [
            {
                "reports/train_history.json": {
                    "x": "epoch",
                    "y": ["valid_auc", "loss"],
                    "title": "Training curve",
                }
            },
            {"reports/plots/roc.csv": {"x": "fpr", "y": "tpr", "title": "Test ROC"}},
            {
                "reports/plots/calibration.csv": {
                    "x": "mean_predicted",
                    "y": "fraction_positive",
                    "title": "Test calibration",
                }
            },
        ],
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=100)
