"""The encoded-split format that training reads: one safetensors file per split + fields.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file

from inttower.catalog import SPLITS
from inttower.errors import StageInputError
from inttower.io import atomic_path, file_md5, load_tensors, read_json, write_json

FieldKind = Literal["sparse", "sequence", "dense"]
Tower = Literal["user", "item"]

# Tensors that are not model inputs: the label and the keys evaluation groups by.
LABEL = "label"
META_TENSORS = ("label", "user_raw", "item_raw", "timestamp", "cold_user")


@dataclass(frozen=True)
class FieldSpec:
    """One model input. Sparse and sequence fields index an embedding table of `vocab_size` rows
    (0 = padding, 1 = unknown); sequences are (N, length) and padded with 0 on the left."""

    name: str
    kind: FieldKind
    tower: Tower
    vocab_size: int = 0
    length: int = 1

    @classmethod
    def from_dict(cls, raw: dict) -> FieldSpec:
        return cls(**raw)


@dataclass
class EncodedSplit:
    """All tensors of one split, loaded once; batches are slices of these."""

    fields: list[FieldSpec]
    tensors: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.tensors[LABEL].shape[0])

    @property
    def labels(self) -> torch.Tensor:
        return self.tensors[LABEL]

    def inputs(self, index: torch.Tensor | slice | None = None) -> dict[str, torch.Tensor]:
        """Model inputs (every field), optionally for a subset of rows."""
        chosen = {spec.name: self.tensors[spec.name] for spec in self.fields}
        if index is None:
            return chosen
        return {name: tensor[index] for name, tensor in chosen.items()}

    def tower_fields(self, tower: Tower) -> list[FieldSpec]:
        return tower_fields(self.fields, tower)


def tower_fields(fields: list[FieldSpec], tower: Tower) -> list[FieldSpec]:
    """The fields one tower reads, in the model's order."""
    return [spec for spec in fields if spec.tower == tower]


def fields_path(directory: Path) -> Path:
    return Path(directory) / "fields.json"


def split_path(directory: Path, split: str) -> Path:
    return Path(directory) / f"{split}.safetensors"


def encoded_hashes(directory: Path) -> dict[str, str]:
    """md5 of every encoded file, so a model card names exactly the data it was trained on."""
    files = [*(split_path(directory, split) for split in SPLITS), fields_path(directory)]
    return {path.name: file_md5(path) for path in files if path.exists()}


def save_split(directory: Path, split: str, tensors: dict[str, torch.Tensor]) -> Path:
    target = split_path(directory, split)
    with atomic_path(target) as temporary:
        save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(temporary))
    return target


def save_fields(directory: Path, fields: list[FieldSpec], extra: dict | None = None) -> Path:
    payload = {"fields": [asdict(spec) for spec in fields], **(extra or {})}
    return write_json(payload, fields_path(directory))


def load_fields(directory: Path) -> list[FieldSpec]:
    path = fields_path(directory)
    if not path.exists():
        raise StageInputError(f"{path} not found: run the `encode` stage first")
    return [FieldSpec.from_dict(raw) for raw in read_json(path)["fields"]]


def load_split(directory: Path, split: str) -> EncodedSplit:
    """Load one encoded split (train/valid/test) written by the `encode` stage."""
    path = split_path(directory, split)
    if not path.exists():
        raise StageInputError(f"{path} not found: run the `encode` stage first")
    return EncodedSplit(fields=load_fields(directory), tensors=load_tensors(path))
