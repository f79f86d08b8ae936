"""`data.dataset: custom`: your own event log, as parquet or CSV in the canonical schema.

interactions (required): user_id, item_id, rating, timestamp. users (optional): user_id, gender,
age, occupation, zip. items (optional): item_id, title, year, genres (a list, or a `|`-separated
string in CSV). Ids may be any integer type, ratings int or float, timestamps unix seconds or a
datetime column; every cast is checked and a value that does not fit names its file, row and
column. Without a users or items file the ids come from the interactions, with nulls for the
rest, as for the MovieLens layouts that lack them (an item without an items file is titled by
its id, and has no genres).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from inttower.config import CustomParams
from inttower.data.tables import TABLE_SCHEMAS, RawTables, SourceRef, conform
from inttower.errors import DataSourceError

REQUIRED = {
    "interactions": ("user_id", "item_id", "rating", "timestamp"),
    "users": ("user_id",),
    "items": ("item_id",),
}


def custom_files(params: CustomParams) -> dict[str, Path]:
    """The configured files by table, missing ones left out."""
    chosen = {"interactions": params.interactions, "users": params.users, "items": params.items}
    return {name: Path(path) for name, path in chosen.items() if path}


def _first_line(path: Path) -> int:
    return 2 if path.suffix.lower() == ".csv" else 1  # CSV: a header line before row 0


def _read(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise DataSourceError(path, "file not found (data.custom)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema=False)  # every column as text: cast below
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataSourceError(path, f"unreadable {suffix[1:]} file ({exc})") from None
    raise DataSourceError(path, f"expected a .parquet or .csv file, got {suffix or 'no suffix'}")


def _where(path: Path, row: int) -> int:
    return _first_line(path) + row


def _cast(frame: pl.DataFrame, column: str, dtype: pl.DataType, path: Path, what: str) -> pl.Series:
    """`column` as `dtype`, or a DataSourceError naming the first value that does not fit."""
    source = frame[column]
    if dtype == pl.Int64 and source.dtype == pl.String:
        cast = source.str.strip_chars().cast(pl.Int64, strict=False)
    elif dtype == pl.Int64 and source.dtype.is_float():
        whole = source == source.floor()
        cast = source.cast(pl.Int64, strict=False).set(~whole.fill_null(True), None)
    else:
        cast = source.cast(dtype, strict=False)
    bad = cast.is_null() & source.is_not_null()
    if bad.any():
        row = int(bad.arg_max())  # type: ignore[arg-type]
        raise DataSourceError(
            path, f"column {column}: expected {what}, got {source[row]!r}", line=_where(path, row)
        )
    return cast


def _timestamps(frame: pl.DataFrame, path: Path) -> pl.Series:
    source = frame["timestamp"]
    if source.dtype.is_temporal():
        return source.dt.epoch("s").alias("timestamp")
    if source.dtype == pl.String:
        numbers = source.str.strip_chars().cast(pl.Int64, strict=False)
        moments = source.str.to_datetime(strict=False, time_zone="UTC").dt.epoch("s")
        merged = numbers.fill_null(moments)
        bad = merged.is_null() & source.is_not_null()
        if bad.any():
            row = int(bad.arg_max())  # type: ignore[arg-type]
            raise DataSourceError(
                path,
                f"column timestamp: expected unix seconds or an ISO datetime, got {source[row]!r}",
                line=_where(path, row),
            )
        return merged.alias("timestamp")
    return _cast(frame, "timestamp", pl.Int64(), path, "unix seconds (an integer)")


def _table(name: str, path: Path) -> pl.DataFrame:
    frame = _read(path)
    missing = [column for column in REQUIRED[name] if column not in frame.columns]
    if missing:
        raise DataSourceError(
            path,
            f"{name}: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(TABLE_SCHEMAS[name])} (the canonical schema, see README)",
        )
    columns: list[pl.Series] = []
    for column, dtype in TABLE_SCHEMAS[name].items():
        if column not in frame.columns:
            continue
        if column == "timestamp":
            columns.append(_timestamps(frame, path))
        elif column == "genres":
            genres = frame["genres"]
            if genres.dtype == pl.String:
                genres = genres.str.split("|").list.eval(pl.element().filter(pl.element() != ""))
            columns.append(genres.cast(dtype))
        elif dtype == pl.String:
            columns.append(frame[column].cast(pl.String))
        elif dtype.is_integer():
            columns.append(_cast(frame, column, pl.Int64(), path, "an integer").cast(dtype))
        else:
            columns.append(_cast(frame, column, dtype, path, "a number"))
    return conform(pl.DataFrame(columns), name)


def read_custom(params: CustomParams) -> RawTables:
    """The configured files in canonical form, with their sources for row-level errors."""
    files = custom_files(params)
    interactions = _table("interactions", files["interactions"])
    tables = {"interactions": interactions}
    sources = {"interactions": SourceRef(str(files["interactions"]),
                                         _first_line(files["interactions"]))}
    for name, key in (("users", "user_id"), ("items", "item_id")):
        if name in files:
            tables[name] = _table(name, files[name])
            sources[name] = SourceRef(str(files[name]), _first_line(files[name]))
        else:  # ids from the interactions, nulls elsewhere (as MovieLens layouts without them)
            tables[name] = conform(interactions.select(pl.col(key).unique().sort()), name)
            sources[name] = SourceRef(str(files["interactions"]), derived=True)
    if "items" not in files:  # no names nor genres known: an item is named by its id
        tables["items"] = tables["items"].with_columns(
            title=pl.col("item_id").cast(pl.String), genres=pl.lit([], pl.List(pl.String))
        )
    return RawTables(**tables, sources=sources)
