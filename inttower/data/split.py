"""Labels and the train/valid/test split: chronological by default, the paper's random split on request."""

from __future__ import annotations

import numpy as np
import polars as pl

from inttower.config import LabelParams, SplitParams

SPLIT_ORDER = ("train", "valid", "test")
EVENT_ORDER = ["timestamp", "user_id", "item_id"]


def label_events(interactions: pl.DataFrame, params: LabelParams) -> pl.DataFrame:
    """Drop the ambiguous ratings and label the rest (paper: 4–5 → 1, 1–2 → 0)."""
    return (
        interactions.filter(~pl.col("rating").is_in(params.drop_ratings))
        .with_columns(label=(pl.col("rating") >= params.positive_threshold).cast(pl.Int8))
        .sort(EVENT_ORDER)
    )


def split_events(events: pl.DataFrame, params: SplitParams, seed: int) -> pl.DataFrame:
    """Add a `split` column; events keep their chronological order."""
    if params.protocol == "paper":
        return _random_split(events, params, seed)
    return _temporal_split(events, params)


def _temporal_split(events: pl.DataFrame, params: SplitParams) -> pl.DataFrame:
    # Cut at the timestamps found at the fractional positions; every event sharing a boundary
    # timestamp goes to the later split, so no timestamp straddles two splits.
    if not events["timestamp"].is_sorted():  # label_events already sorted them
        events = events.sort(EVENT_ORDER)
    n_events = events.height
    timestamps = events["timestamp"].to_numpy()
    cuts = [
        round(n_events * params.train),
        round(n_events * (params.train + params.valid)),
    ]
    valid_start, test_start = (
        timestamps[min(cut, n_events - 1)] if n_events else 0 for cut in cuts
    )
    return events.with_columns(
        split=pl.when(pl.col("timestamp") < valid_start)
        .then(pl.lit("train"))
        .when(pl.col("timestamp") < test_start)
        .then(pl.lit("valid"))
        .otherwise(pl.lit("test"))
    )


def _random_split(events: pl.DataFrame, params: SplitParams, seed: int) -> pl.DataFrame:
    # The official code's protocol (LEAKY: future events train the model that scores the past).
    n_events = events.height
    order = np.random.default_rng(seed).permutation(n_events)
    rank = np.empty(n_events, dtype=np.int64)
    rank[order] = np.arange(n_events)
    train_end = round(n_events * params.train)
    valid_end = round(n_events * (params.train + params.valid))
    split = np.where(rank < train_end, "train", np.where(rank < valid_end, "valid", "test"))
    return events.with_columns(split=pl.Series("split", split, dtype=pl.String))


def split_summary(events: pl.DataFrame) -> dict[str, dict]:
    """Per-split counts, label balance and time range, for reports and Dagster metadata."""
    rows = (
        events.group_by("split")
        .agg(
            events=pl.len(),
            positive_rate=pl.col("label").mean(),
            users=pl.col("user_id").n_unique(),
            items=pl.col("item_id").n_unique(),
            first_timestamp=pl.col("timestamp").min(),
            last_timestamp=pl.col("timestamp").max(),
        )
        .to_dicts()
    )
    by_name = {row.pop("split"): row for row in rows}
    return {name: by_name[name] for name in SPLIT_ORDER if name in by_name}
