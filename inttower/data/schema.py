"""Validation of the canonical tables (pandera, polars backend), referential integrity and
duplicate events.

A failure names the table, its source file, every broken check with its row count, and shows
up to five failing rows with the file and line they came from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from inttower.data.tables import TABLE_SCHEMAS, RawTables, SourceRef
from inttower.errors import ValidationFailed
from inttower.io import Summary

EARLIEST = int(dt.datetime(1990, 1, 1, tzinfo=dt.UTC).timestamp())  # before MovieLens existed
SAMPLE_ROWS = 5
TABLE_ORDER = ("interactions", "users", "items")
# One rating event: a user rates an item at a second. MovieLens keeps one rating per event.
EVENT_KEY = ("user_id", "item_id", "timestamp")
_NO_FAILURES = {"check": pl.String, "column": pl.String, "row": pl.Int64, "first_row": pl.Int64}


def _multiple_of(step: float) -> pa.Check:
    def check(data: pa.PolarsData) -> pl.LazyFrame:
        halves = pl.col(data.key) / step
        return data.lazyframe.select((halves - halves.round(0)).abs() < 1e-6)

    return pa.Check(check, name=f"multiple_of({step:g})")


def table_schemas(
    rating_range: tuple[float, float] = (0.5, 5.0),
    rating_step: float = 0.5,
    latest: int | None = None,
) -> dict[str, pa.DataFrameSchema]:
    """One pandera schema per table; dtypes come from tables.py so there is one definition.
    `latest` (unix seconds) bounds timestamps; default: now plus a day of clock skew."""
    latest = latest if latest is not None else int(dt.datetime.now(dt.UTC).timestamp()) + 86_400
    checks: dict[str, dict[str, list[pa.Check]]] = {
        "interactions": {
            "rating": [pa.Check.in_range(*rating_range), _multiple_of(rating_step)],
            # named without the bound: validation.json must not change from one day to the next
            "timestamp": [
                pa.Check.in_range(EARLIEST, latest, error="in_range(1990-01-01, now + 1 day)")
            ],
        },
        "users": {
            "gender": [pa.Check.isin(["M", "F"])],
            "age": [pa.Check.in_range(1, 120)],
        },
        "items": {
            "year": [
                pa.Check.in_range(
                    1870,
                    dt.datetime.fromtimestamp(latest, dt.UTC).year + 5,
                    error="in_range(1870, this year + 5)",
                )
            ]
        },
    }
    keys = {"interactions": ("user_id", "item_id"), "users": ("user_id",), "items": ("item_id",)}
    # Columns a row cannot do without: the keys, the event itself, a movie's title and genres.
    required = {
        "interactions": set(TABLE_SCHEMAS["interactions"]),
        "users": {"user_id"},
        "items": {"item_id", "title", "genres"},
    }
    return {
        table: pa.DataFrameSchema(
            {
                column: pa.Column(
                    dtype,
                    checks=checks[table].get(column, []),
                    nullable=column not in required[table],
                    unique=table != "interactions" and column in keys[table],
                )
                for column, dtype in TABLE_SCHEMAS[table].items()
            },
            name=table,
            strict=True,
        )
        for table in TABLE_ORDER
    }


def _pandera_failures(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> pl.DataFrame:
    """Failure cases as (check, column, row); row is null for table-level failures (dtype …)."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        table_level = pl.col("schema_context") == "DataFrameSchema"
        return cases.select(
            pl.col("check").cast(pl.String),
            # For a missing or unexpected column pandera puts the column's name in failure_case.
            pl.when(table_level)
            .then(pl.col("failure_case"))
            .otherwise(pl.col("column"))
            .alias("column"),
            pl.col("index").cast(pl.Int64).alias("row"),
            pl.lit(None, pl.Int64).alias("first_row"),
        )
    return pl.DataFrame(schema=_NO_FAILURES)


def _orphans(interactions: pl.DataFrame, table: pl.DataFrame, key: str) -> pl.DataFrame:
    """Interaction rows whose `key` is absent from `table` (null keys are reported elsewhere)."""
    if key not in interactions.columns or key not in table.columns:
        return pl.DataFrame(schema=_NO_FAILURES)
    known = table.select(pl.col(key).cast(pl.Int64, strict=False)).drop_nulls()
    return (
        interactions.select(pl.col(key).cast(pl.Int64, strict=False))
        .with_row_index("row")
        .filter(pl.col(key).is_not_null())
        .join(known, on=key, how="anti")
        .select(
            pl.lit(f"{key} in {'users' if key == 'user_id' else 'items'}").alias("check"),
            pl.lit(key).alias("column"),
            pl.col("row").cast(pl.Int64),
            pl.lit(None, pl.Int64).alias("first_row"),
        )
    )


def _duplicates(interactions: pl.DataFrame) -> pl.DataFrame:
    """Rows repeating an earlier row's event (user, item, timestamp), each with that earlier row.
    Same rating: the line was written twice (a file concatenated with itself, say). Another
    rating: two answers for one event, so the label is ambiguous; rejected too, never resolved
    silently. Re-ratings at another second are separate events and pass."""
    columns = [*EVENT_KEY, "rating"]
    if not set(columns) <= set(interactions.columns):
        return pl.DataFrame(schema=_NO_FAILURES)
    # One cheap group-by first: the window functions below run only on the (usually no) repeats.
    counts = interactions.group_by(EVENT_KEY).agg(pl.len().alias("count"))
    repeated_keys = counts.filter(pl.col("count") > 1).select(EVENT_KEY)
    if repeated_keys.is_empty():
        return pl.DataFrame(schema=_NO_FAILURES)
    events = interactions.select(columns).with_row_index("row")
    repeated = events.join(repeated_keys, on=EVENT_KEY, how="semi").drop_nulls(columns)
    first_event = pl.col("row").min().over(EVENT_KEY)
    first_exact = pl.col("row").min().over(columns)
    return (
        repeated.with_columns(first_event.alias("first_event"), first_exact.alias("first_exact"))
        .filter(pl.col("row") != pl.col("first_event"))
        .select(
            pl.when(pl.col("row") != pl.col("first_exact"))
            .then(pl.lit("duplicate rating"))
            .otherwise(pl.lit("conflicting rating"))
            .alias("check"),
            pl.lit(", ".join(EVENT_KEY)).alias("column"),
            pl.col("row").cast(pl.Int64),
            pl.when(pl.col("row") != pl.col("first_exact"))
            .then(pl.col("first_exact"))
            .otherwise(pl.col("first_event"))
            .cast(pl.Int64)
            .alias("first_row"),
        )
        .sort("row")
    )


def _sample(frame: pl.DataFrame, failures: pl.DataFrame, source: SourceRef | None) -> str:
    """A small text table of failing rows: where each came from, what failed, the row itself."""
    rows = (
        failures.drop_nulls("row")
        .group_by("row")
        .agg(
            pl.col("check").unique(maintain_order=True).str.join("; "),
            pl.col("first_row").drop_nulls().first(),
        )
        .sort("row")
        .head(SAMPLE_ROWS)
    )
    if rows.is_empty():
        return "(no row-level failures: the table's columns or dtypes are wrong)"
    picked = frame[rows["row"].to_list()].rows()
    header = ["source", "failed", *frame.columns]
    body = []
    for (row, failed, first_row), values in zip(rows.iter_rows(), picked, strict=True):
        if first_row is not None:  # a duplicate: say which earlier line it repeats
            lines = source is not None and not source.derived
            failed += (
                f" of line {source.line_of(first_row)}" if lines else f" of row {first_row + 1}"
            )
        where = source.locate(row) if source else f"row {row + 1}"
        body.append([where, failed, *(_short(value) for value in values)])
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)
        ).rstrip()
        for line in [header, *body]
    )


def _short(value: Any, limit: int = 40) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class ValidationSummary(Summary):
    """What validation found (`reports/validation.json`): every table's rows and source, and the
    checks every row passed."""

    rows: dict[str, int]  # table -> rows
    sources: dict[str, str]  # table -> the file it was read from
    checks: list[str]
    rating_range: tuple[float, float]

    @property
    def checks_passed(self) -> int:
        return len(self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "sources": self.sources,
            "checks": self.checks,
            "checks_passed": self.checks_passed,
            "rating_range": list(self.rating_range),
        }


def validate_tables(
    tables: RawTables,
    rating_range: tuple[float, float] = (0.5, 5.0),
    rating_step: float = 0.5,
) -> ValidationSummary:
    """Check every table, every interaction's user and item, and that no rating event
    (user, item, timestamp) occurs twice; return a summary, or raise ValidationFailed for the
    first table that breaks, naming its source file and lines (a duplicate: both lines)."""
    schemas = table_schemas(rating_range, rating_step)
    failures: dict[str, pl.DataFrame] = {}
    for table in TABLE_ORDER:
        failures[table] = _pandera_failures(schemas[table], tables.table(table))
    failures["interactions"] = pl.concat(
        [
            failures["interactions"],
            _orphans(tables.interactions, tables.users, "user_id"),
            _orphans(tables.interactions, tables.items, "item_id"),
            _duplicates(tables.interactions),
        ]
    )
    for table in TABLE_ORDER:
        found = failures[table]
        if found.is_empty():
            continue
        counts = (
            found.group_by("check", "column", maintain_order=True)
            .agg(pl.len().alias("count"))
            .to_dicts()
        )
        source = tables.sources.get(table)
        raise ValidationFailed(
            table,
            source.where if source else "<unknown source>",
            counts,
            _sample(tables.table(table), found, source),
        )

    checks = []
    for table, schema in schemas.items():
        for column, spec in schema.columns.items():
            checks.append(f"{table}.{column}: dtype {spec.dtype}")
            checks += [f"{table}.{column}: not null"] if not spec.nullable else []
            checks += [f"{table}.{column}: unique"] if spec.unique else []
            checks += [f"{table}.{column}: {check.error or check.name}" for check in spec.checks]
    checks += ["interactions.user_id: in users", "interactions.item_id: in items"]
    checks += [f"interactions.({', '.join(EVENT_KEY)}): unique event"]
    return ValidationSummary(
        rows={table: tables.table(table).height for table in TABLE_ORDER},
        sources={table: ref.path for table, ref in tables.sources.items()},
        checks=checks,
        rating_range=rating_range,
    )
