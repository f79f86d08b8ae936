"""The canonical tables every MovieLens layout is parsed into."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from inttower.pipeline.paths import MIRROR_ENV

INTERACTIONS_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "item_id": pl.Int64(),
    "rating": pl.Float32(),
    "timestamp": pl.Int64(),  # unix seconds
}
USERS_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "gender": pl.String(),  # "M" / "F"; null where the dataset has no demographics
    "age": pl.Int32(),
    "occupation": pl.String(),
    "zip": pl.String(),
}
ITEMS_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Int64(),
    "title": pl.String(),
    "year": pl.Int32(),  # release year; null when the title carries none
    "genres": pl.List(pl.String()),
}
TABLE_SCHEMAS = {"interactions": INTERACTIONS_SCHEMA, "users": USERS_SCHEMA, "items": ITEMS_SCHEMA}

# The 18 genres of ml-1m and later (ml-100k adds "unknown"; the CSV datasets add a few more).
MOVIELENS_GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def conform(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """The canonical columns of `table`, in canonical order and dtypes (missing ones as nulls)."""
    schema = TABLE_SCHEMAS[table]
    return frame.select(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in schema.items()
    )


@dataclass(frozen=True)
class SourceRef:
    """Where a canonical table came from, so errors can name the original file and line."""

    path: str
    first_line: int = 1  # source line of the table's row 0 (2 for CSV files with a header)
    derived: bool = False  # rows were computed (distinct ids, synthetic data), not read as lines
    # sorted 0-based source rows removed before this table (data.as_of): row i of the table is
    # then source row i + the number of removed rows before it
    removed: np.ndarray | None = field(default=None, compare=False, repr=False)

    def source_row(self, row: int) -> int:
        """The 0-based source row of table row `row`, counting the rows removed before it."""
        if self.removed is None or not len(self.removed):
            return row
        source = row
        while True:  # the fixed point of source = row + #removed ≤ source; few steps
            moved = row + int(np.searchsorted(self.removed, source, side="right"))
            if moved == source:
                return source
            source = moved

    def line_of(self, row: int) -> int:
        return self.first_line + self.source_row(row)

    def to_json(self) -> dict[str, object]:
        """What sources.json records; the removed rows live in their own parquet file."""
        return {"path": self.path, "first_line": self.first_line, "derived": self.derived}

    @property
    def where(self) -> str:
        """The file as an error names it: the recorded path (portable, `$MOVIELENS_MIRROR/…`),
        with the mirror's location on this machine filled in, so a reader can open it."""
        mirror = os.environ.get(MIRROR_ENV)
        prefix = f"${MIRROR_ENV}/"
        if mirror and self.path.startswith(prefix):
            return str(Path(mirror) / self.path[len(prefix) :])
        return self.path

    def locate(self, row: int) -> str:
        """`file:line` of a 0-based row, or `source (row N)` where rows are not lines of a file."""
        if self.derived:
            return f"{self.where} (row {self.source_row(row) + 1})"
        return f"{self.where}:{self.line_of(row)}"


@dataclass(frozen=True)
class RawTables:
    """One dataset in canonical form; rows keep their source file order."""

    interactions: pl.DataFrame
    users: pl.DataFrame
    items: pl.DataFrame
    sources: dict[str, SourceRef] = field(default_factory=dict)
    # synthetic data only: each event's true rating distribution (never a feature; see synthetic)
    oracle: pl.DataFrame | None = None

    def table(self, name: str) -> pl.DataFrame:
        return getattr(self, name)
