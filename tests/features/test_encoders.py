"""Encoders: fit on train only, JSON round trip, identical encoding of new data."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import torch

from inttower.config import EncoderParams, FeatureParams, Params, SplitParams
from inttower.features.encoders import (
    PAD,
    UNKNOWN,
    Encoders,
    encode_events,
    fit_encoders,
    lookup,
    unknown_shares,
)
from inttower.features.point_in_time import event_features, item_attributes, user_attributes
from tests.features.helpers import interactions, split_of


def _tables(n_users: int = 6, n_items: int = 8):
    users = user_attributes(
        pl.DataFrame(
            {
                "user_id": list(range(1, n_users + 1)),
                "gender": ["M", "F"] * (n_users // 2),
                "age": [20 + 5 * u for u in range(n_users)],
                "occupation": ["writer"] * n_users,
                "zip": ["55105"] * n_users,
            },
            schema_overrides={"age": pl.Int32},
        )
    )
    items = item_attributes(
        pl.DataFrame(
            {
                "item_id": list(range(1, n_items + 1)),
                "title": [f"m{i}" for i in range(n_items)],
                "year": [1990 + i for i in range(n_items)],
                # the last item has no genre at all (ml-100k's item 267 has none either)
                "genres": [["Drama", "Comedy"][: 1 + i % 2] for i in range(n_items - 1)] + [[]],
            },
            schema_overrides={"year": pl.Int32},
        )
    )
    return users, items


def _events():
    # users 1–4 and items 1–6 appear in train; user 6 and item 8 only at the end (test).
    rows = [(1 + i % 4, 1 + i % 6, 5.0 if i % 3 else 1.0, i) for i in range(80)]
    rows += [(5, 7, 4.0, 80 + i) for i in range(10)]
    rows += [(6, 8, 5.0, 90 + i) for i in range(10)]
    events = split_of(interactions(rows), Params())
    return event_features(events, FeatureParams(history_length=4), SplitParams())[0]


def test_vocabularies_come_from_train_and_reserve_pad_and_unknown() -> None:
    users, items = _tables()
    events = _events()
    encoders = fit_encoders(events, users, items, EncoderParams())
    assert sorted(encoders.vocabularies["user_id"]) == [1, 2, 3, 4]
    assert 8 not in encoders.vocabularies["item_id"]
    test = events.filter(pl.col("split") == "test")
    train_users = events.filter(pl.col("split") == "train")["user_id"].unique()
    tensors = encode_events(test, users, items, encoders, train_users)
    assert set(tensors["user_id"].tolist()) == {UNKNOWN}
    assert set(tensors["item_id"].tolist()) == {UNKNOWN}
    assert tensors["cold_user"].tolist() == [1] * test.height
    assert unknown_shares(tensors)["user_id"] == 1.0
    assert tensors["history"].shape == (test.height, 4)
    assert tensors["genres"].tolist() == [[PAD, PAD]] * test.height  # item 8: no genres


def test_min_count_sends_rare_values_to_unknown() -> None:
    users, items = _tables()
    events = _events()
    encoders = fit_encoders(events, users, items, EncoderParams(min_count=10_000))
    assert encoders.vocabularies["item_id"] == []
    train = events.filter(pl.col("split") == "train")
    tensors = encode_events(train, users, items, encoders, train["user_id"].unique())
    assert set(tensors["item_id"].tolist()) == {UNKNOWN}


def test_scalers_standardise_train_dense_features() -> None:
    users, items = _tables()
    events = _events()
    encoders = fit_encoders(events, users, items, EncoderParams())
    train = events.filter(pl.col("split") == "train")
    tensors = encode_events(train, users, items, encoders, train["user_id"].unique())
    for name in ("user_pos_rate", "item_count"):
        assert abs(float(tensors[name].mean())) < 1e-5
        assert abs(float(tensors[name].std(unbiased=True)) - 1.0) < 1e-3


def test_json_round_trip_encodes_identically(tmp_path) -> None:
    users, items = _tables()
    events = _events()
    encoders = fit_encoders(events, users, items, EncoderParams())
    path = encoders.save(tmp_path / "encoders.json")
    json.loads(path.read_text())  # plain JSON, nothing executable
    reloaded = Encoders.load(path)
    assert reloaded == encoders
    train_users = events.filter(pl.col("split") == "train")["user_id"].unique()
    first = encode_events(events, users, items, encoders, train_users)
    second = encode_events(events, users, items, reloaded, train_users)
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_lookup_keeps_padding_and_marks_misses_unknown() -> None:
    values = np.array([[0, 5, 7], [9, 0, 5]])
    assert lookup(values, [7, 5]).tolist() == [[PAD, 3, 2], [UNKNOWN, PAD, 3]]
    assert lookup(values, []).tolist() == [[PAD, UNKNOWN, UNKNOWN], [UNKNOWN, PAD, UNKNOWN]]


def test_fields_describe_every_encoded_tensor() -> None:
    users, items = _tables()
    events = _events()
    encoders = fit_encoders(events, users, items, EncoderParams())
    tensors = encode_events(events, users, items, encoders, events["user_id"].unique())
    fields = encoders.fields()
    assert [f.tower for f in fields] == sorted((f.tower for f in fields), key=lambda t: t != "user")
    for spec in fields:
        tensor = tensors[spec.name]
        if spec.kind == "dense":
            assert tensor.dtype == torch.float32
        else:
            assert tensor.dtype == torch.int64 and int(tensor.max()) < spec.vocab_size
        if spec.kind == "sequence":
            assert tensor.shape[1] == spec.length
