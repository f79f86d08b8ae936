"""What the served top-K is ordered by, defined once for `inttower score` and the ranking metrics.

The model is trained on the items users chose to rate: its calibrated probability is
P(like | the user rates the item), not whether the user would pick the item from the whole
catalogue. Ranked by it alone, the top 10 fills with well-liked items nobody watches (ml-100k:
NDCG@10 0.086 against popularity's 0.244). The served score is therefore the log of the expected
positives,

    score(u, i) = log(1 + ratings of i in the last `prior_days` days) + log P(like | u, i)

the item's recent rating rate standing in for P(u rates i), the model for the rest
(`serving.rank_by: probability` ranks by the model alone). numpy only: the ONNX scorer imports it.
"""

from __future__ import annotations

import numpy as np

SECONDS_PER_DAY = 86_400


def item_prior(
    rated_items: np.ndarray,
    rated_at: np.ndarray,
    catalogue: np.ndarray,
    until: int,
    days: float | None,
) -> np.ndarray:
    """log(1 + ratings per catalogue item (sorted ids) in [until − days, until)), float32; every
    rating counts, whatever its label (the act of rating is what it estimates)."""
    keep = rated_at < until
    if days is not None:
        keep &= rated_at >= until - days * SECONDS_PER_DAY
    items = rated_items[keep]
    rows = np.searchsorted(catalogue, items)
    known = rows < catalogue.size
    known[known] = catalogue[rows[known]] == items[known]
    counts = np.bincount(rows[known], minlength=catalogue.size)
    return np.log1p(counts).astype(np.float32)


def served_scores(
    logits: np.ndarray, prior: np.ndarray | None, scale: float, bias: float
) -> np.ndarray:
    """(U, N) ranking scores from the model's logits against N items: the prior (one per item)
    plus the log of the calibrated probability σ(scale·z + bias), in float64; no prior: the
    logits themselves (the same order as the probability)."""
    if prior is None:
        return logits.astype(np.float64)
    calibrated = scale * logits.astype(np.float64) + bias
    return prior.astype(np.float64) - np.logaddexp(0.0, -calibrated)  # + log σ(calibrated)
