"""Encoders fit on train only: vocabularies for sparse fields, scalers for dense ones, as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from inttower.config import EncoderParams
from inttower.errors import StageInputError
from inttower.features.encoded import FieldSpec, Tower
from inttower.features.point_in_time import DENSE_ITEM, DENSE_USER, dense_columns, dense_tower
from inttower.io import read_json, write_json

PAD, UNKNOWN = 0, 1
FIRST_INDEX = 2

# field → (tower, source column); sequences name the vocabulary they index.
SPARSE_FIELDS: dict[str, Tower] = {
    "user_id": "user",
    "gender": "user",
    "age_bucket": "user",
    "occupation": "user",
    "zip_prefix": "user",
    "item_id": "item",
    "decade": "item",
}
SEQUENCE_FIELDS: dict[str, tuple[Tower, str]] = {
    "history": ("user", "item_id"),  # shares the item vocabulary (its own embedding table)
    "genres": ("item", "genres"),
}
DENSE_FIELDS: dict[str, Tower] = {
    **{name: "user" for name in DENSE_USER},
    **{name: "item" for name in DENSE_ITEM},
}
LOG_SCALED = ("user_count", "item_count")  # heavy-tailed: log1p before standardising


@dataclass(frozen=True)
class Encoders:
    """Fitted vocabularies and scalers; `to_json`/`from_json` round-trip exactly."""

    vocabularies: dict[str, list[Any]]
    scalers: dict[str, dict[str, float]]
    sequence_lengths: dict[str, int]
    fitted_on: str

    def vocab_size(self, vocabulary: str) -> int:
        return len(self.vocabularies[vocabulary]) + FIRST_INDEX

    def fields(self) -> list[FieldSpec]:
        """The model's inputs, in a fixed order: user tower first, then item tower."""
        specs = [
            FieldSpec(name, "sparse", tower, self.vocab_size(name))
            for name, tower in SPARSE_FIELDS.items()
        ]
        specs += [
            FieldSpec(name, "sequence", tower, self.vocab_size(vocab), self.sequence_lengths[name])
            for name, (tower, vocab) in SEQUENCE_FIELDS.items()
        ]
        specs += [FieldSpec(name, "dense", dense_tower(name)) for name in self.dense_names()]
        return sorted(specs, key=lambda spec: spec.tower != "user")

    def dense_names(self) -> list[str]:
        """The fixed dense fields, then the optional ones (behaviour, genre profile) by name."""
        extra = sorted(name for name in self.scalers if name not in DENSE_FIELDS)
        return [*DENSE_FIELDS, *extra]

    def to_json(self) -> dict[str, Any]:
        return {
            "vocabularies": self.vocabularies,
            "scalers": self.scalers,
            "sequence_lengths": self.sequence_lengths,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Encoders:
        return cls(
            vocabularies=raw["vocabularies"],
            scalers=raw["scalers"],
            sequence_lengths={k: int(v) for k, v in raw["sequence_lengths"].items()},
            fitted_on=raw["fitted_on"],
        )

    def save(self, path: Path) -> Path:
        return write_json(self.to_json(), path)

    @classmethod
    def load(cls, path: Path) -> Encoders:
        if not Path(path).exists():
            raise StageInputError(f"{path} not found: run the `encoders` stage first")
        return cls.from_json(read_json(path))


def join_attributes(events: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """Events with their user's and item's static attributes."""
    return events.join(users, on="user_id", how="left").join(items, on="item_id", how="left")


def fit_encoders(
    events: pl.DataFrame,
    users: pl.DataFrame,
    items: pl.DataFrame,
    params: EncoderParams,
    leaky_scaler: bool = False,
) -> Encoders:
    """Fit on train events only (the paper protocol, LEAKY, fits scalers on every split)."""
    # Count train events per user and per item once, then weight each attribute by those
    # counts: the same vocabularies as joining every event, without the 25M-row joins.
    train = events.filter(pl.col("split") == "train")
    per_user = train.group_by("user_id").len("events").join(users, on="user_id", how="left")
    per_item = train.group_by("item_id").len("events").join(items, on="item_id", how="left")
    vocabularies = {
        name: _vocabulary(per_user if tower == "user" else per_item, name, params.min_count)
        for name, tower in SPARSE_FIELDS.items()
    }
    vocabularies["genres"] = _vocabulary(per_item.explode("genres"), "genres", params.min_count)
    scaled = events if leaky_scaler else events.filter(pl.col("split") == "train")
    scalers = {
        name: _scaler(scaled[name], log=name in LOG_SCALED)
        for name in dense_columns(events.columns)
    }
    longest_genres = int(items["genres"].list.len().max() or 1)
    return Encoders(
        vocabularies=vocabularies,
        scalers=scalers,
        sequence_lengths={
            "history": events["history"].dtype.size,
            "genres": max(1, longest_genres),
        },
        fitted_on="all splits (paper protocol, leaky)" if leaky_scaler else "train",
    )


def _vocabulary(weighted: pl.DataFrame, column: str, min_count: int) -> list[Any]:
    # Most frequent first, ties by value: the same train data always gives the same indices.
    counts = (
        weighted.filter(pl.col(column).is_not_null())
        .group_by(column)
        .agg(pl.col("events").sum().alias("count"))
    )
    kept = counts.filter(pl.col("count") >= min_count).sort(
        ["count", column], descending=[True, False]
    )
    return kept[column].to_list()


def _scaler(values: pl.Series, log: bool) -> dict[str, float]:
    numbers = values.cast(pl.Float64)
    if log:
        numbers = numbers.log1p()
    std = float(numbers.std() or 0.0)
    return {"mean": float(numbers.mean() or 0.0), "std": std if std > 1e-12 else 1.0, "log1p": log}


def lookup(values: np.ndarray, vocabulary: list[Any]) -> np.ndarray:
    """Vocabulary indices for an integer array of any shape: 0 stays padding, misses are unknown."""
    flat = values.reshape(-1).astype(np.int64)
    index = np.full(flat.shape, UNKNOWN, dtype=np.int64)
    known = np.asarray(vocabulary, dtype=np.int64)
    if known.size:
        order = np.argsort(known, kind="stable")
        sorted_known = known[order]
        slot = np.minimum(np.searchsorted(sorted_known, flat), known.size - 1)
        hit = sorted_known[slot] == flat
        index[hit] = order[slot[hit]] + FIRST_INDEX
    index[flat == PAD] = PAD
    return index.reshape(values.shape)


def _encode_sparse(column: pl.Series, vocabulary: list[Any]) -> np.ndarray:
    mapping = pl.DataFrame(
        {column.name: pl.Series(vocabulary, dtype=column.dtype)},
    ).with_columns(index=pl.int_range(FIRST_INDEX, len(vocabulary) + FIRST_INDEX, dtype=pl.Int64))
    encoded = (
        column.to_frame()
        .join(mapping, on=column.name, how="left", maintain_order="left")
        .get_column("index")
        .fill_null(UNKNOWN)
    )
    return encoded.to_numpy(writable=True)


def _encode_genres(items: pl.DataFrame, encoders: Encoders) -> pl.DataFrame:
    # Encode once per item (the catalogue is small), then join to events.
    length = encoders.sequence_lengths["genres"]
    vocabulary = encoders.vocabularies["genres"]
    indices = list(range(FIRST_INDEX, len(vocabulary) + FIRST_INDEX))
    encoded = pl.col("genres").list.eval(
        pl.element().replace_strict(vocabulary, indices, default=UNKNOWN, return_dtype=pl.Int64)
    )
    padding = pl.lit([PAD] * length, dtype=pl.List(pl.Int64))
    return items.select(
        "item_id",
        encoded.list.head(length)
        .list.concat(padding)
        .list.head(length)
        .list.to_array(length)
        .alias("genres_encoded"),
    )


def encode_events(
    events: pl.DataFrame,
    users: pl.DataFrame,
    items: pl.DataFrame,
    encoders: Encoders,
    train_users: pl.Series,
) -> dict[str, torch.Tensor]:
    """Turn one split's feature rows into the tensors of the encoded format."""
    joined = join_attributes(events, users, items.drop("genres")).join(
        _encode_genres(items, encoders), on="item_id", how="left", maintain_order="left"
    )
    tensors: dict[str, torch.Tensor] = {}
    for name in SPARSE_FIELDS:
        tensors[name] = torch.from_numpy(_encode_sparse(joined[name], encoders.vocabularies[name]))
    history = joined["history"].to_numpy()
    tensors["history"] = torch.from_numpy(lookup(history, encoders.vocabularies["item_id"]))
    # every event's item exists (validated), so every row has its padded genre array
    tensors["genres"] = torch.from_numpy(joined["genres_encoded"].to_numpy().astype(np.int64))
    for name in encoders.dense_names():
        scaler = encoders.scalers[name]
        values = joined[name].cast(pl.Float64)
        if scaler["log1p"]:
            values = values.log1p()
        standard = ((values - scaler["mean"]) / scaler["std"]).cast(pl.Float32)
        tensors[name] = torch.from_numpy(standard.to_numpy().copy())
    tensors["label"] = torch.from_numpy(joined["label"].cast(pl.Float32).to_numpy().copy())
    tensors["user_raw"] = torch.from_numpy(joined["user_id"].to_numpy().copy())
    tensors["item_raw"] = torch.from_numpy(joined["item_id"].to_numpy().copy())
    tensors["timestamp"] = torch.from_numpy(joined["timestamp"].to_numpy().copy())
    cold = ~joined["user_id"].is_in(train_users.implode())
    tensors["cold_user"] = torch.from_numpy(cold.cast(pl.UInt8).to_numpy().copy())
    return tensors


def unknown_shares(tensors: dict[str, torch.Tensor]) -> dict[str, float]:
    """Share of rows (tokens, for sequences) whose value the train vocabulary did not know."""
    shares = {}
    for name in [*SPARSE_FIELDS, *SEQUENCE_FIELDS]:
        values = tensors[name]
        present = values != PAD
        total = int(present.sum())
        shares[name] = float((values == UNKNOWN).sum()) / total if total else 0.0
    return shares
