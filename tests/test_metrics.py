from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.metrics import roc_curve as sklearn_roc_curve

from inttower.evaluation.metrics import (
    auc,
    average_ranks,
    binary_metrics,
    calibration_table,
    expected_calibration_error,
    gauc,
    logloss,
    roc_curve,
)


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_and_without_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 2000)
    scores = rng.normal(labels * 0.7, 1.0)
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    tied = np.round(scores, 1)  # many ties, across and within classes
    assert auc(labels, tied) == pytest.approx(roc_auc_score(labels, tied), abs=1e-12)


def test_auc_takes_tensors_and_counts_a_tie_as_half() -> None:
    assert auc(torch.tensor([0.0, 1.0]), torch.tensor([0.3, 0.3])) == 0.5
    assert auc(torch.tensor([0, 0, 1, 1]), torch.tensor([0.1, 0.4, 0.35, 0.8])) == 0.75


def test_auc_of_one_class_is_undefined() -> None:
    assert np.isnan(auc([1, 1, 1], [0.2, 0.5, 0.9]))


def test_average_ranks_share_ties() -> None:
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_logloss_matches_sklearn_and_clips_certain_mistakes() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    probabilities = rng.uniform(0.01, 0.99, 500)
    assert logloss(labels, probabilities) == pytest.approx(log_loss(labels, probabilities), 1e-12)
    assert np.isfinite(logloss([1, 0], [0.0, 1.0]))  # clipped, not infinite


def test_gauc_hand_case() -> None:
    # user 7: AUC 1 over 4 events; user 9: pairs (0.6>0.2 ok, 0.6<0.9 wrong) AUC 0.5 over 3
    # events; user 5 has only positives and is skipped.
    groups = [7, 7, 7, 7, 9, 9, 9, 5, 5]
    labels = [1, 0, 1, 0, 1, 0, 0, 1, 1]
    scores = [0.9, 0.1, 0.8, 0.2, 0.6, 0.2, 0.9, 0.1, 0.3]
    assert gauc(labels, scores, groups) == pytest.approx((4 * 1.0 + 3 * 0.5) / 7)


def test_gauc_matches_a_per_user_sklearn_loop_with_ties() -> None:
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 40, 3000) * 13 + 1000  # sparse raw ids
    labels = rng.integers(0, 2, 3000)
    scores = np.round(rng.normal(labels * 0.5, 1.0), 1)
    total, weight = 0.0, 0
    for user in np.unique(groups):
        mine = groups == user
        if len(np.unique(labels[mine])) == 2:
            total += roc_auc_score(labels[mine], scores[mine]) * mine.sum()
            weight += mine.sum()
    assert gauc(labels, scores, groups) == pytest.approx(total / weight, abs=1e-12)


def test_gauc_without_any_two_class_user_is_undefined() -> None:
    assert np.isnan(gauc([1, 0], [0.5, 0.5], [1, 2]))


def test_ece_hand_case() -> None:
    # bin [0.2, 0.3): predictions 0.2, 0.2 with one positive: |0.2 - 0.5| = 0.3 on 2 rows;
    # bin [0.9, 1.0]: predictions 0.9, 1.0 with two positives: |0.95 - 1.0| = 0.05 on 2 rows.
    labels = [1, 0, 1, 1]
    probabilities = [0.2, 0.2, 0.9, 1.0]
    assert expected_calibration_error(labels, probabilities, 10) == pytest.approx(
        (2 * 0.3 + 2 * 0.05) / 4
    )


def test_a_calibrated_predictor_has_small_ece() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(0, 1, 200_000)
    labels = rng.uniform(0, 1, 200_000) < probabilities
    assert expected_calibration_error(labels, probabilities) < 0.01


def test_calibration_table_counts_every_row_once() -> None:
    table = calibration_table([0, 1, 1], [0.05, 0.55, 1.0], 4)
    assert table.count.tolist() == [1, 0, 1, 1]
    assert table.fraction_positive[[0, 2, 3]].tolist() == [0.0, 1.0, 1.0]
    assert np.isnan(table.mean_predicted[1])


def test_roc_curve_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 1000)
    scores = np.round(rng.normal(labels, 1.0), 1)
    fpr, tpr = roc_curve(labels, scores)
    want_fpr, want_tpr, _ = sklearn_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, want_fpr)
    np.testing.assert_allclose(tpr, want_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc(labels, scores), abs=1e-12)


def test_metric_block_writes_null_for_undefined_values() -> None:
    block = binary_metrics([1, 1], [0.7, 0.8], groups=[1, 2])
    assert block["auc"] is None and block["gauc"] is None
    assert block["n"] == 2 and block["logloss"] > 0
    empty = binary_metrics([], [], groups=[])
    assert empty == {"auc": None, "logloss": None, "ece": None, "gauc": None, "n": 0}
