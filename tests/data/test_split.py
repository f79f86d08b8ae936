"""Labels and splits: what a user of the split stage would notice."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from inttower.config import LabelParams, Params, SplitParams
from inttower.data.sources import read_dataset
from inttower.data.split import label_events, split_events, split_summary
from tests.features.helpers import interactions


def test_labels_drop_threes_and_mark_four_and_five_positive() -> None:
    frame = interactions([(1, 1, r, 100 + i) for i, r in enumerate([1, 2, 3, 4, 5, 4.5, 2.5])])
    labelled = label_events(frame, LabelParams())
    assert labelled["rating"].to_list() == [1, 2, 4, 5, 4.5, 2.5]
    assert labelled["label"].to_list() == [0, 0, 1, 1, 1, 0]


def test_half_star_ratings_drop_the_neutral_band(tmp_path: Path) -> None:
    """A half-star CSV layout (ml-latest-small's) read by the real reader: 3 and 3.5 are
    dropped by default, 4–5 are positives, 0.5–2.5 negatives."""
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"1,{item},{rating},{964982703 + item}\n"
        for item, rating in enumerate([0.5, 2.5, 3.0, 3.5, 4.0, 5.0], start=1)
    )
    (tmp_path / "ratings.csv").write_text(ratings)
    movies = "".join(f"{item},Movie {item} (1995),Drama\n" for item in range(1, 7))
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n" + movies)
    labelled = label_events(read_dataset(tmp_path, "ml-latest-small").interactions, LabelParams())
    assert labelled["rating"].to_list() == [0.5, 2.5, 4.0, 5.0]
    assert labelled["label"].to_list() == [0, 0, 1, 1]


def test_whole_star_ml100k_labels_are_the_papers(ml100k_dir: Path) -> None:
    interactions = read_dataset(ml100k_dir, "ml-100k").interactions
    labelled = label_events(interactions, LabelParams())
    assert labelled.height == interactions.filter(pl.col("rating") != 3).height  # no 3.5 there
    assert labelled["label"].sum() == interactions.filter(pl.col("rating") >= 4).height


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
