"""The encode stage writes each split a block at a time, straight into its safetensors file: the
files are byte for byte what safetensors' own writer makes of the whole split."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import save_file

from inttower.config import load_params
from inttower.features import encoded
from inttower.features.encoders import Encoders, encode_events
from inttower.io import read_parquet
from inttower.pipeline.catalog import SPLITS
from inttower.pipeline.paths import Paths
from inttower.pipeline.registry import STAGES
from inttower.pipeline.stages import encode

ROOT = Path(__file__).resolve().parents[2]


def _mixed() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "label": torch.rand(10, generator=generator),
        "history": torch.randint(0, 50, (10, 4), generator=generator),
        "cold_user": torch.randint(0, 2, (10,), generator=generator, dtype=torch.uint8),
        "flags": torch.rand(10, generator=generator) > 0.5,
        "rate": torch.rand(10, 3, generator=generator, dtype=torch.float64),
        "count": torch.randint(0, 9, (10,), generator=generator, dtype=torch.int32),
    }


def test_blocks_written_in_place_match_safetensors_bytes(tmp_path: Path) -> None:
    tensors = _mixed()
    save_file(tensors, str(tmp_path / "reference.safetensors"))
    with encoded.streamed_split(tmp_path, "train", encoded.layout_of(tensors), 10) as writer:
        for start, stop in [(0, 3), (3, 3), (3, 9), (9, 10)]:  # an empty block too
            writer.append({name: tensor[start:stop] for name, tensor in tensors.items()})

    written = encoded.split_path(tmp_path, "train").read_bytes()
    assert written == (tmp_path / "reference.safetensors").read_bytes()


def test_a_short_or_mismatched_split_leaves_the_previous_file(tmp_path: Path) -> None:
    tensors = _mixed()
    encoded.save_split(tmp_path, "train", tensors)
    before = encoded.split_path(tmp_path, "train").read_bytes()
    layout = encoded.layout_of(tensors)

    short = pytest.raises(ValueError, match="train: 3 of 10 rows written")
    with short, encoded.streamed_split(tmp_path, "train", layout, 10) as writer:
        writer.append({name: tensor[:3] for name, tensor in tensors.items()})
    wider = pytest.raises(ValueError, match=r"history: torch.int64 \(10, 5\), layout torch.int64")
    with wider, encoded.streamed_split(tmp_path, "train", layout, 10) as writer:
        writer.append({**tensors, "history": torch.zeros(10, 5, dtype=torch.int64)})

    assert encoded.split_path(tmp_path, "train").read_bytes() == before
    assert not list(tmp_path.glob(".*.part"))


def test_encode_stage_in_blocks_equals_the_whole_split(
    tmp_path: Path, movielens_mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOVIELENS_MIRROR", str(movielens_mirror))
    monkeypatch.setattr(encode, "ENCODE_BLOCK_ROWS", 7919)  # blocks straddle split boundaries
    params = load_params(ROOT / "params.yaml")
    paths = Paths.for_data(tmp_path / "data")
    for name in ["source", "ingest", "validate", "split", "features", "encoders", "encode"]:
        STAGES[name].run(params, paths)

    events = read_parquet(paths["features.events"])
    users = read_parquet(paths["features.users"])
    items = read_parquet(paths["features.items"])
    fitted = Encoders.load(paths["encoders"])
    train_users = events.filter(pl.col("split") == "train")["user_id"].unique()
    for split in SPLITS:
        whole = encode_events(events.filter(pl.col("split") == split), users, items, fitted,
                              train_users)  # fmt: skip
        save_file(whole, str(tmp_path / f"{split}.reference"))
        streamed = encoded.split_path(paths["encoded"], split).read_bytes()
        assert streamed == (tmp_path / f"{split}.reference").read_bytes(), split
