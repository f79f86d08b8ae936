"""Post-hoc calibration of logits, fit on the validation split only: Platt scaling σ(a·z + b), or
temperature scaling σ(z / T) (b = 0). Ranking metrics are unchanged (a > 0 keeps the order);
logloss and ECE are what it repairs, e.g. the drift of the positive rate between train and test.

`auto` chooses among none, temperature and Platt by cross-fitting on valid: each of its
contiguous (time-ordered) blocks is scored by a calibration fit on the others, and the method
with the lowest held-out logloss is fit on the whole split. A calibration that only fits valid's
own base rate (one that would not carry to the next period) loses there to `none`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from inttower.evaluation.metrics import logloss

Method = Literal["none", "temperature", "platt"]  # simplest first: ties go to the simpler
Request = Method | Literal["auto"]
CROSS_FIT_BLOCKS = 5
_STEPS = 100
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Calibration:
    """p = σ(scale · logit + bias); the identity is scale 1, bias 0."""

    method: Method = "none"
    scale: float = 1.0
    bias: float = 0.0
    fitted_on: int = 0  # validation rows the fit saw
    # `auto`: each candidate's mean held-out logloss over the cross-fitting blocks
    held_out_logloss: dict[str, float] = field(default_factory=dict)

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale

    def logits(self, logits: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(logits, dtype=np.float64) + self.bias

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, in float64 (float32 would tie distinct logits near ±15)."""
        return 1.0 / (1.0 + np.exp(-self.logits(logits)))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Calibration:
        return cls(**raw)


def fit_calibration(logits: np.ndarray, labels: np.ndarray, method: Request) -> Calibration:
    """The calibration `method` names, fit on (logits, labels); `auto`: the one cross-fitting
    chooses (`choose_calibration`)."""
    if method == "auto":
        return choose_calibration(logits, labels)
    return _fit(logits, labels, method)


def choose_calibration(
    logits: np.ndarray, labels: np.ndarray, blocks: int = CROSS_FIT_BLOCKS
) -> Calibration:
    """Each method's held-out logloss over `blocks` contiguous blocks of the (time-ordered) rows,
    each block scored by that method fit on the rest; the best fit on everything. Too few rows
    for every block to hold both classes: no calibration (nothing can be shown to help)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    parts = np.array_split(np.arange(len(y)), blocks)
    if len(y) < 2 * blocks or any(y[part].min() == y[part].max() for part in parts):
        return Calibration(fitted_on=len(y))
    held_out: dict[str, float] = {}
    for method in get_args(Method):
        losses = []
        for part in parts:
            rest = np.ones(len(y), dtype=bool)
            rest[part] = False
            fitted = _fit(z[rest], y[rest], method)
            losses.append(logloss(y[part], fitted.probabilities(z[part])) * len(part))
        held_out[method] = float(sum(losses) / len(y))
    best = min(held_out, key=lambda name: held_out[name])  # first (simplest) of equals
    chosen = _fit(z, y, best)  # type: ignore[arg-type]
    return Calibration(chosen.method, chosen.scale, chosen.bias, chosen.fitted_on, held_out)


def _fit(logits: np.ndarray, labels: np.ndarray, method: Method) -> Calibration:
    """Minimise the validation logloss over (scale, bias) by Newton's method in float64:
    deterministic, a few iterations. Identity when there is nothing to fit (`none`, or a split
    without both classes)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if method == "none" or len(y) == 0 or y.min() == y.max():
        return Calibration(fitted_on=len(y))
    with_bias = method == "platt"
    features = np.stack([z, np.ones_like(z)], axis=1) if with_bias else z[:, None]
    theta = np.array([1.0, 0.0]) if with_bias else np.array([1.0])
    for _ in range(_STEPS):
        p = 1.0 / (1.0 + np.exp(-(features @ theta)))
        gradient = features.T @ (p - y) / len(y)
        hessian = (features * (p * (1 - p))[:, None]).T @ features / len(y)
        hessian += 1e-9 * np.eye(len(theta))  # separable data: keep the step finite
        step = np.linalg.solve(hessian, gradient)
        theta = theta - step
        if float(np.abs(step).max()) < _TOLERANCE:
            break
    scale = float(theta[0])
    if not np.isfinite(theta).all() or scale <= 0:
        return Calibration(fitted_on=len(y))  # an order-reversing fit is no calibration
    return Calibration(method, scale, float(theta[1]) if with_bias else 0.0, len(y))
