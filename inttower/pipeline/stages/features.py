"""The `features` stage: point-in-time features and static attributes."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from inttower.config import FeatureParams, Params, SplitParams
from inttower.features.point_in_time import (
    event_features,
    feature_summary,
    item_attributes,
    user_attributes,
)
from inttower.io import Summary, read_parquet, write_json, write_parquet
from inttower.pipeline.paths import Paths


def compute_features(
    feature_params: FeatureParams, split_params: SplitParams, paths: Paths
) -> tuple[pl.DataFrame, dict[str, float], pl.DataFrame, pl.DataFrame]:
    """(events, priors, users, items) from the split events and validated tables: the features
    stage's computation, also used to score a champion built with other feature params."""
    validated_items = read_parquet(paths["validated.items"])
    events, priors = event_features(
        read_parquet(paths["split.events"]),
        feature_params,
        split_params,
        validated_items if feature_params.genre_profile else None,
    )
    users = user_attributes(read_parquet(paths["validated.users"]))
    return events, priors, users, item_attributes(validated_items)


@dataclass(frozen=True)
class FeaturesSummary(Summary):
    priors: dict[str, float]  # the train-split rates that smooth every point-in-time rate
    events: int
    by_split: dict[str, dict[str, float]]  # split -> "feature.mean"/"feature.max" -> value


def run(params: Params, paths: Paths) -> FeaturesSummary:
    """Point-in-time event features plus static user and item attributes."""
    events, priors, users, items = compute_features(params.features, params.split, paths)
    write_parquet(events, paths["features.events"])
    write_parquet(users, paths["features.users"])
    write_parquet(items, paths["features.items"])
    write_json(priors, paths["features.priors"])
    return FeaturesSummary(priors=priors, events=events.height, by_split=feature_summary(events))
