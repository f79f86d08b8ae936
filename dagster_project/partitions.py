"""The backtest's partitions: the weeks of the dataset's own timeline, registered at ingest.

Dynamic, so that a backfill offers the weeks the data holds (30 for ml-100k) and a re-ingest of
other data replaces them; kept apart from the asset modules, which all need it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from inttower.lifecycle.backtest import weekly_cutoffs
from inttower.pipeline.paths import Paths

BACKTEST_WINDOWS = dg.DynamicPartitionsDefinition(name="backtest_windows")


def window_keys(paths: Paths) -> list[str]:
    """The weeks of the ingested timeline, as partition keys (`YYYY-MM-DD`, Mondays)."""
    stamps = pl.scan_parquet(paths["ingested.interactions"]).select(
        first=pl.col("timestamp").min(), last=pl.col("timestamp").max()
    )
    first, last = stamps.collect().row(0)
    if first is None:
        return []
    return [
        datetime.fromtimestamp(cut, UTC).date().isoformat()
        for cut in weekly_cutoffs(int(first), int(last))
    ]


def register_windows(instance: dg.DagsterInstance, paths: Paths) -> list[str]:
    """Make the backtest's partitions the ingested timeline's weeks: add the new ones, drop
    those outside it (a re-ingest of other data, or of data cut at another `data.as_of`)."""
    keys = window_keys(paths)
    name = BACKTEST_WINDOWS.name
    stale = set(instance.get_dynamic_partitions(name)) - set(keys)
    for key in sorted(stale):
        instance.delete_dynamic_partition(name, key)
    instance.add_dynamic_partitions(name, keys)
    return keys
