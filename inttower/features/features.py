"""Point-in-time user and item features: each event sees only events strictly before it."""

from __future__ import annotations

import numpy as np
import polars as pl

from inttower.config import FeatureParams, SplitParams
from inttower.errors import InttowerError

# ml-1m's age buckets; ml-100k's exact ages are mapped onto them so both datasets agree.
AGE_BUCKETS = (1, 18, 25, 35, 45, 50, 56)
DENSE_USER = ("user_pos_rate", "user_mean_rating", "user_count")
DENSE_ITEM = ("item_pos_rate", "item_mean_rating", "item_count")


def train_priors(events: pl.DataFrame) -> dict[str, float]:
    """Global positive rate and mean rating of train: the paper protocol's smoothing target."""
    train = events.filter(pl.col("split") == "train")
    if train.is_empty():
        raise InttowerError("the train split is empty: check split fractions and the dataset")
    return {
        "positive_rate": float(train["label"].mean()),
        "mean_rating": float(train["rating"].mean()),
    }


def event_features(
    events: pl.DataFrame, params: FeatureParams, split: SplitParams
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Add per-event user/item statistics and the positive-item history; return the priors used."""
    priors = train_priors(events)
    events = events.sort(["timestamp", "user_id", "item_id"])
    if split.leaky:
        stats = _per_split_stats(events, params.smoothing, priors)
    else:
        stats = _point_in_time_stats(events, params.smoothing)
    history = positive_history(stats, params.history_length)
    return stats.with_columns(history=history), priors


def _point_in_time_stats(events: pl.DataFrame, smoothing: float) -> pl.DataFrame:
    # Even the smoothing target is point-in-time: the running global rate of all events before.
    events = events.join(_running_prior(events), on="timestamp", how="left")
    for key, prefix in (("user_id", "user"), ("item_id", "item")):
        # Aggregate per (key, timestamp) first so that events sharing a timestamp never see
        # each other: the running sum minus the current group is "strictly before".
        before = _strictly_before(events, [key, "timestamp"], over=key)
        events = events.join(before, on=[key, "timestamp"], how="left").with_columns(
            _smoothed(prefix, smoothing)
        )
        events = events.drop("n_before", "ratings_before").rename(
            {"pos_before": f"{prefix}_pos_before"}
        )
    return events.drop("item_pos_before", "prior_rate", "prior_rating")


def _strictly_before(events: pl.DataFrame, keys: list[str], over: str | None) -> pl.DataFrame:
    """Counts, positives and rating sums of the events before each key group."""
    running = [
        (pl.col(column).cum_sum().over(over) if over else pl.col(column).cum_sum()) - pl.col(column)
        for column in ("n", "pos", "ratings")
    ]
    return (
        events.group_by(keys)
        .agg(
            n=pl.len(),
            pos=pl.col("label").cast(pl.Int64).sum(),
            ratings=pl.col("rating").cast(pl.Float64).sum(),
        )
        .sort(keys)
        .with_columns(n_before=running[0], pos_before=running[1], ratings_before=running[2])
        .select(*keys, "n_before", "pos_before", "ratings_before")
    )


def _running_prior(events: pl.DataFrame) -> pl.DataFrame:
    # A weak start (rate ½, rating 3) that the first events quickly outweigh.
    before = _strictly_before(events, ["timestamp"], over=None)
    n_before = pl.col("n_before").cast(pl.Float64)
    return before.select(
        "timestamp",
        prior_rate=(pl.col("pos_before") + 0.5) / (n_before + 1.0),
        prior_rating=(pl.col("ratings_before") + 3.0) / (n_before + 1.0),
    )


def _per_split_stats(
    events: pl.DataFrame, smoothing: float, priors: dict[str, float]
) -> pl.DataFrame:
    # The official code's features (LEAKY): statistics over the whole split, the event's own
    # label included. Kept only so users can reproduce the paper's protocol and see the leak.
    events = events.with_columns(
        prior_rate=pl.lit(priors["positive_rate"]), prior_rating=pl.lit(priors["mean_rating"])
    )
    for key, prefix in (("user_id", "user"), ("item_id", "item")):
        events = events.with_columns(
            n_before=pl.len().over("split", key),
            pos_before=pl.col("label").cast(pl.Int64).sum().over("split", key),
            ratings_before=pl.col("rating").cast(pl.Float64).sum().over("split", key),
        ).with_columns(_smoothed(prefix, smoothing))
        events = (
            events.drop("n_before", "ratings_before")
            .with_columns(
                # history needs a true point-in-time positive count even under this protocol
                pl.col("label")
                .cast(pl.Int64)
                .cum_sum()
                .over(key)
                .sub(pl.col("label"))
                .alias(f"{prefix}_pos_before")
            )
            .drop("pos_before")
        )
    return events.drop("item_pos_before")


def _smoothed(prefix: str, smoothing: float) -> list[pl.Expr]:
    n_before = pl.col("n_before").cast(pl.Float64)
    seen = n_before + smoothing > 0  # with smoothing 0 an entity's first event takes the prior

    def rate(total: str, prior: str) -> pl.Expr:
        return (
            pl.when(seen)
            .then((pl.col(total) + smoothing * pl.col(prior)) / (n_before + smoothing))
            .otherwise(pl.col(prior))
        )

    return [
        rate("pos_before", "prior_rate").cast(pl.Float32).alias(f"{prefix}_pos_rate"),
        rate("ratings_before", "prior_rating").cast(pl.Float32).alias(f"{prefix}_mean_rating"),
        pl.col("n_before").cast(pl.Int32).alias(f"{prefix}_count"),
    ]


def positive_history(events: pl.DataFrame, length: int) -> pl.Series:
    """Each event's user's last `length` positively rated items strictly before it (0-padded)."""
    positives = events.filter(pl.col("label") == 1).sort(["user_id", "timestamp", "item_id"])
    pos_items = positives["item_id"].cast(pl.Int32).to_numpy()
    users, first = np.unique(positives["user_id"].to_numpy(), return_index=True)
    user_ids = events["user_id"].to_numpy()
    slot = np.searchsorted(users, user_ids)
    has_positive = (slot < users.size) & (users[np.minimum(slot, users.size - 1)] == user_ids)
    start = np.where(has_positive, first[np.minimum(slot, users.size - 1)], 0)
    end = start + events["user_pos_before"].to_numpy().astype(np.int64)
    history = np.zeros((events.height, length), dtype=np.int32)
    # Fill column by column (oldest → newest, left-padded): `length` vectorised passes.
    for column in range(length):
        index = end - length + column
        present = index >= start
        history[present, column] = pos_items[index[present]]
    return pl.Series("history", history, dtype=pl.Array(pl.Int32, length))


def user_attributes(users: pl.DataFrame) -> pl.DataFrame:
    """Static user fields as categorical strings (nulls stay null → encoded as unknown)."""
    bucket = pl.lit(None, dtype=pl.Int32)
    for low in AGE_BUCKETS:
        bucket = pl.when(pl.col("age") >= low).then(pl.lit(low)).otherwise(bucket)
    return users.select(
        "user_id",
        pl.col("gender"),
        bucket.cast(pl.String).alias("age_bucket"),
        pl.col("occupation"),
        pl.col("zip").str.slice(0, 2).alias("zip_prefix"),
    )


def item_attributes(items: pl.DataFrame) -> pl.DataFrame:
    """Static item fields: release decade and the genre list."""
    return items.select(
        "item_id",
        ((pl.col("year") // 10) * 10).cast(pl.String).alias("decade"),
        pl.col("genres"),
    )


def feature_summary(events: pl.DataFrame) -> dict[str, dict]:
    """Mean/min/max of each dense feature per split, for reports and Dagster metadata."""
    dense = [*DENSE_USER, *DENSE_ITEM]
    rows = events.group_by("split").agg(
        *(pl.col(name).mean().alias(f"{name}.mean") for name in dense),
        *(pl.col(name).max().alias(f"{name}.max") for name in dense),
        history_filled=(pl.col("user_pos_before") > 0).mean(),
    )
    return {row.pop("split"): row for row in rows.to_dicts()}
