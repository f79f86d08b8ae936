"""The champion: the model in use, kept as a bundle beside the data, and the retrain decision
that may put a challenger in its place (MLflow's registry alias, TFX's blessing).

- `lineage` is what a model is made of: the data fingerprint, the code of every stage and the
  params of the model lineage. A retrain whose lineage equals the champion's (or the last
  rejected challenger's) would rebuild the same model, so it trains nothing and says why.
- `score_bundle` scores a bundle (its own encoders, weights and calibration) on the current
  test window: the champion and the challenger meet on the same, freshest events.
- The registry is `data/registry/champion/` (the bundle), `reports/champion.json` (the record
  `inttower champion` prints), `reports/champion_history.jsonl` (every promotion and restore)
  and `reports/promotion.json` (the last decision, both sets of scores and the reason).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from inttower.config import Params, parse_params
from inttower.errors import ConfigError, InttowerError
from inttower.evaluation.report import EvaluateSummary
from inttower.io import append_jsonl, read_json, write_json
from inttower.lifecycle.promotion import NDCG, compare, describe_checks, quality_checks
from inttower.lifecycle.records import Challenger, ChampionRecord, Decision
from inttower.pipeline.catalog import CHAMPION_BUNDLE
from inttower.pipeline.paths import Paths, mirror_dir
from inttower.pipeline.stages.encode import EncodeSummary

# What a model is made of: every params section but the schedule, the checks and the promotion
# rule (they decide about a model; they do not change it).
MODEL_LINEAGE_KEYS = (
    "seed",
    "data",
    "label",
    "split",
    "features",
    "encoders",
    "model",
    "train",
    "evaluate",
)


def lineage(params: Params, paths: Paths) -> dict[str, str]:
    """Digests of the data (the source fingerprint, computed now), the code of every stage and
    the model-lineage params: equal lineages build the same model, byte for byte."""
    from inttower.data.fingerprint import source_fingerprint
    from inttower.pipeline.registry import code_digest

    fingerprint = source_fingerprint(params, mirror_dir(), paths.downloads)
    data = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "data": data,
        "code": code_digest()[:16],
        "params": params.fingerprint(list(MODEL_LINEAGE_KEYS)),
    }


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_sources(paths: Paths) -> dict[str, Path]:
    """The files of the model just trained that make a bundle, by bundle file name."""
    return {name: paths[artifact] for name, artifact in CHAMPION_BUNDLE.items()}


def model_id(weights: Path) -> str:
    """A model's id: its weights' md5, shortened (content-addressed: the same model, the same id)."""
    return "model-" + _md5(weights)[:12]


def champion_record(paths: Paths) -> ChampionRecord | None:
    """The current champion's record, or None when no model was ever promoted."""
    target = paths.champion_record
    return ChampionRecord.from_json(read_json(target)) if target.exists() else None


def history(paths: Paths) -> list[ChampionRecord]:
    """Every promotion and restore, oldest first."""
    target = paths.champion_history
    if not target.exists():
        return []
    lines = [line for line in target.read_text().splitlines() if line.strip()]
    return [ChampionRecord.from_json(json.loads(line)) for line in lines]


def last_decision(paths: Paths) -> Decision | None:
    target = paths.promotion
    return Decision.from_json(read_json(target)) if target.exists() else None


def why_nothing_to_do(params: Params, paths: Paths, current: dict[str, str]) -> str | None:
    """The reason to skip a retrain (nothing the model is made of changed), or None."""
    champion = champion_record(paths)
    if champion is not None and champion.lineage == current:
        return (
            f"data, code and params equal those of champion {champion.id} "
            f"(promoted {champion.promoted_at}): a retrain would rebuild the same model"
        )
    decision = last_decision(paths)
    if (
        decision is not None
        and not decision.promoted
        and decision.challenger.lineage == current
        and decision.rule == decision_rule(params)
    ):
        return (
            f"data, code and params equal those of challenger {decision.challenger.id}, not "
            f"promoted {decision.decided_at} ({decision.reason})"
        )
    return None


def decision_rule(params: Params) -> str:
    """The checks and the promotion rule: a rejected model is judged again when they change."""
    return params.fingerprint(["checks", "promotion"])


def _trained_params(card: dict[str, Any], where: Path) -> Params:
    try:
        return parse_params(card["params"])
    except (ConfigError, KeyError) as exc:
        raise InttowerError(f"{where}: its params no longer load ({exc})") from None


def score_bundle(bundle: Path, params: Params, paths: Paths, top_k: bool = False) -> dict[str, Any]:
    """AUC and logloss of a bundle on the current test events, with its own encoders, weights and
    calibration (and with `top_k`, its full-catalogue NDCG@10 on the same window). Features are
    point-in-time, so they are well defined for any model; when the bundle was built with other
    feature params, its features are computed again with them."""
    import polars as pl

    from inttower.io import read_parquet
    from inttower.pipeline.stages.features import compute_features

    files = {name: bundle / name for name in CHAMPION_BUNDLE}
    trained = bundle_params(files)
    same_features = (trained.features, trained.split.protocol) == (
        params.features,
        params.split.protocol,
    )
    if same_features:
        events = read_parquet(paths["features.events"])
        users = read_parquet(paths["features.users"])
        items = read_parquet(paths["features.items"])
    else:
        events, _, users, items = compute_features(trained.features, params.split, paths)
    train_users = events.filter(pl.col("split") == "train")["user_id"].unique()
    test = events.filter(pl.col("split") == "test")
    scores = score_events(files, test, users, items, train_users)
    if top_k:
        scores[NDCG] = _bundle_ndcg(files, trained, users, items, paths)
    return scores


def _bundle_ndcg(
    files: dict[str, Path], trained: Params, users: Any, items: Any, paths: Paths
) -> float | None:
    """A bundle's full-catalogue NDCG@10 on the test window, through the evaluation's own ranking
    (None for a single-tower model: it serves no top-K)."""
    import dataclasses

    import torch

    from inttower.evaluation.calibration import Calibration
    from inttower.evaluation.ranking import RankingTables, ranking_metrics
    from inttower.features.encoders import Encoders
    from inttower.io import load_tensors
    from inttower.models.registry import build_model
    from inttower.training.device import reproducible

    fitted = Encoders.load(files["encoders.json"])
    tables = dataclasses.replace(
        RankingTables.read(paths), users=users, items=items, encoders=fitted
    )
    evaluate = trained.evaluate.model_copy(update={"ranking_k": [10]})
    at_ten = trained.model_copy(update={"evaluate": evaluate})
    with reproducible(trained, torch.device("cpu")):
        model = build_model(fitted.fields(), trained.model)
        model.load_state_dict(load_tensors(files["model.safetensors"]))
        calibration = Calibration.from_json(read_json(files["calibration.json"]))
        result = ranking_metrics(at_ten, tables, model, None, "test", calibration=calibration)
    return None if result is None else result.metrics["model"][NDCG]


def bundle_params(files: dict[str, Path]) -> Params:
    """The params a bundle's model was trained with, from its card."""
    card_path = files["model_card.json"]
    return _trained_params(read_json(card_path), card_path)


def score_events(
    files: dict[str, Path],
    events: Any,
    users: Any,
    items: Any,
    train_users: Any,
) -> dict[str, Any]:
    """AUC and logloss (fp32, calibrated) of a bundle's model on featured `events`."""
    import torch

    from inttower.evaluation.calibration import Calibration
    from inttower.evaluation.metrics import binary_metrics
    from inttower.features.encoded import EncodedSplit
    from inttower.features.encoders import Encoders, encode_events
    from inttower.io import load_tensors
    from inttower.models.registry import build_model
    from inttower.training.batching import DeviceSplit, predict_logits
    from inttower.training.device import reproducible

    trained = bundle_params(files)
    fitted = Encoders.load(files["encoders.json"])
    split = EncodedSplit(fitted.fields(), encode_events(events, users, items, fitted, train_users))
    device = torch.device("cpu")
    with reproducible(trained, device):
        model = build_model(fitted.fields(), trained.model)
        model.load_state_dict(load_tensors(files["model.safetensors"]))
        logits = predict_logits(model, DeviceSplit(split, device)).numpy()
    calibration = Calibration.from_json(read_json(files["calibration.json"]))
    scores = binary_metrics(split.labels.numpy(), calibration.probabilities(logits))
    return {"auc": scores["auc"], "logloss": scores["logloss"], "n": len(split)}


def _copy_bundle(sources: dict[str, Path], target: Path, staging: Path) -> dict[str, str]:
    """Copy the bundle files into `target` as one rename (a half-copied champion never exists)."""
    staging.mkdir(parents=True, exist_ok=True)
    fresh = staging / f".{target.name}.incoming"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    for name, source in sources.items():
        (fresh / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, fresh / name)
    old = staging / f".{target.name}.outgoing"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return {name: _md5(target / name) for name in sources}


def promote(
    paths: Paths,
    model: ChampionRecord | Challenger,
    sources: dict[str, Path],
    event: Literal["promoted", "restored"] = "promoted",
) -> ChampionRecord:
    """Make `model` the champion: bundle, record, one history line."""
    artifacts = _copy_bundle(sources, paths.champion_bundle, paths.staging)
    record = ChampionRecord(
        id=model.id,
        lineage=model.lineage,
        promoted_at=now(),
        experiment=model.experiment,
        model=model.model,
        as_of=model.as_of,
        metrics=model.metrics,
        event=event,
        bundle=str(paths.champion_bundle),
        artifacts=artifacts,
    )
    write_json(record.to_json(), paths.champion_record)
    append_jsonl(record.to_json(), paths.champion_history)
    return record


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def decide(
    params: Params,
    paths: Paths,
    current: dict[str, str],
    experiment: str | None,
) -> Decision:
    """After a retrain's stages: the blocking checks, then challenger vs champion on the same
    test window; promotes when both allow it. Writes `reports/promotion.json` either way."""
    evaluation = EvaluateSummary.from_json(read_json(paths["metrics"]))
    encoded = EncodeSummary.from_json(read_json(paths["encode.summary"]))
    checks = quality_checks(evaluation, params.checks)
    unknown = encoded.splits["test"].unknown_share.get("item_id", 0.0)
    checks.append(
        {
            "check": "max_unknown_item_share",
            "value": unknown,
            "bar": params.checks.max_unknown_item_share,
            "passed": unknown <= params.checks.max_unknown_item_share,
        }
    )
    sources = bundle_sources(paths)
    metrics = evaluation.metrics
    scores = {"auc": evaluation.test.auc, "logloss": evaluation.test.logloss}
    top_k = params.promotion.max_ndcg_drop is not None
    if top_k:
        scores[NDCG] = ((evaluation.ranking or {}).get("model") or {}).get(NDCG)
    challenger = Challenger(
        id=model_id(sources["model.safetensors"]),
        experiment=experiment,
        model=params.model.name,
        as_of=params.data.as_of,
        lineage=current,
        metrics={"test": metrics["test"], "valid": metrics["valid"]},
        test=scores,
        checks=checks,
    )
    champion = champion_record(paths)
    champion_scores = None
    if champion is not None:
        champion_scores = score_bundle(paths.champion_bundle, params, paths, top_k)
    failed = [check["check"] for check in checks if not check["passed"]]
    if failed:
        promoted = False
        reason = f"blocking checks failed: {', '.join(failed)} ({describe_checks(checks[:3])})"
    else:
        promoted, reason = compare(challenger.test, champion_scores, params.promotion)
    decision = Decision(
        decided_at=now(),
        decision="promoted" if promoted else "kept",
        reason=reason,
        rule=decision_rule(params),
        experiment=experiment,
        challenger=challenger,
        champion=None
        if champion is None
        else {"id": champion.id, "experiment": champion.experiment, "test": champion_scores},
        test_window={"as_of": params.data.as_of, "events": evaluation.test.n},
    )
    if promoted:
        promote(paths, challenger, sources)
    write_json(decision.to_json(), paths.promotion)
    return decision


def restore_bundle(paths: Paths, record: ChampionRecord) -> ChampionRecord:
    """Re-register the model now in the workspace (a past champion just brought back) as the
    champion; refuses unless its files are byte-identical to those the record names."""
    sources = bundle_sources(paths)
    found = {name: _md5(path) for name, path in sources.items() if path.exists()}
    expected = record.artifacts
    differ = sorted(name for name in expected if found.get(name) != expected[name])
    if differ:
        raise InttowerError(
            f"the restored files differ from champion {record.id}'s: {', '.join(differ)}"
        )
    return promote(paths, record, sources, event="restored")
