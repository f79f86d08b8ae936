"""The encoded-split format that training reads: one safetensors file per split + fields.json."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from inttower.errors import StageInputError
from inttower.io import atomic_path, file_md5, load_tensors, read_json, write_json
from inttower.pipeline.catalog import SPLITS

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
    """One split written whole (tests, small splits); `streamed_split` for any size."""
    rows = next(iter(tensors.values())).shape[0] if tensors else 0
    with streamed_split(directory, split, layout_of(tensors), rows) as writer:
        writer.append(tensors)
    return split_path(directory, split)


# safetensors' serialiser orders tensors by dtype (this rank, descending), then by name; the
# streamed writer lays them out the same way, so its files are byte-identical to `save_file`'s.
_DTYPE_CODES = {
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int32: "I32",
    torch.float32: "F32",
    torch.float64: "F64",
    torch.int64: "I64",
}
_DTYPE_RANK = {code: rank for rank, code in enumerate(_DTYPE_CODES.values())}

Layout = dict[str, tuple[torch.dtype, tuple[int, ...]]]


def layout_of(tensors: dict[str, torch.Tensor]) -> Layout:
    """Each tensor's dtype and shape past the row dimension."""
    return {name: (tensor.dtype, tuple(tensor.shape[1:])) for name, tensor in tensors.items()}


class SplitWriter:
    """Appends row blocks of every tensor of a split straight into its safetensors file.

    The header is known from the layout and the row count, so each block is written in place
    (`pwrite`) and nothing but the block being encoded is ever held in memory: at 25M events the
    whole-split path held every tensor and the frames they came from (18.7 GiB peak)."""

    def __init__(self, handle: int, layout: Layout, rows: int) -> None:
        self._handle = handle
        self.rows = rows
        self.written = 0
        names = sorted(layout, key=lambda name: (-_DTYPE_RANK[_DTYPE_CODES[layout[name][0]]], name))
        header: dict[str, dict[str, object]] = {}
        offset = 0
        self._slots: dict[str, tuple[int, int, torch.dtype, tuple[int, ...]]] = {}
        for name in names:
            dtype, trailing = layout[name]
            row_bytes = math.prod(trailing) * dtype.itemsize
            size = rows * row_bytes
            header[name] = {
                "dtype": _DTYPE_CODES[dtype],
                "shape": [rows, *trailing],
                "data_offsets": [offset, offset + size],
            }
            self._slots[name] = (offset, row_bytes, dtype, trailing)
            offset += size
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)
        self._data_start = 8 + len(encoded)
        os.pwrite(handle, len(encoded).to_bytes(8, "little") + encoded, 0)
        os.ftruncate(handle, self._data_start + offset)

    def append(self, tensors: dict[str, torch.Tensor]) -> None:
        """Write the next block of rows (the same rows of every tensor)."""
        if set(tensors) != set(self._slots):
            raise ValueError(f"block has tensors {sorted(tensors)}, layout {sorted(self._slots)}")
        block = {tensor.shape[0] for tensor in tensors.values()}
        if len(block) != 1:
            raise ValueError(f"block tensors disagree on their row count: {sorted(block)}")
        n = block.pop()
        if self.written + n > self.rows:
            raise ValueError(f"{self.written + n} rows written, the split has {self.rows}")
        for name, tensor in tensors.items():
            offset, row_bytes, dtype, trailing = self._slots[name]
            if tensor.dtype != dtype or tuple(tensor.shape[1:]) != trailing:
                raise ValueError(
                    f"{name}: {tensor.dtype} {tuple(tensor.shape)}, layout {dtype} "
                    f"(rows, {', '.join(map(str, trailing))})"
                )
            data = tensor.contiguous().view(torch.uint8).numpy() if n else b""
            os.pwrite(self._handle, data, self._data_start + offset + self.written * row_bytes)
        self.written += n


@contextmanager
def streamed_split(directory: Path, split: str, layout: Layout, rows: int) -> Iterator[SplitWriter]:
    """A `SplitWriter` onto a temporary file that replaces the split only once all its rows are
    written; on any error the previous split file is left as it was."""
    with atomic_path(split_path(directory, split)) as temporary:
        handle = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            writer = SplitWriter(handle, layout, rows)
            yield writer
            if writer.written != rows:
                raise ValueError(f"{split}: {writer.written} of {rows} rows written")
            os.fsync(handle)
        finally:
            os.close(handle)


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
