"""The charts people look at (PNG: DVC image plots, Dagster metadata, the README) and the curve
data behind them as small CSV reports.

Every PNG's bytes depend only on its numbers (no timestamp, no software tag), so DVC hashes it
stably and a rerun on the same inputs rewrites identical files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from inttower.evaluation.metrics import (
    ArrayLike,
    calibration_table,
    expected_calibration_error,
    roc_curve,
)
from inttower.io import atomic_path

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


@contextmanager
def png_figure(target: Path, size: tuple[float, float] = (5, 5)) -> Iterator[Any]:
    """Axes to draw on; on leaving the block the figure is written to `target` atomically."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=size, dpi=100)
    try:
        yield axes
        axes.grid(alpha=0.3)
        figure.tight_layout()
        with atomic_path(target) as temporary:
            figure.savefig(temporary, format="png", metadata={"Software": None})
    finally:
        plt.close(figure)


def write_reliability_png(
    labels: ArrayLike,
    calibrated: ArrayLike,
    uncalibrated: ArrayLike,
    target: Path,
    n_bins: int = 10,
) -> Path:
    """A reliability diagram: fraction positive against mean predicted probability per bin, the
    served (calibrated) and the raw probabilities beside the diagonal, with each one's ECE."""
    with png_figure(target) as axes:
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
    return Path(target)


def write_roc_png(
    curves: Sequence[tuple[str, ArrayLike, ArrayLike, float | None]], target: Path
) -> Path:
    """ROC curves on the test events, (name, labels, scores, AUC) each, the first the model."""
    with png_figure(target) as axes:
        axes.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="chance")
        for index, (name, labels, scores, area) in enumerate(curves):
            fpr, tpr = roc_curve(labels, scores)
            keep = downsample(len(fpr), MAX_ROC_POINTS)
            label = name if area is None else f"{name} (AUC {area:.4f})"
            axes.plot(fpr[keep], tpr[keep], linewidth=2 if index == 0 else 1, label=label)
        axes.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="false positive rate",
            ylabel="true positive rate",
            title="Test ROC",
        )
        axes.legend(loc="lower right", frameon=False, fontsize=8)
    return Path(target)


def write_training_curve_png(history: Sequence[dict[str, Any]], target: Path) -> Path:
    """Training loss and validation AUC per epoch (two y axes), the best epoch marked."""
    epochs = [row["epoch"] for row in history]
    with png_figure(target, size=(6, 4)) as axes:
        axes.plot(epochs, [row["loss"] for row in history], "o-", color="tab:blue", label="loss")
        axes.set(xlabel="epoch", ylabel="training loss", title="Training curve")
        axes.xaxis.get_major_locator().set_params(integer=True)
        auc_axes = axes.twinx()
        aucs = [row["valid_auc"] for row in history]
        auc_axes.plot(epochs, aucs, "s-", color="tab:orange", label="valid AUC")
        best = max(range(len(aucs)), key=lambda index: aucs[index]) if aucs else None
        if best is not None:
            auc_axes.plot(
                [epochs[best]],
                [aucs[best]],
                "*",
                color="tab:red",
                markersize=12,
                label=f"best: epoch {epochs[best]}, AUC {aucs[best]:.4f}",
            )
        auc_axes.set_ylabel("validation AUC")
        lines = axes.get_legend_handles_labels()
        more = auc_axes.get_legend_handles_labels()
        axes.legend(lines[0] + more[0], lines[1] + more[1], frameon=False, loc="center right")
    return Path(target)


def write_cold_warm_png(metrics: dict[str, Any], target: Path) -> Path:
    """AUC and GAUC of all test users, those unseen in train (cold) and the rest (warm)."""
    blocks = [("all", "test"), ("cold", "test_cold"), ("warm", "test_warm")]
    with png_figure(target, size=(6, 4)) as axes:
        width = 0.38
        for offset, key in ((-width / 2, "auc"), (width / 2, "gauc")):
            values = [metrics[block].get(key) or 0.0 for _, block in blocks]
            bars = axes.bar([i + offset for i in range(len(blocks))], values, width, label=key)
            axes.bar_label(bars, fmt="%.4f", fontsize=8)
        axes.set_xticks(
            range(len(blocks)),
            [f"{name}\n{metrics[block]['n']:,} events" for name, block in blocks],
        )
        axes.set(ylim=(0.5, 1.0), ylabel="test score", title="Cold and warm users")
        axes.legend(frameon=False, loc="upper right")
    return Path(target)


def write_ranking_png(curves: dict[str, list[float]], target: Path) -> Path:
    """NDCG@K for K = 1 … 20 over the whole catalogue: the model, popularity and the ids-only
    MF on the same test users (an empty chart says the model has no item side to rank with)."""
    labels = {
        "model": "the model (what is served)",
        "popularity": "popularity",
        "ids_mf": "ids-only MF",
    }
    with png_figure(target, size=(6, 4)) as axes:
        for name, values in curves.items():
            axes.plot(range(1, len(values) + 1), values, marker=".", label=labels.get(name, name))
        axes.set(xlabel="K", ylabel="NDCG@K", title="Full-catalogue top-K on test users")
        if curves:
            axes.legend(frameon=False)
    return Path(target)
