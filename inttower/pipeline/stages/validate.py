"""The `validate` stage: check the ingested tables against their schemas."""

from __future__ import annotations

from inttower.config import Params
from inttower.data.schema import ValidationSummary, validate_tables
from inttower.data.tables import RawTables, SourceRef
from inttower.io import read_json, read_parquet, write_json, write_parquet
from inttower.pipeline.catalog import TABLES
from inttower.pipeline.paths import Paths


def load_ingested(paths: Paths) -> RawTables:
    """The ingested tables with their provenance, so validation errors name source lines."""
    recorded = read_json(paths["ingested.sources"])["sources"]
    removed = read_parquet(paths["ingested.removed"])["row"].to_numpy()
    return RawTables(
        **{name: read_parquet(paths.table("ingested", name)) for name in TABLES},
        sources={
            name: SourceRef(**ref, removed=removed if name == "interactions" else None)
            for name, ref in recorded.items()
        },
    )


def run(params: Params, paths: Paths) -> ValidationSummary:
    """Check the canonical tables against their schemas; nothing downstream is written on failure."""
    tables = load_ingested(paths)
    summary = validate_tables(tables)
    for name in TABLES:
        write_parquet(tables.table(name), paths.table("validated", name))
    write_json(summary.to_json(), paths["validation"])
    return summary
