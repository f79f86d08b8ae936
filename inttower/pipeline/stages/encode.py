"""The `encode` stage: encode every split into tensors, a block of events at a time."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from inttower.config import Params
from inttower.features import encoded as encoded_format
from inttower.features.encoders import Encoders, encode_events, unknown_shares
from inttower.io import (
    Summary,
    load_tensors,
    read_parquet,
    read_parquet_blocks,
    write_json,
)
from inttower.pipeline.catalog import SPLITS
from inttower.pipeline.paths import Paths

# Rows encoded at a time: the encode stage's memory is one block's, whatever the log's size.
ENCODE_BLOCK_ROWS = 1 << 20


@dataclass(frozen=True)
class SplitEncoding:
    events: int
    cold_user_share: float  # events of users unseen in train
    unknown_share: dict[str, float]  # field -> share of values mapped to the unknown index


@dataclass(frozen=True)
class EncodeSummary(Summary):
    """`reports/encode.json`: one block per split."""

    splits: dict[str, SplitEncoding]

    def to_json(self) -> dict[str, Any]:
        return {name: asdict(block) for name, block in self.splits.items()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> EncodeSummary:
        return cls({name: SplitEncoding(**block) for name, block in raw.items()})

    @property
    def events(self) -> int:
        return sum(block.events for block in self.splits.values())


def run(params: Params, paths: Paths) -> EncodeSummary:
    """Encode every split with the train-fitted encoders into the tensors training reads, a
    block of events at a time, each block's rows written in place into its split's file."""
    source = paths["features.events"]
    keys = read_parquet(source, columns=["user_id", "split"])
    counts = {name: keys.filter(pl.col("split") == name).height for name in SPLITS}
    train_users = keys.filter(pl.col("split") == "train")["user_id"].unique()
    del keys
    users = read_parquet(paths["features.users"])
    items = read_parquet(paths["features.items"])
    fitted = Encoders.load(paths["encoders"])
    first = read_parquet(source, n_rows=1)  # the tensors' dtypes and widths, from one event
    layout = encoded_format.layout_of(encode_events(first, users, items, fitted, train_users))
    with ExitStack() as stack:
        writers = {
            name: stack.enter_context(
                encoded_format.streamed_split(paths["encoded"], name, layout, counts[name])
            )
            for name in SPLITS
        }
        for block in read_parquet_blocks(source, ENCODE_BLOCK_ROWS):
            for name, writer in writers.items():
                rows = block.filter(pl.col("split") == name)
                if rows.height:
                    writer.append(encode_events(rows, users, items, fitted, train_users))
    blocks: dict[str, SplitEncoding] = {}
    for name in SPLITS:
        tensors = load_tensors(encoded_format.split_path(paths["encoded"], name))
        blocks[name] = SplitEncoding(
            events=counts[name],
            cold_user_share=float(tensors["cold_user"].float().mean()) if counts[name] else 0.0,
            unknown_share=unknown_shares(tensors),
        )
    summary = EncodeSummary(blocks)
    encoded_format.save_fields(paths["encoded"], fitted.fields(), {"splits": summary.to_json()})
    write_json(summary.to_json(), paths["encode.summary"])
    return summary
