"""Post-hoc calibration: the fit recovers known parameters, keeps the order, knows its limits."""

from __future__ import annotations

import numpy as np
import pytest

from inttower.evaluation.calibration import Calibration, fit_calibration
from inttower.evaluation.metrics import auc


def _drawn(scale: float, bias: float, n: int = 200_000, seed: int = 0):
    """Logits z and labels drawn from P(y=1) = σ(scale·z + bias): the calibration to recover."""
    generator = np.random.default_rng(seed)
    logits = generator.normal(0.0, 2.0, n)
    labels = generator.random(n) < 1 / (1 + np.exp(-(scale * logits + bias)))
    return logits, labels.astype(np.float64)


def test_temperature_scaling_recovers_a_known_temperature() -> None:
    logits, labels = _drawn(scale=1 / 2.5, bias=0.0)  # an over-confident model: T = 2.5
    fitted = fit_calibration(logits, labels, "temperature")
    assert fitted.method == "temperature" and fitted.bias == 0.0
    assert fitted.temperature == pytest.approx(2.5, rel=0.03)


def test_platt_scaling_recovers_a_scale_and_a_shift() -> None:
    logits, labels = _drawn(scale=0.6, bias=0.8)  # under-confident and biased low
    fitted = fit_calibration(logits, labels, "platt")
    assert fitted.scale == pytest.approx(0.6, rel=0.03)
    assert fitted.bias == pytest.approx(0.8, abs=0.03)
    assert fitted.fitted_on == len(labels)


def test_calibration_keeps_the_ranking_and_lowers_the_logloss() -> None:
    logits, labels = _drawn(scale=0.5, bias=-0.4, n=50_000)
    fitted = fit_calibration(logits, labels, "platt")
    raw = Calibration().probabilities(logits)
    calibrated = fitted.probabilities(logits)
    assert auc(labels, calibrated) == pytest.approx(auc(labels, raw), abs=1e-12)

    def logloss(p: np.ndarray) -> float:
        return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))

    assert logloss(calibrated) < logloss(raw) - 0.01


def test_nothing_to_fit_is_the_identity() -> None:
    logits = np.array([0.3, -1.0, 2.0])
    assert fit_calibration(logits, np.ones(3), "platt") == Calibration(fitted_on=3)
    assert fit_calibration(logits, np.array([0.0, 1, 0]), "none").scale == 1.0
    assert np.allclose(Calibration().probabilities(logits), 1 / (1 + np.exp(-logits)))


def test_a_calibration_round_trips_through_json() -> None:
    fitted = fit_calibration(*_drawn(scale=0.7, bias=0.2, n=5_000), "platt")
    assert Calibration.from_json(fitted.to_json()) == fitted


def test_auto_chooses_the_calibration_that_helps_on_held_out_blocks() -> None:
    logits, labels = _drawn(scale=0.6, bias=0.8, n=50_000)
    chosen = fit_calibration(logits, labels, "auto")
    assert chosen.method == "platt"
    assert set(chosen.held_out_logloss) == {"none", "temperature", "platt"}
    assert chosen.held_out_logloss["platt"] < chosen.held_out_logloss["temperature"]
    assert chosen.held_out_logloss["temperature"] < chosen.held_out_logloss["none"]
    # fit on the whole split, as a plain Platt fit is
    assert chosen.scale == fit_calibration(logits, labels, "platt").scale
    assert Calibration.from_json(chosen.to_json()) == chosen


def test_auto_declines_a_shift_that_only_fits_the_split_it_was_fit_on() -> None:
    # calibrated logits, but the base rate drifts from block to block (time-ordered rows): a
    # bias fit on the other blocks is wrong for each one, so Platt's shift is not chosen
    shifts = [1.0, -1.0, 1.0, -1.0, 0.0]
    blocks = [_drawn(scale=1.0, bias=shift, n=10_000, seed=i) for i, shift in enumerate(shifts)]
    logits = np.concatenate([z for z, _ in blocks])
    labels = np.concatenate([y for _, y in blocks])
    chosen = fit_calibration(logits, labels, "auto")
    assert chosen.method != "platt" and chosen.bias == 0.0
    assert chosen.held_out_logloss["none"] < chosen.held_out_logloss["platt"]


def test_auto_with_too_few_rows_to_cross_fit_calibrates_nothing() -> None:
    logits = np.array([0.3, -1.0, 2.0, 0.5, -0.2, 1.0])
    chosen = fit_calibration(logits, np.array([1.0, 0, 1, 0, 1, 0]), "auto")
    assert chosen == Calibration(fitted_on=6)
