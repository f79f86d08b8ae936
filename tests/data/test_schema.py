"""Validation of the canonical tables: failures name the check, the count, and the source lines."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from inttower.data.schema import validate_tables
from inttower.data.sources import read_dataset
from inttower.data.tables import RawTables, SourceRef
from inttower.errors import ValidationFailed

FLAGS = "|".join(["0"] * 8 + ["1"] + ["0"] * 10)  # Drama


def ml100k(tmp_path: Path, ratings: str, users: str | None = None) -> RawTables:
    directory = tmp_path / "ml-100k"
    directory.mkdir()
    (directory / "u.data").write_text(ratings)
    (directory / "u.user").write_text(users or "1|24|M|technician|85711\n2|53|F|other|94043\n")
    (directory / "u.item").write_text(
        f"1|Heat (1995)|01-Jan-1995||x|{FLAGS}\n2|Fargo (1996)|14-Feb-1997||x|{FLAGS}\n"
    )
    return read_dataset(directory, "ml-100k")


GOOD_RATINGS = "1\t1\t5\t881250949\n2\t2\t4\t891717742\n1\t2\t3\t878887116\n"


def test_real_ml100k_passes(ml100k_dir: Path) -> None:
    summary = validate_tables(read_dataset(ml100k_dir, "ml-100k"))
    assert summary.rows == {"interactions": 100_000, "users": 943, "items": 1_682}
    assert "interactions.user_id: in users" in summary.checks
    assert summary.checks_passed == len(summary.checks)


def test_tiny_dataset_passes(tmp_path: Path) -> None:
    summary = validate_tables(ml100k(tmp_path, GOOD_RATINGS))
    assert summary.rows == {"interactions": 3, "users": 2, "items": 2}
    assert summary.sources["interactions"].endswith("u.data")


def test_rating_out_of_range_names_file_and_line(tmp_path: Path) -> None:
    tables = ml100k(tmp_path, GOOD_RATINGS + "2\t1\t7\t891717742\n")

    with pytest.raises(ValidationFailed) as raised:
        validate_tables(tables)

    failed = raised.value
    assert failed.table == "interactions"
    assert failed.source.endswith("u.data")
    assert failed.failures == [{"check": "in_range(0.5, 5.0)", "column": "rating", "count": 1}]
    assert "u.data:4" in failed.sample  # the fourth line of the original file
    assert "7.0" in failed.sample


def test_interaction_of_unknown_user_names_file_and_line(tmp_path: Path) -> None:
    tables = ml100k(tmp_path, GOOD_RATINGS + "9\t1\t4\t891717742\n")

    with pytest.raises(ValidationFailed) as raised:
        validate_tables(tables)

    failed = raised.value
    assert failed.failures == [{"check": "user_id in users", "column": "user_id", "count": 1}]
    assert "u.data:4" in failed.sample
    assert "user_id in users on user_id (1 rows)" in str(failed)


def test_user_table_checks(tmp_path: Path) -> None:
    users = "1|24|M|technician|85711\n2|0|X|other|94043\n2|30|F|writer|11111\n"
    with pytest.raises(ValidationFailed) as raised:
        validate_tables(ml100k(tmp_path, GOOD_RATINGS, users))

    failed = raised.value
    assert failed.table == "users"
    assert {(f["check"], f["column"], f["count"]) for f in failed.failures} == {
        ("field_uniqueness", "user_id", 2),
        ("in_range(1, 120)", "age", 1),
        ("isin(['M', 'F'])", "gender", 1),
    }
    assert "u.user:2" in failed.sample and "u.user:3" in failed.sample


def test_half_star_grid_and_time_window() -> None:
    interactions = pl.DataFrame(
        {
            "user_id": [1, 1],
            "item_id": [1, 1],
            "rating": [1.25, 4.0],
            "timestamp": [500, 900_000_000],
        },
        schema={
            "user_id": pl.Int64,
            "item_id": pl.Int64,
            "rating": pl.Float32,
            "timestamp": pl.Int64,
        },
    )
    users = pl.DataFrame({"user_id": [1]}).select(
        pl.col("user_id").cast(pl.Int64),
        pl.lit(None, pl.String).alias("gender"),
        pl.lit(None, pl.Int32).alias("age"),
        pl.lit(None, pl.String).alias("occupation"),
        pl.lit(None, pl.String).alias("zip"),
    )
    items = pl.DataFrame(
        {"item_id": [1], "title": ["Heat (1995)"], "year": [1995], "genres": [["Drama"]]},
        schema={
            "item_id": pl.Int64,
            "title": pl.String,
            "year": pl.Int32,
            "genres": pl.List(pl.String),
        },
    )
    tables = RawTables(
        interactions, users, items, {"interactions": SourceRef("memory", derived=True)}
    )

    with pytest.raises(ValidationFailed) as raised:
        validate_tables(tables)

    checks = {f["check"] for f in raised.value.failures}
    # the window is named without today's bound, so validation.json is the same every day
    assert checks == {"multiple_of(0.5)", "in_range(1990-01-01, now + 1 day)"}
    assert "memory (row 1)" in raised.value.sample


def test_rating_range_is_configurable(tmp_path: Path) -> None:
    tables = ml100k(tmp_path, GOOD_RATINGS + "2\t1\t7\t891717742\n")
    assert (
        validate_tables(tables, rating_range=(1.0, 10.0), rating_step=1.0).rows["interactions"]
        == 4
    )


def test_wrong_dtype_is_reported_as_a_table_failure(tmp_path: Path) -> None:
    tables = ml100k(tmp_path, GOOD_RATINGS)
    wrong = RawTables(
        tables.interactions.with_columns(pl.col("rating").cast(pl.Float64)),
        tables.users,
        tables.items,
        tables.sources,
    )
    with pytest.raises(ValidationFailed) as raised:
        validate_tables(wrong)
    assert raised.value.failures == [{"check": "dtype('Float32')", "column": "rating", "count": 1}]
    assert "columns or dtypes" in raised.value.sample


def test_repeated_lines_of_real_ml100k_name_both_lines(tmp_path: Path, ml100k_dir: Path) -> None:
    directory = tmp_path / "ml-100k"
    directory.mkdir()
    for name in ("u.user", "u.item"):  # linked, never copied into the repo
        (directory / name).symlink_to(ml100k_dir / name)
    lines = (ml100k_dir / "u.data").read_bytes().splitlines(keepends=True)
    repeated = lines[::2_000]  # 50 lines from all over the file, appended again
    (directory / "u.data").write_bytes(b"".join(lines + repeated))

    with pytest.raises(ValidationFailed) as raised:
        validate_tables(read_dataset(directory, "ml-100k"))

    failed = raised.value
    assert failed.table == "interactions"
    assert failed.source.endswith("u.data")
    assert failed.failures == [
        {"check": "duplicate rating", "column": "user_id, item_id, timestamp", "count": 50}
    ]
    assert "duplicate rating on user_id, item_id, timestamp (50 rows)" in str(failed)
    # The appended copy of line 1 is line 100,001; the sample names both.
    assert f"{directory / 'u.data'}:100001  duplicate rating of line 1 " in failed.sample
    assert "u.data:100005  duplicate rating of line 8001 " in failed.sample


def test_two_ratings_of_one_event_conflict(tmp_path: Path) -> None:
    tables = ml100k(tmp_path, GOOD_RATINGS + "1\t1\t4\t881250949\n")

    with pytest.raises(ValidationFailed) as raised:
        validate_tables(tables)

    assert raised.value.failures == [
        {"check": "conflicting rating", "column": "user_id, item_id, timestamp", "count": 1}
    ]
    assert "u.data:4  conflicting rating of line 1 " in raised.value.sample


def test_a_rerating_at_another_time_is_a_new_event(tmp_path: Path) -> None:
    tables = ml100k(tmp_path, GOOD_RATINGS + "1\t1\t4\t881250950\n")
    summary = validate_tables(tables)
    assert summary.rows["interactions"] == 4
    assert "interactions.(user_id, item_id, timestamp): unique event" in summary.checks
