"""`data.dataset: custom`: your own event log as parquet or CSV, end to end on real ratings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from inttower.config import parse_params
from inttower.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--set", "train.epochs=1", "--set", "model.hidden_units=[32]", "--set", "model.heads=2"]


def _ratings(ml100k_dir: Path) -> pl.DataFrame:
    return pl.read_csv(
        ml100k_dir / "u.data",
        separator="\t",
        has_header=False,
        new_columns=["user_id", "item_id", "rating", "timestamp"],
    )


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("INTTOWER_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "inttower.cli", "run", "--data-dir", "data", *FAST, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
    )


def _params(cwd: Path, **files: str) -> None:
    lines = ["data:", "  dataset: custom", "  custom:"]
    lines += [f"    {name}: {path}" for name, path in files.items()]
    (cwd / "params.yaml").write_text("\n".join(lines) + "\n")


def test_custom_needs_its_interactions_file() -> None:
    with pytest.raises(ConfigError, match="data: dataset `custom` needs data.custom.interactions"):
        parse_params({"data": {"dataset": "custom"}})


@pytest.mark.slow
def test_parquet_with_other_dtypes_and_users_runs_end_to_end(
    tmp_path: Path, ml100k_dir: Path
) -> None:
    """uint32 ids, int8 ratings, datetime timestamps, a users file and no items file."""
    ratings = _ratings(ml100k_dir)
    ratings.with_columns(
        pl.col("user_id").cast(pl.UInt32),
        pl.col("item_id").cast(pl.UInt32),
        pl.col("rating").cast(pl.Int8),
        pl.from_epoch("timestamp", time_unit="s"),
    ).write_parquet(tmp_path / "events.parquet")
    users = pl.read_csv(ml100k_dir / "u.user", separator="|", has_header=False,
                        new_columns=["user_id", "age", "gender", "occupation", "zip"])  # fmt: skip
    users.write_parquet(tmp_path / "users.parquet")
    _params(tmp_path, interactions="events.parquet", users="users.parquet")
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert metrics["test"]["auc"] > 0.6
    split = json.loads((tmp_path / "reports/split.json").read_text())
    assert sum(block["events"] for block in split["splits"].values()) == 72_855  # as ml-100k: 58,284 + 7,286 + 7,285
    fingerprint = json.loads((tmp_path / "data/00_source/fingerprint.json").read_text())
    assert set(fingerprint["files"]) == {"interactions", "users"}
    assert fingerprint["files"]["interactions"]["name"] == "events.parquet"  # no absolute path
    ingested = pl.read_parquet(tmp_path / "data/01_ingested/interactions.parquet")
    assert ingested["timestamp"].to_list()[:3] == ratings["timestamp"].to_list()[:3]


@pytest.mark.slow
def test_csv_with_iso_timestamps_runs_end_to_end(tmp_path: Path, ml100k_dir: Path) -> None:
    ratings = _ratings(ml100k_dir).with_columns(
        pl.from_epoch("timestamp", time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    ratings.write_csv(tmp_path / "events.csv")
    _params(tmp_path, interactions="events.csv")
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data/07_model/model.safetensors").exists()


def test_a_bad_value_names_the_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text(
        "user_id,item_id,rating,timestamp\n1,10,4,880000000\n2,11,5,880000100\nabc,12,3,880000200\n"
    )
    _params(tmp_path, interactions="events.csv")
    result = _run(tmp_path, "--to", "ingest")
    assert result.returncode == 2
    (line,) = [row for row in result.stderr.splitlines() if row.startswith("inttower: error")]
    assert line == (
        "inttower: error: events.csv, line 4: column user_id: expected an integer, got 'abc'"
    )
    assert not (tmp_path / "data/01_ingested").exists()


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    pl.DataFrame({"user_id": [1], "item_id": [2], "stars": [4.0], "timestamp": [1]}).write_parquet(
        tmp_path / "events.parquet"
    )
    _params(tmp_path, interactions="events.parquet")
    result = _run(tmp_path, "--to", "ingest")
    assert result.returncode == 2
    assert "events.parquet: interactions: missing column(s) rating" in result.stderr


def test_a_rating_that_fails_validation_names_its_row(tmp_path: Path) -> None:
    """The same pandera schemas as MovieLens: a 9-star rating is named by file and line."""
    rows = [f"{u},{i},4,{880000000 + k}" for k, (u, i) in enumerate([(1, 1), (1, 2), (2, 1)])]
    rows.append("2,2,9,880000099")
    (tmp_path / "events.csv").write_text("user_id,item_id,rating,timestamp\n" + "\n".join(rows))
    _params(tmp_path, interactions="events.csv")
    result = _run(tmp_path, "--to", "validate")
    assert result.returncode == 2
    assert "events.csv:5" in result.stderr and "rating" in result.stderr, result.stderr
