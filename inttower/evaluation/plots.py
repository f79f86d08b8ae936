"""DVC plot data: ROC curve and reliability table as small CSV files (`dvc plots diff` reads them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from inttower.io import atomic_path
from inttower.metrics import ArrayLike, calibration_table, expected_calibration_error, roc_curve

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


def write_reliability_png(
    labels: ArrayLike,
    calibrated: ArrayLike,
    uncalibrated: ArrayLike,
    target: Path,
    n_bins: int = 10,
) -> Path:
    """A reliability diagram: fraction positive against mean predicted probability per bin, the
    served (calibrated) and the raw probabilities beside the diagonal, with each one's ECE. Its
    bytes depend only on the numbers (no timestamp, no software tag), so DVC hashes it stably."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    try:
        axes.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
        for name, probabilities, style in (
            ("calibrated", calibrated, "o-"),
            ("uncalibrated", uncalibrated, "s:"),
        ):
            table = calibration_table(labels, probabilities, n_bins)
            filled = table.count > 0
            axes.plot(
                table.mean_predicted[filled],
                table.fraction_positive[filled],
                style,
                markersize=4,
                label=f"{name} (ECE {expected_calibration_error(labels, probabilities, n_bins):.4f})",
            )
        axes.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="mean predicted probability",
            ylabel="fraction positive",
            title="Test reliability",
        )
        axes.legend(loc="upper left", frameon=False)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        with atomic_path(target) as temporary:
            figure.savefig(temporary, format="png", metadata={"Software": None})
    finally:
        plt.close(figure)
    return Path(target)
