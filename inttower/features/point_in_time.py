"""Point-in-time user and item features: each event sees only events strictly before it."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from inttower.config import FeatureParams, SplitParams
from inttower.errors import InttowerError

# ml-1m's age buckets; ml-100k's exact ages are mapped onto them so both datasets agree.
AGE_BUCKETS = (1, 18, 25, 35, 45, 50, 56)
DENSE_USER = ("user_pos_rate", "user_mean_rating", "user_count")
DENSE_ITEM = ("item_pos_rate", "item_mean_rating", "item_count")
GENRE_PROFILE_PREFIX = "user_genre_rate."  # one dense user column per genre
RESIDUAL = ("user_residual", "item_residual")
RECENT_RATE_PREFIX = "user_recent_rate."  # one dense user column per window
RECENT_RESIDUAL_PREFIX = "user_recent_residual."
OPTIONAL_PREFIXES = (GENRE_PROFILE_PREFIX, RECENT_RATE_PREFIX, RECENT_RESIDUAL_PREFIX)
# Pseudo-events pulling a recent-window rate towards the user's long-run rate: a window of one
# event is mostly the long-run rate, a full window of 20 is mostly itself.
RECENT_PSEUDO_COUNT = 2.0


def optional_dense_columns(columns: list[str]) -> list[str]:
    """The dense feature columns beyond the fixed six that this features table carries."""
    return [name for name in columns if name in RESIDUAL or name.startswith(OPTIONAL_PREFIXES)]


def dense_columns(columns: list[str]) -> list[str]:
    """Every dense feature column of a features table: the fixed six, then the optional ones."""
    return [*DENSE_USER, *DENSE_ITEM, *optional_dense_columns(columns)]


def dense_tower(name: str) -> Literal["user", "item"]:
    """Which tower a dense feature describes, by its name's prefix."""
    return "item" if name.startswith("item_") else "user"


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
    events: pl.DataFrame,
    params: FeatureParams,
    split: SplitParams,
    items: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Add per-event user/item statistics, the positive-item history and, given the items'
    genres, the user's genre profile; return the priors used."""
    priors = train_priors(events)
    events = events.sort(["timestamp", "user_id", "item_id"])
    labels = events["label"].to_numpy().astype(np.int64)
    ratings = events["rating"].to_numpy().astype(np.float64)
    timestamps = events["timestamp"].to_numpy()
    by_user = RunningGroups(events["user_id"].to_numpy(), timestamps)
    by_item = RunningGroups(events["item_id"].to_numpy(), timestamps)
    point_in_time = _point_in_time_stats(
        events, by_user, by_item, labels, ratings, params.smoothing
    )
    if split.leaky:
        stats = _per_split_stats(events, params.smoothing, priors)
    else:
        stats = events.with_columns(point_in_time)
    # Behaviour features are point-in-time under either protocol: they add no leak of their own.
    rates = {series.name: series for series in point_in_time}
    user_rate, item_rate = (
        rates[name].to_numpy().astype(np.float64) for name in ("user_pos_rate", "item_pos_rate")
    )
    stats = stats.with_columns(
        behaviour_features(by_user, by_item, labels, user_rate, item_rate, params)
    )
    history = positive_history(by_user, events["item_id"].to_numpy(), labels, params.history_length)
    stats = stats.with_columns(history=history)
    if items is not None:
        stats = stats.with_columns(genre_profile(stats, items, by_user, labels, params.smoothing))
    return stats, priors


def behaviour_features(
    by_user: RunningGroups,
    by_item: RunningGroups,
    labels: np.ndarray,
    user_rate: np.ndarray,
    item_rate: np.ndarray,
    params: FeatureParams,
) -> list[pl.Series]:
    """Residuals and recent-window rates, each from events strictly before.

    A user's residual is their mean surprise over earlier events (label − that item's rate at the
    time): a taste for rating high that the items' popularity does not explain; an item's is the
    same against its raters' rates. Recent windows follow the user's drift within a session
    (MovieLens users rate in bursts, and a burst's labels run together).
    """
    columns: list[pl.Series] = []
    user_surprise = labels - item_rate
    if params.residuals:
        for name, groups, surprise in (
            ("user_residual", by_user, user_surprise),
            ("item_residual", by_item, labels - user_rate),
        ):
            count = groups.before(np.ones(labels.size, dtype=np.int64))
            residual = _smooth(groups.before(surprise), count, np.zeros(1), params.smoothing)
            columns.append(pl.Series(name, residual, dtype=pl.Float32))
    for window in params.recent_windows:
        total, count = by_user.last_before(labels.astype(np.float64), window)
        rate = (total + RECENT_PSEUDO_COUNT * user_rate) / (count + RECENT_PSEUDO_COUNT)
        columns.append(pl.Series(f"{RECENT_RATE_PREFIX}{window}", rate, dtype=pl.Float32))
        if params.residuals:
            total, count = by_user.last_before(user_surprise, window)
            columns.append(
                pl.Series(
                    f"{RECENT_RESIDUAL_PREFIX}{window}",
                    total / (count + RECENT_PSEUDO_COUNT),
                    dtype=pl.Float32,
                )
            )
    return columns


def genre_profile(
    events: pl.DataFrame,
    items: pl.DataFrame,
    by_user: RunningGroups,
    labels: np.ndarray,
    smoothing: float,
) -> list[pl.Series]:
    """Per event, the user's smoothed positive rate on each genre from events strictly before.

    A user-side vector the item tower's genres can be matched against: two-tower models cannot
    see a user×item cross feature, but they can learn one from these two halves.
    """
    genres = sorted(items["genres"].explode().drop_nulls().unique().to_list())
    # A small item × genre membership table, gathered per event by the item's row: far leaner
    # than a per-event list of genre strings at 25M events.
    catalogue = items.select("item_id", "genres").sort("item_id")
    membership = np.stack(
        [catalogue["genres"].list.contains(genre).fill_null(False).to_numpy() for genre in genres],
        axis=1,
    )
    item_ids = catalogue["item_id"].to_numpy()
    event_items = events["item_id"].to_numpy()
    row = np.minimum(np.searchsorted(item_ids, event_items), max(item_ids.size - 1, 0))
    known = item_ids[row] == event_items if item_ids.size else np.zeros(events.height, bool)
    prior = events["user_pos_rate"].to_numpy().astype(np.float64)
    columns = []
    for column, genre in enumerate(genres):
        has_genre = (membership[row, column] & known).astype(np.int64)
        count = by_user.before(has_genre)
        positives = by_user.before(labels * has_genre)
        columns.append(
            pl.Series(
                f"{GENRE_PROFILE_PREFIX}{genre}",
                _smooth(positives, count, prior, smoothing),
                dtype=pl.Float32,
            )
        )
    return columns


class RunningGroups:
    """Events (in time order) regrouped by a key, for "strictly before" running totals.

    Sorting by key is stable, so within a key events stay in time order; events of one key that
    share a timestamp form a tie group, and a tie group sees none of its own members.
    """

    def __init__(self, keys: np.ndarray, timestamps: np.ndarray) -> None:
        # int32 positions: half the memory of int64 at 25M events
        self.order = np.argsort(keys, kind="stable").astype(np.int32)
        sorted_keys, sorted_times = keys[self.order], timestamps[self.order]
        positions = np.arange(keys.size, dtype=np.int32)
        new_key = np.ones(keys.size, dtype=bool)
        new_key[1:] = sorted_keys[1:] != sorted_keys[:-1]
        new_group = new_key.copy()
        new_group[1:] |= sorted_times[1:] != sorted_times[:-1]
        self.key_start = np.maximum.accumulate(np.where(new_key, positions, 0))
        self.group_start = np.maximum.accumulate(np.where(new_group, positions, 0))

    def sorted(self, values: np.ndarray) -> np.ndarray:
        return values[self.order]

    def exclusive_cumsum(self, values: np.ndarray) -> np.ndarray:
        """Running totals in key order, each row's own value excluded."""
        ordered = self.sorted(values)
        return np.cumsum(ordered) - ordered

    def before(self, values: np.ndarray) -> np.ndarray:
        """Per event (original order): the sum of `values` over its key's earlier tie groups."""
        running = self.exclusive_cumsum(values)
        result = np.empty_like(running)
        result[self.order] = running[self.group_start] - running[self.key_start]
        return result

    def last_before(self, values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
        """Per event (original order): the sum of `values` over its key's last `window` events
        before its tie group, and how many events that is (fewer at the key's start)."""
        running = np.concatenate([[0], np.cumsum(self.sorted(values))])  # sum of the first j
        end = self.group_start.astype(np.int64)
        start = np.maximum(end - window, self.key_start)
        total = np.empty(values.size, dtype=running.dtype)
        count = np.empty(values.size, dtype=np.int64)
        total[self.order] = running[end] - running[start]
        count[self.order] = end - start
        return total, count


def _point_in_time_stats(
    events: pl.DataFrame,
    by_user: RunningGroups,
    by_item: RunningGroups,
    labels: np.ndarray,
    ratings: np.ndarray,
    smoothing: float,
) -> list[pl.Series]:
    # Even the smoothing target is point-in-time: the running global rate of all events before,
    # from a weak start (rate ½, rating 3) that the first events quickly outweigh.
    overall = RunningGroups(np.zeros(events.height, dtype=np.int8), events["timestamp"].to_numpy())
    seen = overall.before(np.ones(events.height, dtype=np.int64)).astype(np.float64)
    prior_rate = (overall.before(labels) + 0.5) / (seen + 1.0)
    prior_rating = (overall.before(ratings) + 3.0) / (seen + 1.0)
    columns = []
    for prefix, groups in (("user", by_user), ("item", by_item)):
        count = groups.before(np.ones(events.height, dtype=np.int64))
        columns += [
            pl.Series(
                f"{prefix}_pos_rate",
                _smooth(groups.before(labels), count, prior_rate, smoothing),
                dtype=pl.Float32,
            ),
            pl.Series(
                f"{prefix}_mean_rating",
                _smooth(groups.before(ratings), count, prior_rating, smoothing),
                dtype=pl.Float32,
            ),
            pl.Series(f"{prefix}_count", count, dtype=pl.Int32),
        ]
    return columns


def _smooth(
    total: np.ndarray, count: np.ndarray, prior: np.ndarray, smoothing: float
) -> np.ndarray:
    # With smoothing 0 an entity's first event has nothing to average: it takes the prior.
    denominator = count + smoothing
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (total + smoothing * prior) / denominator
    return np.where(denominator > 0, rate, prior)


def _per_split_stats(
    events: pl.DataFrame, smoothing: float, priors: dict[str, float]
) -> pl.DataFrame:
    # The official code's features (LEAKY): statistics over the whole split, the event's own
    # label included. Kept only so users can reproduce the paper's protocol and see the leak.
    columns = []
    for key, prefix in (("user_id", "user"), ("item_id", "item")):
        count = pl.len().over("split", key).cast(pl.Float64)
        positives = pl.col("label").cast(pl.Float64).sum().over("split", key)
        ratings = pl.col("rating").cast(pl.Float64).sum().over("split", key)
        columns += [
            ((positives + smoothing * priors["positive_rate"]) / (count + smoothing))
            .cast(pl.Float32)
            .alias(f"{prefix}_pos_rate"),
            ((ratings + smoothing * priors["mean_rating"]) / (count + smoothing))
            .cast(pl.Float32)
            .alias(f"{prefix}_mean_rating"),
            count.cast(pl.Int32).alias(f"{prefix}_count"),
        ]
    return events.with_columns(columns)


def positive_history(
    by_user: RunningGroups, items: np.ndarray, labels: np.ndarray, length: int
) -> pl.Series:
    """Each event's user's last `length` positively rated items strictly before it (0-padded)."""
    positive = by_user.sorted(labels) == 1
    # in user order, the k-th positive overall is pos_items[k]; a row's history is the slice
    # of its user's positives that precede its tie group
    pos_items = by_user.sorted(items)[positive].astype(np.int32)
    rank = np.cumsum(positive) - positive
    end = rank[by_user.group_start]
    first = rank[by_user.key_start]
    history = np.zeros((items.size, length), dtype=np.int32)
    for column in range(length):  # `length` vectorised passes, oldest → newest (left-padded)
        index = end - length + column
        present = index >= first
        rows = by_user.order[present]
        history[rows, column] = pos_items[index[present]]
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
    """Mean and max of each dense feature per split (the genre profile's many columns aside),
    for reports and Dagster metadata: a shift between splits shows here first."""
    dense = [
        name for name in dense_columns(events.columns) if not name.startswith(GENRE_PROFILE_PREFIX)
    ]
    rows = events.group_by("split").agg(
        *(pl.col(name).mean().alias(f"{name}.mean") for name in dense),
        *(pl.col(name).max().alias(f"{name}.max") for name in dense),
        history_filled=(pl.col("history").arr.last() > 0).mean(),
    )
    return {row.pop("split"): row for row in rows.to_dicts()}
