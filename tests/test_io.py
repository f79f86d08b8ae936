"""Reading artifacts: a missing file names the stage to run, a cut-short one says so in one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch
from safetensors.torch import save_file

from inttower.errors import ArtifactError, InttowerError, StageInputError
from inttower.io import load_tensors, read_json, read_parquet, read_parquet_schema, write_json


def write_parquet_artifact(path: Path) -> None:
    pl.DataFrame({"user_id": range(5_000), "title": ["Heat (1995)"] * 5_000}).write_parquet(path)


def write_json_artifact(path: Path) -> None:
    write_json({"vocabulary": {f"item_{index}": index for index in range(200)}}, path)


def write_tensors_artifact(path: Path) -> None:
    save_file({"weight": torch.randn(64, 32), "bias": torch.zeros(32)}, str(path))


ARTIFACTS: list[tuple[str, Callable[[Path], None], Callable[[Path], Any], str]] = [
    ("events.parquet", write_parquet_artifact, read_parquet, "parquet"),
    ("events.parquet", write_parquet_artifact, read_parquet_schema, "parquet"),
    ("encoders.json", write_json_artifact, read_json, "JSON"),
    ("model.safetensors", write_tensors_artifact, load_tensors, "safetensors"),
]
IDS = ["read_parquet", "read_parquet_schema", "read_json", "load_tensors"]


@pytest.mark.parametrize(("name", "write", "read", "kind"), ARTIFACTS, ids=IDS)
def test_an_artifact_cut_to_half_its_bytes_is_one_clear_line(
    tmp_path: Path, name: str, write: Callable, read: Callable, kind: str
) -> None:
    path = tmp_path / name
    write(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with pytest.raises(ArtifactError) as raised:
        read(path)

    message = str(raised.value)
    assert raised.value.path == path
    assert message.startswith(f"{path}: corrupt or truncated {kind} (")
    assert message.endswith("); rerun the stage that writes it")  # not a catalog path
    assert "\n" not in message
    assert isinstance(raised.value, InttowerError)  # the CLI prints it in one line, exits 2


@pytest.mark.parametrize(("name", "write", "read", "kind"), ARTIFACTS, ids=IDS)
def test_an_empty_artifact_is_corrupt(
    tmp_path: Path, name: str, write: Callable, read: Callable, kind: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(ArtifactError, match=f"corrupt or truncated {kind}"):
        read(path)


@pytest.mark.parametrize(("name", "write", "read", "kind"), ARTIFACTS, ids=IDS)
def test_a_missing_artifact_names_the_stage_to_run(
    tmp_path: Path, name: str, write: Callable, read: Callable, kind: str
) -> None:
    path = tmp_path / name
    with pytest.raises(StageInputError) as raised:
        read(path)
    assert str(raised.value) == f"{path} not found: run the stage that produces it first"


@pytest.mark.parametrize(("name", "write", "read", "kind"), ARTIFACTS, ids=IDS)
def test_a_whole_artifact_reads_back(
    tmp_path: Path, name: str, write: Callable, read: Callable, kind: str
) -> None:
    path = tmp_path / name
    write(path)
    assert len(read(path)) > 0


def test_read_json_reports_where_the_text_breaks(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"  # the catalog's reports/metrics.json: evaluate writes it
    path.write_text('{\n  "test": {"auc": 0.7')
    with pytest.raises(ArtifactError, match=r"line 2, column \d+\); rerun `inttower evaluate`"):
        read_json(path)
    path.write_bytes('{"title": "Café"}'.encode("latin-1"))
    with pytest.raises(ArtifactError, match=r"byte 0xe9 is not UTF-8"):
        read_json(path)


def test_read_parquet_passes_its_options_and_keeps_their_errors(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    write_parquet_artifact(path)
    assert read_parquet(path, columns=["user_id"]).columns == ["user_id"]
    assert read_parquet_schema(path) == pl.Schema({"user_id": pl.Int64, "title": pl.String})
    # a wrong column is the caller's bug, not a corrupt file
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        read_parquet(path, columns=["nope"])


def test_load_tensors_returns_the_saved_tensors(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    weights = {"weight": torch.arange(6.0).reshape(2, 3)}
    save_file(weights, str(path))
    assert torch.equal(load_tensors(path)["weight"], weights["weight"])
