"""Point-in-time features: each event sees only what was known strictly before it."""

from __future__ import annotations

import polars as pl
import pytest

from inttower.config import FeatureParams, Params, SplitParams
from inttower.features.point_in_time import (
    RECENT_PSEUDO_COUNT,
    event_features,
    item_attributes,
    optional_dense_columns,
    user_attributes,
)
from tests.features.helpers import interactions, split_of

NO_SMOOTHING = FeatureParams(smoothing=0.0, history_length=3)


def _features(rows, params: FeatureParams = NO_SMOOTHING, split: SplitParams | None = None):
    events = split_of(interactions(rows), Params(split=split or SplitParams()))
    return event_features(events, params, split or SplitParams())[0]


def test_user_counts_and_rates_use_only_earlier_events() -> None:
    rows = [(1, 10, 5, 1), (1, 11, 1, 2), (1, 12, 5, 3), (1, 13, 4, 4), (2, 10, 5, 5)]
    rows += [(3, 14, 5, 100 + i) for i in range(20)]  # padding so user 1 sits in train
    user = _features(rows).filter(pl.col("user_id") == 1).sort("timestamp")
    assert user["user_count"].to_list() == [0, 1, 2, 3]
    # with smoothing 0 a first event has nothing to average: it gets the prior, not NaN;
    # the very first event of the dataset knows nothing yet, so the prior is ½
    assert user["user_pos_rate"].to_list() == pytest.approx([0.5, 1.0, 0.5, 2 / 3])


def test_smoothing_pulls_cold_entities_to_the_running_global_rate() -> None:
    rows = [(u, 10 + u, 5 if u % 4 else 1, u) for u in range(1, 41)]
    features = _features(rows, FeatureParams(smoothing=10.0, history_length=3)).sort("timestamp")
    labels = features["label"].to_list()
    # every user is new at its only event: its rate is the global rate of all events before it
    expected = [(sum(labels[:i]) + 0.5) / (i + 1) for i in range(len(labels))]
    assert features["user_count"].to_list() == [0] * len(labels)
    assert features["user_pos_rate"].to_list() == pytest.approx(expected, rel=1e-6)


def test_events_sharing_a_timestamp_do_not_see_each_other() -> None:
    rows = [(1, 10, 5, 7), (1, 11, 1, 7), (1, 12, 5, 8)] + [
        (2, 20 + i, 4, 50 + i) for i in range(20)
    ]
    features = _features(rows).filter(pl.col("user_id") == 1).sort("timestamp", "item_id")
    assert features["user_count"].to_list() == [0, 0, 2]
    assert features["item_count"].to_list() == [0, 0, 0]


def test_history_holds_recent_positives_before_the_event_left_padded() -> None:
    rows = [
        (1, 10, 5, 1),
        (1, 11, 1, 2),
        (1, 12, 5, 3),
        (1, 13, 4, 4),
        (1, 14, 5, 5),
        (1, 15, 5, 6),
    ]
    rows += [(2, 20 + i, 4, 50 + i) for i in range(20)]
    features = _features(rows).filter(pl.col("user_id") == 1).sort("timestamp")
    assert features["history"].to_list() == [
        [0, 0, 0],
        [0, 0, 10],
        [0, 0, 10],  # item 11 was rated 1: not a positive
        [0, 10, 12],
        [10, 12, 13],
        [12, 13, 14],
    ]


def test_paper_protocol_features_include_the_events_own_label() -> None:
    rows = [(u % 5 + 1, u % 9 + 1, 5 if u % 3 else 1, u) for u in range(200)]
    leaky = _features(rows, split=SplitParams(protocol="paper"))
    honest = _features(rows)
    assert leaky["user_count"].min() >= 1  # the event counts itself
    assert honest["user_count"].min() == 0


def test_attributes_bucket_ages_and_keep_genres() -> None:
    users = pl.DataFrame(
        {
            "user_id": [1, 2, 3],
            "gender": ["M", "F", None],
            "age": [17, 33, None],
            "occupation": ["writer", None, "other"],
            "zip": ["55105", "9", None],
        },
        schema_overrides={"age": pl.Int32},
    )
    assert user_attributes(users)["age_bucket"].to_list() == ["1", "25", None]
    assert user_attributes(users)["zip_prefix"].to_list() == ["55", "9", None]
    items = pl.DataFrame(
        {"item_id": [1, 2], "title": ["a", "b"], "year": [1995, None], "genres": [["Drama"], []]},
        schema_overrides={"year": pl.Int32},
    )
    assert item_attributes(items)["decade"].to_list() == ["1990", None]


def test_genre_profile_is_the_users_earlier_rate_per_genre() -> None:
    rows = [(1, 10, 5, 1), (1, 11, 1, 2), (1, 12, 4, 3)] + [(2, 13, 4, 50 + i) for i in range(20)]
    items = pl.DataFrame(
        {
            "item_id": [10, 11, 12, 13],
            "title": ["a", "b", "c", "d"],
            "year": [1990] * 4,
            "genres": [["Drama"], ["Comedy"], ["Drama", "Comedy"], []],
        },
        schema_overrides={"year": pl.Int32},
    )
    events = split_of(interactions(rows))
    features, _ = event_features(events, NO_SMOOTHING, SplitParams(), items)
    user = features.filter(pl.col("user_id") == 1).sort("timestamp")
    drama, comedy = user["user_genre_rate.Drama"], user["user_genre_rate.Comedy"]
    # first event: no history on either genre, so the user's own (prior) rate
    assert drama[0] == pytest.approx(user["user_pos_rate"][0])
    assert drama.to_list()[1:] == pytest.approx([1.0, 1.0])  # item 10 (Drama) was liked
    assert comedy[2] == pytest.approx(0.0)  # item 11 (Comedy) was disliked


def test_residuals_are_earlier_surprise_against_the_other_sides_rate() -> None:
    # item 10 is liked by users 2 and 3 first; user 1 then dislikes it, and likes item 11
    rows = [(2, 10, 5, 1), (3, 10, 5, 2), (1, 10, 1, 3), (1, 11, 5, 4), (1, 12, 5, 5)]
    rows += [(4, 20 + i, 4, 50 + i) for i in range(20)]
    features = _features(rows).sort("timestamp")
    user = features.filter(pl.col("user_id") == 1)
    item_rate = user["item_pos_rate"].to_list()
    # item 11 is new: it takes the running global rate, (2 likes + ½) / (3 events + 1)
    assert item_rate[:2] == pytest.approx([1.0, 2.5 / 4])
    surprises = [0.0 - item_rate[0], 1.0 - item_rate[1]]
    assert user["user_residual"].to_list() == pytest.approx(
        [0.0, surprises[0], sum(surprises) / 2], abs=1e-6
    )
    # item 10's third rater is surprised against their own earlier rate (user 1: none, prior)
    item = features.filter(pl.col("item_id") == 10)
    user_rates = item["user_pos_rate"].to_list()
    assert item["item_residual"][2] == pytest.approx(
        ((1 - user_rates[0]) + (1 - user_rates[1])) / 2, abs=1e-6
    )


def test_recent_rate_counts_only_the_last_events_before_the_tie_group() -> None:
    # user 1: four likes, then two dislikes sharing a timestamp, then one more event
    rows = [(1, 10 + i, 5, 1 + i) for i in range(4)] + [
        (1, 20, 1, 9),
        (1, 21, 1, 9),
        (1, 22, 5, 10),
    ]
    rows += [(2, 30 + i, 4, 50 + i) for i in range(30)]
    params = FeatureParams(smoothing=0.0, history_length=3, recent_windows=[2])
    user = _features(rows, params).filter(pl.col("user_id") == 1).sort("timestamp", "item_id")
    recent, long_run = user["user_recent_rate.2"].to_list(), user["user_pos_rate"].to_list()
    pseudo = RECENT_PSEUDO_COUNT
    # the tied dislikes (rows 4, 5) see the four likes but not each other: last two = 2 likes
    assert recent[4] == pytest.approx((2 + pseudo * long_run[4]) / (2 + pseudo))
    assert recent[5] == pytest.approx(recent[4])
    # the next event's last two are the two dislikes
    assert recent[6] == pytest.approx((0 + pseudo * long_run[6]) / (2 + pseudo))
    # the first event has no window at all: the long-run rate
    assert recent[0] == pytest.approx(long_run[0])


def test_behaviour_features_can_be_turned_off() -> None:
    rows = [(1, 10, 5, 1), (1, 11, 1, 2)] + [(2, 30 + i, 4, 50 + i) for i in range(20)]
    params = FeatureParams(history_length=3, residuals=False, recent_windows=[])
    assert optional_dense_columns(_features(rows, params).columns) == []
    params = FeatureParams(history_length=3, residuals=False, recent_windows=[3])
    assert optional_dense_columns(_features(rows, params).columns) == ["user_recent_rate.3"]
