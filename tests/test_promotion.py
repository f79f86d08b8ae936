"""The challenger-vs-champion rule on hand-made scores: each bar, and the optional top-K one."""

from __future__ import annotations

import pytest

from inttower.config import PromotionParams, parse_params
from inttower.errors import ConfigError
from inttower.lifecycle.promotion import compare

CHAMPION = {"auc": 0.83, "logloss": 0.40, "ndcg@10": 0.20}


def test_without_the_ndcg_rule_the_top_k_is_not_judged() -> None:
    challenger = {"auc": 0.83, "logloss": 0.40, "ndcg@10": 0.05}
    promoted, why = compare(challenger, CHAMPION, PromotionParams())
    assert promoted and "NDCG" not in why


def test_a_challenger_whose_top_k_drops_past_the_bar_is_kept_out() -> None:
    rule = PromotionParams(max_ndcg_drop=0.01)
    promoted, why = compare({"auc": 0.84, "logloss": 0.39, "ndcg@10": 0.18}, CHAMPION, rule)
    assert not promoted
    assert "NDCG@10 lower by 0.0200 > max_ndcg_drop 0.01" in why
    promoted, why = compare({"auc": 0.84, "logloss": 0.39, "ndcg@10": 0.195}, CHAMPION, rule)
    assert promoted and "NDCG@10 0.1950 vs 0.2000" in why


def test_the_pointwise_bars_are_judged_first() -> None:
    rule = PromotionParams(max_ndcg_drop=0.5)
    promoted, why = compare({"auc": 0.80, "logloss": 0.40, "ndcg@10": 0.3}, CHAMPION, rule)
    assert not promoted and "max_auc_drop" in why


def test_a_challenger_serving_no_top_k_cannot_pass_the_ndcg_rule() -> None:
    rule = PromotionParams(max_ndcg_drop=0.01)
    promoted, why = compare({"auc": 0.84, "logloss": 0.39, "ndcg@10": None}, CHAMPION, rule)
    assert not promoted and "no top-K" in why
    # a single-tower champion has none to lose: the pointwise bars decide
    champion = {**CHAMPION, "ndcg@10": None}
    assert compare({"auc": 0.84, "logloss": 0.39, "ndcg@10": 0.1}, champion, rule)[0]


def test_the_ndcg_rule_needs_k_10_in_the_ranking_metrics() -> None:
    with pytest.raises(ConfigError, match=r"promotion\.max_ndcg_drop: .*has no 10"):
        parse_params({"promotion": {"max_ndcg_drop": 0.01}, "evaluate": {"ranking_k": [5, 20]}})


def test_records_read_as_attributes_and_round_trip_through_json() -> None:
    from inttower.lifecycle.records import ChampionRecord, Decision

    minimal = {"id": "model-abc", "promoted_at": "2026-01-01T00:00:00+00:00", "lineage": {}}
    record = ChampionRecord.from_json(minimal)
    assert record.id == "model-abc" and record.event == "promoted" and record.artifacts == {}
    assert ChampionRecord.from_json(record.to_json()) == record
    challenger = {
        "id": "model-def", "experiment": None, "model": "inttower", "as_of": None,
        "lineage": {"data": "d"}, "metrics": {}, "test": {"auc": 0.8, "logloss": 0.4},
        "checks": [],
    }  # fmt: skip
    raw = {
        "decided_at": "2026-01-02T00:00:00+00:00", "decision": "kept", "reason": "worse",
        "rule": "r", "experiment": None, "challenger": challenger, "champion": None,
        "test_window": {"as_of": None, "events": 10},
    }  # fmt: skip
    decision = Decision.from_json(raw)
    assert not decision.promoted and decision.challenger.lineage == {"data": "d"}
    assert decision.to_json() == raw  # no `versioning` until a retrain adds one
