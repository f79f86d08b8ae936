"""The `train` stage: train the configured model."""

from __future__ import annotations

from typing import Any

from inttower.config import Params
from inttower.errors import InttowerError
from inttower.pipeline.paths import Paths
from inttower.training.card import TrainSummary
from inttower.training.train import train_model


def run(params: Params, paths: Paths, resume: bool = False, launcher: Any = None) -> TrainSummary:
    """Train the configured model on the encoded splits (on several processes: torchrun, run by
    `launcher` when a front end brings its own, e.g. Dagster Pipes)."""
    summary = train_model(params, paths, resume=resume, launcher=launcher)
    if summary is None:
        raise InttowerError("train: this process is a distributed worker; rank 0 reports")
    return summary
