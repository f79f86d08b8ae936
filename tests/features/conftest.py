from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from inttower.data.tables import INTERACTIONS_SCHEMA


@pytest.fixture(scope="session")
def ml100k_interactions(ml100k_dir: Path) -> pl.DataFrame:
    """The real ml-100k ratings (u.data), read straight from the mirror."""
    return pl.read_csv(
        ml100k_dir / "u.data",
        separator="\t",
        has_header=False,
        new_columns=list(INTERACTIONS_SCHEMA),
        schema=INTERACTIONS_SCHEMA,
    )
