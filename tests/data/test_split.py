"""Labels and splits: what a user of the split stage would notice."""

from __future__ import annotations

import polars as pl

from inttower.config import LabelParams, Params, SplitParams
from inttower.data.split import label_events, split_events, split_summary
from tests.features.helpers import interactions


def test_labels_drop_threes_and_mark_four_and_five_positive() -> None:
    frame = interactions([(1, 1, r, 100 + i) for i, r in enumerate([1, 2, 3, 4, 5, 4.5, 2.5])])
    labelled = label_events(frame, LabelParams())
    assert labelled["rating"].to_list() == [1, 2, 4, 5, 4.5, 2.5]
    assert labelled["label"].to_list() == [0, 0, 1, 1, 1, 0]


def test_labels_are_configurable() -> None:
    frame = interactions([(1, 1, r, 100 + i) for i, r in enumerate([1, 3, 5])])
    labelled = label_events(frame, LabelParams(drop_ratings=[], positive_threshold=3))
    assert labelled["label"].to_list() == [0, 1, 1]


def test_temporal_split_is_chronological_with_requested_fractions() -> None:
    frame = interactions([(i % 7 + 1, i % 11 + 1, 5.0, 1000 + i) for i in range(1000)])
    events = split_events(label_events(frame, LabelParams()), SplitParams(), seed=0)
    counts = dict(events.group_by("split").len().iter_rows())
    assert counts == {"train": 800, "valid": 100, "test": 100}
    last = events.group_by("split").agg(
        pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last")
    )
    bounds = {row["split"]: row for row in last.to_dicts()}
    assert bounds["train"]["last"] < bounds["valid"]["first"]
    assert bounds["valid"]["last"] < bounds["test"]["first"]


def test_events_sharing_a_timestamp_never_straddle_a_boundary() -> None:
    # 10 events at t=5 sit exactly where the 80% cut falls.
    rows = [(1, i + 1, 5.0, i) for i in range(75)] + [(2, i + 1, 4.0, 75) for i in range(10)]
    rows += [(3, i + 1, 4.0, 100 + i) for i in range(15)]
    events = split_events(label_events(interactions(rows), LabelParams()), SplitParams(), seed=0)
    at_tie = events.filter(pl.col("timestamp") == 75)["split"].unique().to_list()
    assert len(at_tie) == 1


def test_paper_protocol_is_random_and_seeded() -> None:
    frame = interactions([(i % 7 + 1, i % 11 + 1, 5.0, 1000 + i) for i in range(1000)])
    params = SplitParams(protocol="paper")
    first = split_events(label_events(frame, LabelParams()), params, seed=1)
    again = split_events(label_events(frame, LabelParams()), params, seed=1)
    other = split_events(label_events(frame, LabelParams()), params, seed=2)
    assert first["split"].to_list() == again["split"].to_list()
    assert first["split"].to_list() != other["split"].to_list()
    test_times = first.filter(pl.col("split") == "test")["timestamp"]
    train_times = first.filter(pl.col("split") == "train")["timestamp"]
    assert test_times.min() < train_times.max()  # the leak the paper protocol has


def test_summary_reports_balance_and_time_ranges() -> None:
    frame = interactions([(1, i + 1, 5.0 if i % 2 else 1.0, 1000 + i) for i in range(100)])
    events = split_events(label_events(frame, LabelParams()), Params().split, seed=0)
    summary = split_summary(events)
    assert list(summary) == ["train", "valid", "test"]
    assert summary["train"]["events"] == 80
    assert abs(summary["train"]["positive_rate"] - 0.5) < 0.05
    assert summary["train"]["last_timestamp"] < summary["test"]["first_timestamp"]
