"""No leakage, on the real ml-100k: future labels never reach train rows, encoders or past features."""

from __future__ import annotations

import polars as pl
import pytest

from inttower.config import EncoderParams, Params
from inttower.data.sources import read_dataset
from inttower.data.split import label_events, split_events
from inttower.data.tables import RawTables
from inttower.features.encoders import fit_encoders
from inttower.features.point_in_time import (
    GENRE_PROFILE_PREFIX,
    event_features,
    item_attributes,
    optional_dense_columns,
    user_attributes,
)

PARAMS = Params()
STATISTICS = [
    "user_pos_rate",
    "user_mean_rating",
    "user_count",
    "item_pos_rate",
    "item_mean_rating",
    "item_count",
    "history",
]


def _feature_columns(features: pl.DataFrame) -> list[str]:
    """Every per-event feature: the statistics, the history, the behaviour features and the
    user's genre profile."""
    optional = optional_dense_columns(features.columns)
    profile = [name for name in optional if name.startswith(GENRE_PROFILE_PREFIX)]
    assert len(profile) == 18  # ml-100k's 19 flags less "unknown", which is no genre
    assert "user_residual" in optional and "user_recent_rate.5" in optional
    return [*STATISTICS, *optional]


@pytest.fixture(scope="module")
def ml100k(ml100k_dir) -> RawTables:
    return read_dataset(ml100k_dir, "ml-100k")


def _pipeline(interactions: pl.DataFrame, tables: RawTables):
    events = split_events(label_events(interactions, PARAMS.label), PARAMS.split, PARAMS.seed)
    features, _ = event_features(events, PARAMS.features, PARAMS.split, tables.items)
    users = user_attributes(tables.users)
    items = item_attributes(tables.items)
    encoders = fit_encoders(features, users, items, EncoderParams())
    return features, encoders


def _flip(interactions: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """Turn each chosen event's rating into its opposite label (5 ↔ 1)."""
    marked = keys.select("user_id", "item_id", "timestamp").with_columns(flip=pl.lit(True))
    return (
        interactions.join(marked, on=["user_id", "item_id", "timestamp"], how="left")
        .with_columns(
            rating=pl.when(pl.col("flip"))
            .then(pl.when(pl.col("rating") >= 4).then(1.0).otherwise(5.0))
            .otherwise(pl.col("rating"))
            .cast(pl.Float32)
        )
        .drop("flip")
    )


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("timestamp", "user_id", "item_id")


@pytest.fixture(scope="module")
def baseline(ml100k):
    return _pipeline(ml100k.interactions, ml100k)


def test_flipping_valid_and_test_labels_changes_no_train_row_and_no_encoder(
    ml100k, baseline
) -> None:
    features, encoders = baseline
    columns = _feature_columns(features)
    future = features.filter(pl.col("split") != "train")
    chosen = future.sample(n=500, seed=3)
    flipped_features, flipped_encoders = _pipeline(_flip(ml100k.interactions, chosen), ml100k)

    train_before = _sorted(features.filter(pl.col("split") == "train"))
    train_after = _sorted(flipped_features.filter(pl.col("split") == "train"))
    assert train_before.equals(train_after)
    assert flipped_encoders == encoders
    # the flip really happened and really reached later features: the test can fail
    future_after = _sorted(flipped_features.filter(pl.col("split") != "train"))
    assert not _sorted(future).select(columns).equals(future_after.select(columns))


@pytest.mark.parametrize("quantile", [0.3, 0.85, 0.95])
def test_flipping_a_label_at_time_t_changes_no_feature_at_or_before_t(
    ml100k, baseline, quantile
) -> None:
    features, _ = baseline
    columns = _feature_columns(features)
    ordered = _sorted(features)
    chosen = ordered.slice(int(ordered.height * quantile), 1)
    t = chosen["timestamp"].item()
    flipped, _ = _pipeline(_flip(ml100k.interactions, chosen), ml100k)
    flipped = _sorted(flipped)

    at_or_before = pl.col("timestamp") <= t
    before_cols = ordered.filter(at_or_before).select(columns)
    assert before_cols.equals(flipped.filter(at_or_before).select(columns))
    # the same user's or item's later events do see the flipped label
    later = ~at_or_before & (
        (pl.col("user_id") == chosen["user_id"].item())
        | (pl.col("item_id") == chosen["item_id"].item())
    )
    assert ordered.filter(later).height > 0
    assert not ordered.filter(later).select(columns).equals(flipped.filter(later).select(columns))
