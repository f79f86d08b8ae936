"""The `split` stage: label events and split them by time."""

from __future__ import annotations

from typing import Any

from inttower.config import Params
from inttower.data.split import label_events, split_events, split_summary
from inttower.io import read_parquet, write_json, write_parquet
from inttower.pipeline.paths import Paths


def run(params: Params, paths: Paths) -> dict[str, Any]:
    """Label events and split them by time (or by the paper's leaky random split)."""
    interactions = read_parquet(paths["validated.interactions"])
    events = split_events(label_events(interactions, params.label), params.split, params.seed)
    write_parquet(events, paths["split.events"])
    summary = {
        "as_of": params.data.as_of,
        "protocol": params.split.protocol,
        "leaky": params.split.leaky,
        "splits": split_summary(events),
    }
    write_json(summary, paths["split.summary"])
    return summary
