"""Whether a trained model may serve: the blocking quality checks against the evaluation's own
baselines, and the challenger-vs-champion rule on the same test window (TFX's Evaluator
"blessing": a model is blessed only if it beats the current one on the same data)."""

from __future__ import annotations

from typing import Any

from inttower.config import CheckParams, PromotionParams
from inttower.evaluation.report import EvaluateSummary

RATE_LOGITS = "user_item_pos_rate_logits"  # the point-in-time no-model baseline
DENSE_LOGISTIC = "dense_logistic"  # the features-alone logistic regression
IDS_MF = "ids_mf"  # the ids-only biased matrix factorisation
NDCG = "ndcg@10"  # the served top-K's quality, held by promotion.max_ndcg_drop


def quality_checks(evaluation: EvaluateSummary, checks: CheckParams) -> list[dict[str, Any]]:
    """Each bar the model's test AUC must clear: the floor, the rate-logit baseline, the
    features-alone and the ids-only baselines, each plus its margin. A missing AUC or baseline
    fails its bar. The results are JSON: they are written with the decision."""
    test_auc = evaluation.test.auc

    def baseline(name: str) -> float | None:
        scores = evaluation.baselines.get(name)
        return None if scores is None else scores.auc

    bars: list[tuple[str, float | None, float]] = [
        ("min_test_auc", checks.min_test_auc, 0.0),
        (RATE_LOGITS, baseline(RATE_LOGITS), checks.min_auc_gain_over_rate_logits),
        (DENSE_LOGISTIC, baseline(DENSE_LOGISTIC), checks.min_auc_gain_over_dense_logistic),
        (IDS_MF, baseline(IDS_MF), checks.min_auc_gain_over_ids_mf),
    ]
    results = []
    for name, baseline, margin in bars:
        bar = None if baseline is None else baseline + margin
        passed = test_auc is not None and bar is not None and test_auc >= bar
        results.append(
            {
                "check": name,
                "test_auc": test_auc,
                "baseline": baseline,
                "margin": margin,
                "bar": bar,
                "passed": passed,
            }
        )
    return results


def describe_checks(results: list[dict[str, Any]]) -> str:
    """`test AUC 0.83 ≥ min_test_auc 0.6000, …` in one line."""
    parts = []
    for result in results:
        bar = "missing" if result["bar"] is None else f"{result['bar']:.4f}"
        sign = "≥" if result["passed"] else "<"
        parts.append(f"{sign} {result['check']} {bar}")
    auc = results[0]["test_auc"] if results else None
    return f"test AUC {auc if auc is None else f'{auc:.4f}'} " + ", ".join(parts)


def compare(
    challenger: dict[str, Any], champion: dict[str, Any] | None, rule: PromotionParams
) -> tuple[bool, str]:
    """(promote?, why) for two `{"auc", "logloss"}` scores on the same events (with `ndcg@10`,
    the full-catalogue top-K, when `rule.max_ndcg_drop` is on); no champion: yes."""
    if champion is None:
        return True, "no champion yet"
    auc_drop = champion["auc"] - challenger["auc"]
    logloss_rise = challenger["logloss"] - champion["logloss"]
    figures = (
        f"AUC {challenger['auc']:.4f} vs {champion['auc']:.4f}, "
        f"logloss {challenger['logloss']:.4f} vs {champion['logloss']:.4f}"
    )
    if rule.max_ndcg_drop is not None:
        figures += f", NDCG@10 {_shown(challenger.get(NDCG))} vs {_shown(champion.get(NDCG))}"
    if auc_drop > rule.max_auc_drop:
        return False, f"{figures}: AUC lower by {auc_drop:.4f} > max_auc_drop {rule.max_auc_drop}"
    if logloss_rise > rule.max_logloss_rise:
        return False, (
            f"{figures}: logloss higher by {logloss_rise:.4f} > max_logloss_rise "
            f"{rule.max_logloss_rise}"
        )
    if rule.max_ndcg_drop is None:
        return True, f"{figures}: within max_auc_drop and max_logloss_rise"
    if challenger.get(NDCG) is None:  # a single-tower model serves no top-K
        return False, f"{figures}: the challenger has no top-K to hold to max_ndcg_drop"
    if champion.get(NDCG) is not None:
        ndcg_drop = champion[NDCG] - challenger[NDCG]
        if ndcg_drop > rule.max_ndcg_drop:
            return False, (
                f"{figures}: NDCG@10 lower by {ndcg_drop:.4f} > max_ndcg_drop {rule.max_ndcg_drop}"
            )
    return True, f"{figures}: within max_auc_drop, max_logloss_rise and max_ndcg_drop"


def _shown(value: float | None) -> str:
    return "none" if value is None else f"{value:.4f}"
