"""The `ingest` stage: fetch and parse the dataset into the canonical tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from inttower.config import Params
from inttower.data.as_of import before
from inttower.data.fingerprint import source_fingerprint
from inttower.data.sources import load_raw
from inttower.data.synthetic import empty_oracle
from inttower.errors import StageInputError
from inttower.io import Summary, read_json, write_json, write_parquet
from inttower.pipeline.catalog import TABLES
from inttower.pipeline.paths import Paths, mirror_dir


@dataclass(frozen=True)
class IngestSummary(Summary):
    dataset: str
    as_of: str | None
    rows: dict[str, int]  # table -> rows kept
    removed_by_as_of: int  # interactions after data.as_of, dropped

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "as_of": self.as_of,
            **{f"{table}_rows": rows for table, rows in self.rows.items()},
            "removed_by_as_of": self.removed_by_as_of,
        }


def run(params: Params, paths: Paths) -> IngestSummary:
    """Fetch (mirror or GroupLens) and parse the dataset into the canonical tables; refuses when
    the source changed since `source` fingerprinted it, so ingest never outruns its lineage."""
    recorded = read_json(paths["source.fingerprint"])
    if source_fingerprint(params, mirror_dir(), paths.downloads) != recorded:
        raise StageInputError(
            f"{paths['source.fingerprint']}: the source changed since the `source` stage "
            "fingerprinted it (or params.data did); run `source` again"
        )
    loaded = load_raw(params, downloads_dir=paths.downloads, mirror=mirror_dir())
    tables = before(loaded, params.data.as_of, params.data.cutoff)
    for name in TABLES:
        write_parquet(tables.table(name), paths.table("ingested", name))
    sources = {name: ref.to_json() for name, ref in tables.sources.items()}
    record = {"dataset": params.data.dataset, "as_of": params.data.as_of, "sources": sources}
    write_json(record, paths["ingested.sources"])
    oracle = tables.oracle if tables.oracle is not None else empty_oracle()
    write_parquet(oracle, paths["ingested.oracle"])
    removed = tables.sources.get("interactions")
    rows = removed.removed if removed is not None and removed.removed is not None else []
    write_parquet(pl.DataFrame({"row": rows}, schema={"row": pl.Int64}), paths["ingested.removed"])
    return IngestSummary(
        dataset=params.data.dataset,
        as_of=params.data.as_of,
        rows={name: tables.table(name).height for name in TABLES},
        removed_by_as_of=len(rows),
    )
