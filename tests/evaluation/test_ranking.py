"""The ranking metrics' arithmetic on hand-made rankings (Recall@K, NDCG@K, coverage)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inttower.evaluation.ranking import _ndcg, _recall, _summaries


def test_recall_divides_hits_by_the_smaller_of_k_and_the_relevant_count() -> None:
    top = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    relevant = [{1, 9}, {4, 5, 6, 7, 8}]
    # user 0: 1 hit of min(2, 2); user 1: 2 hits of min(2, 5)
    assert _recall(top, relevant, 2) == pytest.approx((0.5 + 1.0) / 2)


def test_ndcg_discounts_by_rank_and_normalises_by_the_ideal_ranking() -> None:
    top = np.array([[5, 1, 2], [1, 5, 2]])
    relevant = [{1}, {1}]
    first = 1 / math.log2(3)  # the hit at rank 2
    assert _ndcg(top, relevant, 3) == pytest.approx((first + 1.0) / 2)
    assert _ndcg(np.array([[1, 2, 3]]), [{1, 2, 3}], 3) == pytest.approx(1.0)


def test_summaries_name_every_k_and_coverage() -> None:
    top = np.tile(np.arange(20), (3, 1))
    out = _summaries(top, [{0}, {1}, {30}], [10, 20], n_items=40)
    assert set(out) == {"recall@10", "ndcg@10", "recall@20", "ndcg@20", "coverage@10"}
    assert out["coverage@10"] == pytest.approx(10 / 40)
    assert out["recall@10"] == pytest.approx(2 / 3)
