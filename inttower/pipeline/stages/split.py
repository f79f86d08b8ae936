"""The `split` stage: label events and split them by time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inttower.config import Params
from inttower.data.split import label_events, split_events, split_summary
from inttower.io import Summary, read_parquet, write_json, write_parquet
from inttower.pipeline.paths import Paths


@dataclass(frozen=True)
class SplitCounts:
    """One split's size, label balance and time range."""

    events: int
    positive_rate: float
    users: int
    items: int
    first_timestamp: int
    last_timestamp: int


@dataclass(frozen=True)
class SplitSummary(Summary):
    """`reports/split.json`."""

    as_of: str | None
    protocol: str
    leaky: bool
    splits: dict[str, SplitCounts]  # train, valid, test: in that order

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SplitSummary:
        splits = {name: SplitCounts(**block) for name, block in raw["splits"].items()}
        return cls(raw["as_of"], raw["protocol"], raw["leaky"], splits)


def run(params: Params, paths: Paths) -> SplitSummary:
    """Label events and split them by time (or by the paper's leaky random split)."""
    interactions = read_parquet(paths["validated.interactions"])
    events = split_events(label_events(interactions, params.label), params.split, params.seed)
    write_parquet(events, paths["split.events"])
    summary = SplitSummary(
        as_of=params.data.as_of,
        protocol=params.split.protocol,
        leaky=params.split.leaky,
        splits={name: SplitCounts(**block) for name, block in split_summary(events).items()},
    )
    write_json(summary.to_json(), paths["split.summary"])
    return summary
