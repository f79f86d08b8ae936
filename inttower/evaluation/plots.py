"""DVC plot data: ROC curve and reliability table as small CSV files (`dvc plots diff` reads them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from inttower.io import atomic_path
from inttower.metrics import ArrayLike, calibration_table, roc_curve

MAX_ROC_POINTS = 500


def downsample(n_points: int, max_points: int) -> np.ndarray:
    """Evenly spaced indices into a curve, keeping its first and last point."""
    if n_points <= max_points:
        return np.arange(n_points)
    return np.unique(np.linspace(0, n_points - 1, max_points).round().astype(np.int64))


def write_csv(frame: pl.DataFrame, target: Path) -> Path:
    with atomic_path(target) as temporary:
        frame.write_csv(temporary)
    return Path(target)


def write_roc_csv(
    labels: ArrayLike, scores: ArrayLike, target: Path, max_points: int = MAX_ROC_POINTS
) -> Path:
    """`fpr,tpr` at up to `max_points` thresholds: enough to draw, small enough to diff."""
    fpr, tpr = roc_curve(labels, scores)
    keep = downsample(len(fpr), max_points)
    return write_csv(pl.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]}), target)


def write_calibration_csv(
    labels: ArrayLike, probabilities: ArrayLike, target: Path, n_bins: int = 10
) -> Path:
    """`bin,mean_predicted,fraction_positive,count` for each non-empty equal-width bin."""
    table = calibration_table(labels, probabilities, n_bins)
    filled = table.count > 0
    frame = pl.DataFrame(
        {
            "bin": table.bin[filled],
            "mean_predicted": table.mean_predicted[filled],
            "fraction_positive": table.fraction_positive[filled],
            "count": table.count[filled],
        }
    )
    return write_csv(frame, target)
