"""Small builders shared by the feature tests."""

from __future__ import annotations

import polars as pl

from inttower.config import Params
from inttower.data.split import label_events, split_events
from inttower.data.tables import INTERACTIONS_SCHEMA


def interactions(rows: list[tuple[int, int, float, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=INTERACTIONS_SCHEMA, orient="row")


def split_of(frame: pl.DataFrame, params: Params | None = None) -> pl.DataFrame:
    params = params or Params()
    return split_events(label_events(frame, params.label), params.split, params.seed)
