"""Ranking and calibration metrics, vectorised: no Python loop over rows or users.

Undefined values (AUC of a single-class set, any metric of an empty set) are NaN here;
reports turn them into JSON null.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | list[float]
LOGLOSS_EPS = 1e-7


def as_numpy(values: ArrayLike, dtype: type = np.float64) -> np.ndarray:
    """A flat numpy copy of a tensor, array or list."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype).reshape(-1)


def average_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank (scipy's rankdata 'average')."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    tie_group = np.repeat(np.arange(len(starts)), ends - starts)
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[tie_group]
    return ranks


def auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half, as sklearn does."""
    y = as_numpy(labels) > 0.5
    s = as_numpy(scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = average_ranks(s)[y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: ArrayLike, probabilities: ArrayLike, eps: float = LOGLOSS_EPS) -> float:
    """Mean binary cross-entropy with probabilities clipped to [eps, 1-eps]."""
    y = as_numpy(labels)
    if len(y) == 0:
        return float("nan")
    p = np.clip(as_numpy(probabilities), eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def gauc(labels: ArrayLike, scores: ArrayLike, groups: ArrayLike) -> float:
    """Group AUC: each user's AUC weighted by the user's event count; users whose events are
    all one class have no AUC and are skipped (as in the DIN paper's definition)."""
    y = as_numpy(labels) > 0.5
    s = as_numpy(scores)
    _, group = np.unique(as_numpy(groups, dtype=np.int64), return_inverse=True)
    if len(y) == 0:
        return float("nan")
    # sort by (group, score); tie runs are equal (group, score) pairs; ranks restart per group
    order = np.lexsort((s, group))
    group_sorted, score_sorted = group[order], s[order]
    new_run = np.r_[
        True, (group_sorted[1:] != group_sorted[:-1]) | (score_sorted[1:] != score_sorted[:-1])
    ]
    run_starts = np.flatnonzero(new_run)
    run_ends = np.r_[run_starts[1:], len(s)]
    group_start = np.flatnonzero(np.r_[True, group_sorted[1:] != group_sorted[:-1]])
    first_row_of_group = group_start[group_sorted[run_starts]]
    # 1-based average rank within the group = mean position of the run, offset to the group
    run_rank = (run_starts + 1 + run_ends) / 2.0 - first_row_of_group
    ranks = np.repeat(run_rank, run_ends - run_starts)

    positive = y[order]
    n_groups = int(group.max()) + 1
    count = np.bincount(group_sorted, minlength=n_groups).astype(np.float64)
    n_pos = np.bincount(group_sorted, weights=positive, minlength=n_groups)
    rank_sum = np.bincount(group_sorted, weights=ranks * positive, minlength=n_groups)
    n_neg = count - n_pos
    usable = (n_pos > 0) & (n_neg > 0)
    if not usable.any():
        return float("nan")
    group_auc = (rank_sum[usable] - n_pos[usable] * (n_pos[usable] + 1) / 2.0) / (
        n_pos[usable] * n_neg[usable]
    )
    return float(np.average(group_auc, weights=count[usable]))


@dataclass(frozen=True)
class CalibrationTable:
    """Per equal-width probability bin: mean prediction, observed positive rate, row count."""

    bin: np.ndarray
    mean_predicted: np.ndarray
    fraction_positive: np.ndarray
    count: np.ndarray


def calibration_table(
    labels: ArrayLike, probabilities: ArrayLike, n_bins: int = 10
) -> CalibrationTable:
    """Equal-width bins over [0, 1] (p = 1 falls in the last bin); empty bins hold NaN means."""
    y = as_numpy(labels)
    p = as_numpy(probabilities)
    bins = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(bins, weights=p, minlength=n_bins) / count
        fraction_positive = np.bincount(bins, weights=y, minlength=n_bins) / count
    return CalibrationTable(np.arange(n_bins), mean_predicted, fraction_positive, count)


def expected_calibration_error(
    labels: ArrayLike, probabilities: ArrayLike, n_bins: int = 10
) -> float:
    """ECE: the count-weighted mean gap between predicted and observed rate over equal bins."""
    table = calibration_table(labels, probabilities, n_bins)
    total = table.count.sum()
    if total == 0:
        return float("nan")
    filled = table.count > 0
    gaps = np.abs(table.mean_predicted[filled] - table.fraction_positive[filled])
    return float(np.sum(gaps * table.count[filled]) / total)


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    y = as_numpy(labels) > 0.5
    s = as_numpy(scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    last_of_threshold = np.r_[np.flatnonzero(s_desc[1:] != s_desc[:-1]), len(s) - 1]
    true_pos = np.cumsum(y_desc)[last_of_threshold]
    false_pos = (last_of_threshold + 1) - true_pos
    fpr = np.r_[0.0, false_pos / n_neg]
    tpr = np.r_[0.0, true_pos / n_pos]
    return fpr, tpr


def binary_metrics(
    labels: ArrayLike,
    probabilities: ArrayLike,
    groups: ArrayLike | None = None,
    n_bins: int = 10,
) -> dict[str, float | int | None]:
    """The report's metric block for one set of rows: auc, logloss, gauc, ece, n (null where
    undefined, so the JSON stays valid)."""
    y = as_numpy(labels)
    p = as_numpy(probabilities)
    block: dict[str, float | int | None] = {
        "auc": auc(y, p),
        "logloss": logloss(y, p),
        "ece": expected_calibration_error(y, p, n_bins),
    }
    if groups is not None:
        block["gauc"] = gauc(y, p, groups)
    block = {key: finite_or_none(value) for key, value in block.items()}
    block["n"] = len(y)
    return block


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: undefined metrics are written as null."""
    if value is None or not np.isfinite(value):
        return None
    return float(value)
