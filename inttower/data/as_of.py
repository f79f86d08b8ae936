"""The world as it was at `data.as_of`: events at or after it are removed at ingest, before any
stage can see them, so every later output is what it would have been on that day."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl

from inttower.config import format_instant
from inttower.data.tables import RawTables
from inttower.errors import InttowerError


def _instant(seconds: int) -> str:
    return format_instant(dt.datetime.fromtimestamp(seconds, dt.UTC))


def before(tables: RawTables, as_of: str | None, cutoff: int | None) -> RawTables:
    """The tables with only the events strictly before `cutoff` (unix seconds). The source
    rows removed are kept on the interactions' SourceRef so errors still name the right line.
    Raises when `as_of` lies outside the dataset's time range: nothing, or nothing changed."""
    if cutoff is None:
        return tables
    stamps = tables.interactions["timestamp"]
    if stamps.is_empty():
        raise InttowerError("data.as_of: the dataset has no events to cut")
    first, last = int(stamps.min()), int(stamps.max())  # type: ignore[arg-type]
    if not first < cutoff <= last:
        raise InttowerError(
            f"data.as_of {as_of}: outside the dataset's time range; expected after its first "
            f"event ({_instant(first)}) and no later than its last ({_instant(last)})"
        )
    keep = stamps < cutoff
    removed = np.flatnonzero(~keep.to_numpy()).astype(np.int64)
    sources = dict(tables.sources)
    if "interactions" in sources:
        sources["interactions"] = dataclasses.replace(sources["interactions"], removed=removed)
    oracle = tables.oracle
    if oracle is not None and not oracle.is_empty():
        oracle = oracle.filter(pl.col("timestamp") < cutoff)
    return dataclasses.replace(
        tables, interactions=tables.interactions.filter(keep), sources=sources, oracle=oracle
    )
