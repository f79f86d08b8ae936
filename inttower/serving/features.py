"""Features as of now: every user's and every item's point-in-time features after the last event
of the log, encoded with the model's train-fitted encoders, for the serving bundle.

The training features of an event see only events strictly before it. Serving asks the same
question of a moment just after the log ends, so it is answered by the same code: one probe
event per user and per item is appended one second after the last event, all probes sharing that
timestamp (a tie group sees none of its own members, so probes never see each other), and the
probes' features are read back. A user's probe pairs them with an arbitrary item and an item's
with an arbitrary user; only its own tower's half is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from inttower.config import FeatureParams, SplitParams
from inttower.features.encoded import tower_fields
from inttower.features.encoders import Encoders, encode_events
from inttower.features.point_in_time import event_features

SERVE_SPLIT = "serve"  # the probes' split: neither train (priors) nor any reported split
USER_KEY = "user_raw"
ITEM_KEY = "item_raw"
EVENT_COLUMNS = ("user_id", "item_id", "rating", "timestamp", "label", "split")


@dataclass
class LatestFeatures:
    """Encoded user-tower inputs per user and item-tower inputs per item, as of `timestamp`."""

    users: dict[str, torch.Tensor]  # every user field, plus `user_raw` (the user's own id)
    items: dict[str, torch.Tensor]  # every item field, plus `item_raw`
    timestamp: int  # unix seconds: one second after the last event the features saw


def latest_features(
    events: pl.DataFrame,
    users: pl.DataFrame,
    items: pl.DataFrame,
    validated_items: pl.DataFrame,
    encoders: Encoders,
    params: FeatureParams,
) -> LatestFeatures:
    """events: the labelled, split events (every split); users/items: the features stage's static
    attributes; validated_items: the catalogue (its genres feed the genre profile)."""
    if events.is_empty():
        raise ValueError("the event log is empty: there is nothing to serve features from")
    probe_time = int(events["timestamp"].max()) + 1
    user_ids = users["user_id"].sort()
    item_ids = items["item_id"].sort()
    base = events.select(EVENT_COLUMNS).with_columns(probe=pl.lit(None, dtype=pl.String))
    probes = pl.concat(
        [
            _probes(base, "user", user_ids, item_ids[0], probe_time),
            _probes(base, "item", item_ids, user_ids[0], probe_time),
        ]
    )
    # Point-in-time whatever protocol trained the model: a leaky per-split statistic has no
    # meaning for a moment that belongs to no split.
    featured, _ = event_features(
        pl.concat([base, probes]),
        params,
        SplitParams(),
        validated_items if params.genre_profile else None,
    )
    featured = featured.filter(pl.col("split") == SERVE_SPLIT)
    train_users = events.filter(pl.col("split") == "train")["user_id"].unique()
    fields = encoders.fields()
    halves = {}
    for tower, key, column in (("user", USER_KEY, "user_id"), ("item", ITEM_KEY, "item_id")):
        rows = featured.filter(pl.col("probe") == tower).drop("probe").sort(column)
        tensors = encode_events(rows, users, items, encoders, train_users)
        halves[tower] = {
            **{spec.name: tensors[spec.name] for spec in tower_fields(fields, tower)},
            key: tensors[key],
        }
    return LatestFeatures(users=halves["user"], items=halves["item"], timestamp=probe_time)


def _probes(
    events: pl.DataFrame, tower: str, ids: pl.Series, partner_id: int, timestamp: int
) -> pl.DataFrame:
    """One probe event per id of `tower`, each paired with the same `partner_id` of the other."""
    own, partner = ("user_id", "item_id") if tower == "user" else ("item_id", "user_id")
    schema = events.schema
    frame = pl.DataFrame({own: ids}).with_columns(pl.lit(partner_id).alias(partner))
    return frame.select(
        *(pl.col(name).cast(schema[name]) for name in ("user_id", "item_id")),
        pl.lit(0).cast(schema["rating"]).alias("rating"),
        pl.lit(timestamp).cast(schema["timestamp"]).alias("timestamp"),
        pl.lit(0).cast(schema["label"]).alias("label"),
        pl.lit(SERVE_SPLIT).cast(schema["split"]).alias("split"),
        pl.lit(tower).alias("probe"),
    )


def seen_items(interactions: pl.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray) -> tuple:
    """Per user (rows of `user_ids`), the catalogue rows (of `item_ids`) they interacted with,
    any rating: (offsets (U+1,), rows) in CSR form, rows sorted within a user."""
    pairs = (
        interactions.select("user_id", "item_id")
        .unique()
        .with_columns(
            user_row=pl.col("user_id").replace_strict(
                user_ids, np.arange(user_ids.size), default=None
            ),
            item_row=pl.col("item_id").replace_strict(
                item_ids, np.arange(item_ids.size), default=None
            ),
        )
        .drop_nulls(["user_row", "item_row"])
        .sort("user_row", "item_row")
    )
    counts = np.bincount(pairs["user_row"].to_numpy(), minlength=user_ids.size)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return offsets, pairs["item_row"].to_numpy().astype(np.int64)
