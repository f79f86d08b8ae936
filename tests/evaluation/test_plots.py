from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from inttower.evaluation.plots import (
    downsample,
    write_calibration_csv,
    write_reliability_png,
    write_roc_csv,
)


def test_roc_csv_is_downsampled_but_keeps_both_ends(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 20_000)
    scores = rng.normal(labels, 1.0)
    roc = pl.read_csv(write_roc_csv(labels, scores, tmp_path / "plots" / "roc.csv"))
    assert roc.columns == ["fpr", "tpr"]
    assert 2 <= roc.height <= 500
    assert roc.row(0) == (0.0, 0.0) and roc.row(-1) == (1.0, 1.0)
    assert (roc["fpr"].diff().drop_nulls() >= 0).all()


def test_downsample_is_identity_for_short_curves() -> None:
    assert downsample(10, 500).tolist() == list(range(10))
    picked = downsample(10_000, 500)
    assert len(picked) <= 500 and picked[0] == 0 and picked[-1] == 9_999


def test_calibration_csv_lists_non_empty_bins(tmp_path: Path) -> None:
    path = write_calibration_csv([0, 1, 1, 0], [0.05, 0.95, 0.9, 0.12], tmp_path / "cal.csv", 10)
    table = pl.read_csv(path)
    assert table.columns == ["bin", "mean_predicted", "fraction_positive", "count"]
    assert table["bin"].to_list() == [0, 1, 9]
    assert table["count"].sum() == 4
    assert not list(tmp_path.glob(".*.part"))


def test_the_reliability_diagram_is_a_png_with_stable_bytes(tmp_path: Path) -> None:
    generator = np.random.default_rng(0)
    probabilities = generator.random(2000)
    labels = (generator.random(2000) < probabilities).astype(float)
    first = write_reliability_png(labels, probabilities, probabilities**2, tmp_path / "a.png")
    second = write_reliability_png(labels, probabilities, probabilities**2, tmp_path / "b.png")
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.read_bytes() == second.read_bytes()  # DVC hashes it: identical runs, same file
