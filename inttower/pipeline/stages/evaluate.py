"""The `evaluate` stage: score valid and test beside every baseline."""

from __future__ import annotations

from typing import Any

from inttower.config import Params
from inttower.evaluation.report import evaluate_model
from inttower.pipeline.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    """Score valid and test; write reports/metrics.json and the plot data."""
    return evaluate_model(params, paths)
