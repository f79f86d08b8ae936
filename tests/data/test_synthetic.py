"""Synthetic MovieLens: deterministic, canonical, valid, and carrying its planted signal."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from inttower.config import SyntheticParams
from inttower.data.schema import validate_tables
from inttower.data.synthetic import END, START, generate, planted_signal
from inttower.data.tables import MOVIELENS_GENRES, TABLE_SCHEMAS, RawTables

PARAMS = SyntheticParams(n_users=2_000, n_items=1_000, n_events=40_000)


@pytest.fixture(scope="module")
def tables() -> RawTables:
    return generate(PARAMS, seed=7)


def test_same_seed_same_data_other_seed_other_data(tables: RawTables) -> None:
    again = generate(PARAMS, seed=7)
    for name in ("interactions", "users", "items"):
        assert_frame_equal(tables.table(name), again.table(name))
    other = generate(PARAMS, seed=8)
    assert not tables.interactions.equals(other.interactions)


def test_canonical_and_valid(tables: RawTables) -> None:
    for name, schema in TABLE_SCHEMAS.items():
        assert tables.table(name).schema == pl.Schema(schema), name
    summary = validate_tables(tables)
    assert summary.rows == {"interactions": 40_000, "users": 2_000, "items": 1_000}
    assert tables.sources["interactions"].path == "synthetic://seed=7"


def test_movielens_shape(tables: RawTables) -> None:
    events = tables.interactions
    assert events["user_id"].min() >= 1 and events["user_id"].max() <= 2_000
    assert tables.users["user_id"].to_list() == list(range(1, 2_001))
    assert tables.items["item_id"].to_list() == list(range(1, 1_001))
    assert set(events["rating"].unique().to_list()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert events["timestamp"].min() >= START and events["timestamp"].max() <= END
    assert events.select("user_id", "item_id").is_duplicated().sum() == 0  # one rating per pair

    items = tables.items
    assert items["title"][0] == f"Synthetic movie 1 ({items['year'][0]})"
    assert items["genres"].list.len().is_between(1, 3).all()
    assert set(items["genres"].explode().unique().to_list()) <= set(MOVIELENS_GENRES)
    users = tables.users
    assert set(users["gender"].unique().to_list()) == {"M", "F"}
    assert set(users["age"].unique().to_list()) <= {1, 18, 25, 35, 45, 50, 56}
    assert users["zip"].str.len_chars().eq(5).all()


def test_popularity_is_skewed_and_users_arrive_over_time(tables: RawTables) -> None:
    per_item = tables.interactions.group_by("item_id").len().sort("len", descending=True)["len"]
    assert per_item.head(100).sum() / per_item.sum() > 0.35  # top 10% of items

    signal = planted_signal(PARAMS, seed=7)
    first = tables.interactions.group_by("user_id").agg(pl.col("timestamp").min()).sort("user_id")
    arrival = signal.arrival[first["user_id"].to_numpy() - 1]
    assert (first["timestamp"].to_numpy() >= arrival).all()  # nobody rates before joining
    # Arrivals spread over the years, so later periods bring many new users.
    assert np.ptp(arrival) > 2 * 365 * 86_400


def _positive_rate_by(tables: RawTables, values: np.ndarray) -> tuple[float, float]:
    """Share of ratings >= 4 among events in the bottom and top fifths of `values`."""
    positive = (tables.interactions["rating"] >= 4).to_numpy()
    low, high = np.quantile(values, [0.2, 0.8])
    return positive[values <= low].mean(), positive[values >= high].mean()


def test_planted_signal_drives_ratings(tables: RawTables) -> None:
    signal = planted_signal(PARAMS, seed=7)
    users = tables.interactions["user_id"].to_numpy() - 1
    items = tables.interactions["item_id"].to_numpy() - 1

    # Demographics x genre: the same catalogue pleases some groups more than others.
    low, high = _positive_rate_by(tables, signal.item_demographic[items, signal.user_group[users]])
    assert high - low > 0.15
    # Item quality: beyond how often an item is drawn.
    low, high = _positive_rate_by(tables, signal.item_quality[items])
    assert high - low > 0.3
    # Personal taste: latent user x item factors.
    affinity = np.einsum("ij,ij->i", signal.user_factors[users], signal.item_factors[items])
    low, high = _positive_rate_by(tables, affinity)
    assert high - low > 0.3


def test_a_nearly_full_matrix_still_gets_every_event() -> None:
    tiny = generate(SyntheticParams(n_users=10, n_items=10, n_events=100), seed=1)
    assert tiny.interactions.height == 100
    assert tiny.interactions.select("user_id", "item_id").is_duplicated().sum() == 0


def test_the_oracle_knows_each_events_true_label_probability(tables: RawTables) -> None:
    """The oracle rows are the events, and its probabilities are calibrated on them: among
    kept events, the share of positives in each probability band is that band's mean."""
    from inttower.data.synthetic import oracle_probabilities

    oracle = tables.oracle
    assert oracle is not None and oracle.height == tables.interactions.height
    keys = ["user_id", "item_id", "timestamp"]
    joined = tables.interactions.join(oracle, on=keys, how="left", maintain_order="left")
    kept = joined.filter(pl.col("rating") != 3)
    probability = oracle_probabilities(kept, [3.0], 4.0)
    labels = (kept["rating"] >= 4).to_numpy()
    bands = np.clip((probability * 5).astype(int), 0, 4)
    for band in range(5):
        chosen = bands == band
        if chosen.sum() > 500:
            assert abs(labels[chosen].mean() - probability[chosen].mean()) < 0.03, band
    # and it ranks better than any feature could: far above chance
    from inttower.evaluation.metrics import auc

    assert auc(labels, probability) > 0.75


def test_the_oracle_follows_the_label_rule() -> None:
    from inttower.data.synthetic import empty_oracle, oracle_probabilities

    row = empty_oracle().vstack(
        pl.DataFrame(
            {"user_id": [1], "item_id": [1], "timestamp": [0], "score_mean": [0.0],
             "cut_1": [-1.0], "cut_2": [-0.5], "cut_3": [0.5], "cut_4": [1.0], "noise_sd": [1.0]},
            schema=empty_oracle().schema,
        )
    )  # fmt: skip
    # μ = 0, σ = 1: P(≤2) = Φ(−0.5) = P(≥4) by symmetry, so dropping 3 leaves an even chance
    assert oracle_probabilities(row, [3.0], 4.0)[0] == pytest.approx(0.5)
    # keeping 3 as a negative: P(≥4) / 1 = 1 − Φ(0.5)
    assert oracle_probabilities(row, [], 4.0)[0] == pytest.approx(0.3085375, abs=1e-6)
