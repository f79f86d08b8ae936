"""The `evaluate` stage: score valid and test beside every baseline."""

from __future__ import annotations

from inttower.config import Params
from inttower.evaluation.report import EvaluateSummary, evaluate_model
from inttower.pipeline.paths import Paths


def run(params: Params, paths: Paths) -> EvaluateSummary:
    """Score valid and test; write reports/metrics.json and the plot data."""
    return EvaluateSummary.from_json(evaluate_model(params, paths))
