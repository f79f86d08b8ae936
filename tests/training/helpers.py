"""A tiny encoded project built in the test: encoded splits, fields.json and the features table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from inttower.config import Params, parse_params
from inttower.data.synthetic import empty_oracle
from inttower.features.encoded import FieldSpec, save_fields, save_split
from inttower.pipeline.paths import Paths

HISTORY = 4
FIELDS = [
    FieldSpec("user_id", "sparse", "user", vocab_size=0),  # vocab sizes filled in below
    FieldSpec("history", "sequence", "user", vocab_size=0, length=HISTORY),
    FieldSpec("user_pos_rate", "dense", "user"),
    FieldSpec("item_id", "sparse", "item", vocab_size=0),
    FieldSpec("item_pos_rate", "dense", "item"),
]


def tiny_params(**overrides: Any) -> Params:
    """A model small enough to train in well under a second per epoch on one CPU thread."""
    raw: dict[str, Any] = {
        "seed": 7,
        "model": {
            "name": "inttower",
            "embedding_dim": 4,
            "hidden_units": [8, 8],
            "dropout": 0.1,
            "heads": 2,
            "head_dim": 4,
        },
        "train": {
            "epochs": 3,
            "batch_size": 32,
            "lr": 0.01,
            "device": "cpu",
            "patience": 2,
            "threads": 1,
        },
    }
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return parse_params(raw)


def write_tiny_project(
    root: Path,
    n_users: int = 30,
    n_items: int = 25,
    n_events: int = 900,
    seed: int = 0,
    shuffle_valid_labels: bool = False,
) -> Paths:
    """Events whose label follows user and item biases, split by time into 70/15/15; writes
    `06_encoded/` and `04_features/events.parquet` under `root/data` and returns the Paths."""
    rng = np.random.default_rng(seed)
    paths = Paths(data=root / "data", reports=root / "reports")
    user_bias = rng.normal(0, 1.5, n_users)
    item_bias = rng.normal(0, 1.5, n_items)
    users = rng.integers(0, n_users, n_events)
    items = rng.integers(0, n_items, n_events)
    timestamp = np.sort(rng.integers(1_000_000, 2_000_000, n_events))
    chance = 1 / (1 + np.exp(-(user_bias[users] + item_bias[items])))
    labels = (rng.random(n_events) < chance).astype(np.float32)
    bounds = [int(n_events * 0.7), int(n_events * 0.85)]
    split_name = np.array(["train"] * bounds[0] + ["valid"] * (bounds[1] - bounds[0]))
    split_name = np.r_[split_name, ["test"] * (n_events - bounds[1])]
    if shuffle_valid_labels:  # validation labels unrelated to anything the model can learn
        valid = split_name == "valid"
        labels[valid] = (rng.random(int(valid.sum())) < 0.5).astype(np.float32)
    train_users = set(users[split_name == "train"].tolist())
    cold = np.array([user not in train_users for user in users], dtype=np.uint8)
    # users unseen in train become cold: shift a few test users to fresh ids
    test_rows = np.flatnonzero(split_name == "test")
    fresh = test_rows[: len(test_rows) // 4]
    users[fresh] = n_users + (np.arange(len(fresh)) % 3)
    cold[fresh] = 1
    user_rate = np.clip(chance + rng.normal(0, 0.1, n_events), 0.01, 0.99)
    item_rate = np.clip(1 / (1 + np.exp(-item_bias[items])), 0.01, 0.99)
    history = rng.integers(0, n_items + 2, (n_events, HISTORY))

    vocab = {"user_id": n_users + 2, "history": n_items + 2, "item_id": n_items + 2}
    fields = [
        FieldSpec(spec.name, spec.kind, spec.tower, vocab.get(spec.name, 0), spec.length)
        for spec in FIELDS
    ]
    user_index = np.where(cold == 1, 1, users + 2)  # unknown = 1 for cold users
    for name in ("train", "valid", "test"):
        rows = split_name == name
        save_split(
            paths["encoded"],
            name,
            {
                "user_id": torch.from_numpy(user_index[rows]).long(),
                "history": torch.from_numpy(history[rows]).long(),
                "user_pos_rate": torch.from_numpy(user_rate[rows]).float(),
                "item_id": torch.from_numpy(items[rows] + 2).long(),
                "item_pos_rate": torch.from_numpy(item_rate[rows]).float(),
                "label": torch.from_numpy(labels[rows]),
                "user_raw": torch.from_numpy(users[rows]).long(),
                "item_raw": torch.from_numpy(items[rows]).long(),
                "timestamp": torch.from_numpy(timestamp[rows]).long(),
                "cold_user": torch.from_numpy(cold[rows]),
            },
        )
    save_fields(paths["encoded"], fields)
    paths["features.events"].parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        {
            "split": split_name,
            "user_id": users,
            "item_id": items,
            "timestamp": timestamp,
            "label": labels.astype(np.int8),
            "user_pos_rate": user_rate,
            "item_pos_rate": item_rate,
            # a rate-like mean rating on the 1–5 scale, as the features stage writes
            "user_mean_rating": 1.0 + 4.0 * user_rate,
            "item_mean_rating": 1.0 + 4.0 * item_rate,
            "user_count": np.ones(n_events, dtype=np.int64),
            "item_count": np.ones(n_events, dtype=np.int64),
        }
    ).write_parquet(paths["features.events"])
    train_labels = labels[split_name == "train"]
    priors = {"positive_rate": float(train_labels.mean()), "mean_rating": 3.5}
    paths["features.priors"].write_text(json.dumps(priors))
    paths["ingested.oracle"].parent.mkdir(parents=True, exist_ok=True)
    empty_oracle().write_parquet(paths["ingested.oracle"])  # real-data shaped: no truth known
    return paths
