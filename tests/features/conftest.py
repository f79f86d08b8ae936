from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from inttower.data.tables import INTERACTIONS_SCHEMA


def _mirror() -> Path:
    default = Path(__file__).resolve().parents[3] / "shared" / "movielens"
    return Path(os.environ.get("MOVIELENS_MIRROR") or default)


@pytest.fixture(scope="session")
def ml100k_interactions() -> pl.DataFrame:
    """The real ml-100k ratings (u.data), read straight from the mirror."""
    path = _mirror() / "ml-100k" / "u.data"
    if not path.exists():
        pytest.skip(f"real ml-100k not found at {path}: set MOVIELENS_MIRROR")
    return pl.read_csv(
        path,
        separator="\t",
        has_header=False,
        new_columns=list(INTERACTIONS_SCHEMA),
        schema=INTERACTIONS_SCHEMA,
    )
