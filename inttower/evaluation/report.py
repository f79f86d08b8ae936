"""The evaluation stage: score the trained model on valid and test, beside no-model baselines."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from safetensors import safe_open
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from inttower.config import Params
from inttower.errors import StageInputError
from inttower.evaluation.calibration import Calibration
from inttower.evaluation.metrics import LOGLOSS_EPS, auc, binary_metrics, finite_or_none, logloss
from inttower.evaluation.plots import (
    write_calibration_csv,
    write_cold_warm_png,
    write_ranking_png,
    write_reliability_png,
    write_roc_csv,
    write_roc_png,
    write_training_curve_png,
)
from inttower.evaluation.ranking import RankingTables, ranking_metrics
from inttower.features.encoded import LABEL, EncodedSplit, load_fields, load_split, split_path
from inttower.features.point_in_time import dense_columns
from inttower.io import (
    Summary,
    known_fields,
    load_tensors,
    read_json,
    read_parquet_schema,
    write_json,
)
from inttower.models.mf import BiasedMF, IdsSplit, fit_ids_mf
from inttower.models.registry import build_model
from inttower.pipeline.paths import Paths
from inttower.training.batching import GROUP_KEY, DeviceSplit, predict_logits
from inttower.training.card import check_model_lineage
from inttower.training.device import reproducible, select_device

logger = logging.getLogger("inttower.evaluation")

LOGISTIC_MAX_ROWS = 2_000_000
COLD_KEY = "cold_user"
# what each baseline is, in charts and in benchmarks/quality.py's table
BASELINE_NAMES = {
    "item_pos_rate": "no model: item positive rate",
    "user_item_pos_rate_logits": "no model: user + item rate logits",
    "mean_ratings": "no model: user + item mean rating",
    "dense_logistic": "features alone: logistic regression on the dense features",
    "ids_mf": "ids alone: biased matrix factorisation",
}


@dataclass(frozen=True)
class Scores:
    """A model's (or a baseline's) scores on one set of events."""

    auc: float | None = None  # None: one class only, or a baseline that could not score
    logloss: float | None = None
    n: int = 0
    ece: float | None = None
    gauc: float | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Scores:
        return cls(**known_fields(cls, raw))


@dataclass(frozen=True)
class EvaluateSummary(Summary):
    """`reports/metrics.json` (the document, as `dvc metrics` reads it) and, typed, what the
    front ends and the champion rule read of it."""

    model: str
    protocol: str
    leaky: bool
    test: Scores
    valid: Scores
    test_warm: Scores | None
    test_cold: Scores | None
    uncalibrated_test: Scores
    baselines: dict[str, Scores]
    oracle: Scores | None  # synthetic data only: the generator's own probabilities
    ranking: dict[str, dict[str, float]] | None  # ranker -> "ndcg@10", "recall@10" … -> value
    metrics: dict[str, Any]  # the whole document, as written

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> EvaluateSummary:
        def block(name: str) -> Scores | None:
            return Scores.from_json(raw[name]) if raw.get(name) else None

        return cls(
            model=raw["model"],
            protocol=raw["protocol"],
            leaky=raw["leaky"],
            test=Scores.from_json(raw["test"]),
            valid=Scores.from_json(raw["valid"]),
            test_warm=block("test_warm"),
            test_cold=block("test_cold"),
            uncalibrated_test=Scores.from_json(raw["uncalibrated"]["test"]),
            baselines={
                name: Scores.from_json(scores)
                for name, scores in (raw.get("baselines") or {}).items()
            },
            oracle=block("oracle"),
            ranking=raw.get("ranking"),
            metrics=raw,
        )

    def to_json(self) -> dict[str, Any]:
        return self.metrics


def evaluate_model(params: Params, paths: Paths, ranking: bool = True) -> dict[str, Any]:
    """Score the trained model on valid/test (+ cold/warm users) beside no-model baselines; refuses
    a model whose card names other data or model params, so metrics describe current inputs.
    `ranking`: also the full-catalogue top-K (needs the catalogue and features tables; the stage
    always asks for it, unit tests on bare encoded tensors do not)."""
    check_model_lineage(params, paths)
    device = select_device(params.train.device)
    with reproducible(params, device):  # the kernels training validated with: same numbers
        model = build_model(load_fields(paths["encoded"]), params.model)
        model.load_state_dict(load_tensors(paths["model.weights"]))
        model.to(device)
        valid = load_split(paths["encoded"], "valid")
        valid_logits = _logits(model, valid, device)
        test = load_split(paths["encoded"], "test")
        test_logits = _logits(model, test, device)
    # what the model serves: its logits through the calibration fit on valid at training time
    calibration = Calibration.from_json(read_json(paths["model.calibration"]))
    valid_prob = calibration.probabilities(valid_logits)
    test_prob = calibration.probabilities(test_logits)
    raw_valid_prob, raw_test_prob = (
        Calibration().probabilities(z) for z in (valid_logits, test_logits)
    )
    bins = params.evaluate.calibration_bins
    cold = test.tensors[COLD_KEY].bool().numpy()
    test_labels = test.labels.numpy()
    test_users = test.tensors[GROUP_KEY].numpy()

    baseline_labels, baseline_probabilities = baseline_scores(paths)
    baselines = baseline_metrics(baseline_labels, baseline_probabilities)
    mf, mf_probability = ids_mf_probabilities(params, paths, valid, test)
    baselines["ids_mf"] = _scored(test_labels, mf_probability)
    oracle, oracle_warm, oracle_cold = oracle_metrics(params, paths)
    model.to("cpu")  # the item cache and the bundle are built on the CPU
    tables = RankingTables.read(paths) if ranking else None
    ranked = {
        split: ranking_metrics(params, tables, model, mf, split, calibration=calibration)
        if tables
        else None
        for split in ("test", "valid")
    }
    metrics: dict[str, Any] = {
        "test": binary_metrics(test_labels, test_prob, test_users, bins),
        # what is served: full-catalogue top-K, beside popularity and the ids-only MF
        "ranking": ranked["test"].metrics if ranked["test"] else None,
        "valid": binary_metrics(valid.labels, valid_prob, valid.tensors[GROUP_KEY], bins),
        "baselines": baselines,
        "test_cold": {
            **binary_metrics(test_labels[cold], test_prob[cold], test_users[cold], bins),
            "ids_mf": _scored(test_labels[cold], mf_probability[cold]),
        },
        "test_warm": {
            **binary_metrics(test_labels[~cold], test_prob[~cold], test_users[~cold], bins),
            "ids_mf": _scored(test_labels[~cold], mf_probability[~cold]),
        },
        "uncalibrated": {
            "test": binary_metrics(test_labels, raw_test_prob, test_users, bins),
            "valid": binary_metrics(valid.labels, raw_valid_prob, valid.tensors[GROUP_KEY], bins),
        },
        "ranking_valid": ranked["valid"].metrics if ranked["valid"] else None,
        "ranking_users": {
            split: {"users": result.users, "catalogue": result.catalogue}
            for split, result in ranked.items()
            if result is not None
        },
        "calibration": calibration.to_json(),
        "oracle": oracle,
        "oracle_warm": oracle_warm,
        "oracle_cold": oracle_cold,
        "model": params.model.name,
        "as_of": params.data.as_of,
        "protocol": params.split.protocol,
        "leaky": params.split.leaky,
    }
    write_roc_csv(test_labels, test_prob, paths["curves.roc"])
    write_calibration_csv(test_labels, test_prob, paths["curves.calibration"], bins)
    write_reliability_png(test_labels, test_prob, raw_test_prob, paths["plots.reliability"], bins)
    curves = [(params.model.name, test_labels, test_prob, metrics["test"]["auc"])]
    for name in ("user_item_pos_rate_logits", "dense_logistic"):
        curves.append(
            (
                BASELINE_NAMES[name],
                baseline_labels,
                baseline_probabilities[name],
                baselines[name]["auc"],
            )
        )
    curves.append(
        (BASELINE_NAMES["ids_mf"], test_labels, mf_probability, baselines["ids_mf"]["auc"])
    )
    write_roc_png(curves, paths["plots.roc"])
    write_cold_warm_png(metrics, paths["plots.cold_warm"])
    write_ranking_png(ranked["test"].ndcg_curve if ranked["test"] else {}, paths["plots.ranking"])
    write_training_curve_png(
        read_json(paths["model.card"])["history"], paths["plots.training_curve"]
    )
    # last: metrics.json present means the stage finished. In the order written, so `dvc exp
    # show` and `dvc metrics diff` lead with test and valid AUC, logloss, GAUC and ECE.
    write_json(metrics, paths["metrics"], sort_keys=False)
    logger.info(
        "test auc=%s logloss=%s (uncalibrated %s) ece=%s (uncalibrated %s) gauc=%s "
        "(cold %s, warm %s)",
        metrics["test"]["auc"],
        metrics["test"]["logloss"],
        metrics["uncalibrated"]["test"]["logloss"],
        metrics["test"]["ece"],
        metrics["uncalibrated"]["test"]["ece"],
        metrics["test"]["gauc"],
        metrics["test_cold"]["auc"],
        metrics["test_warm"]["auc"],
    )
    return metrics


ScoreDict = dict[str, float | int | None]


def _scored(labels: np.ndarray, probability: np.ndarray) -> ScoreDict:
    return {
        "auc": finite_or_none(auc(labels, probability)),
        "logloss": finite_or_none(logloss(labels, probability)),
        "n": len(labels),
    }


def ids_mf_probabilities(
    params: Params, paths: Paths, valid: EncodedSplit, test: EncodedSplit
) -> tuple[BiasedMF, np.ndarray]:
    """The ids-only MF (inttower.models.mf), fit on train and early-stopped on valid, and its
    probabilities on the test rows in their encoded order."""
    with safe_open(str(split_path(paths["encoded"], "train")), framework="pt") as handle:
        train = IdsSplit(*(handle.get_tensor(name) for name in ("user_id", "item_id", LABEL)))
    sizes = {field.name: field.vocab_size for field in valid.fields}

    def ids(split: EncodedSplit) -> IdsSplit:
        return IdsSplit(split.tensors["user_id"], split.tensors["item_id"], split.labels)

    model = fit_ids_mf(train, ids(valid), sizes["user_id"], sizes["item_id"], params.seed)
    logits = model.logits(test.tensors["user_id"], test.tensors["item_id"])
    return model, Calibration().probabilities(logits)  # the identity: the plain sigmoid


def oracle_metrics(
    params: Params, paths: Paths
) -> tuple[ScoreDict | None, ScoreDict | None, ScoreDict | None]:
    """The generator's own P(label | event) on the test events, when the data is synthetic: the
    ceiling no model can pass (None for real data, whose truth nobody knows); overall, then on
    warm and cold users (seen in train or not)."""
    from inttower.data.synthetic import oracle_probabilities

    oracle_file = paths["ingested.oracle"]
    read_parquet_schema(oracle_file)  # a missing or corrupt file: its one-line error
    if _parquet_rows(oracle_file) == 0:  # real data: nobody knows the truth
        return None, None, None
    keys = ["user_id", "item_id", "timestamp"]
    events = pl.scan_parquet(paths["features.events"])
    train_users = events.filter(pl.col("split") == "train").select("user_id").unique()
    test = (
        events.filter(pl.col("split") == "test")
        .select(*keys, "label")
        .join(train_users.with_columns(warm=pl.lit(True)), on="user_id", how="left")
        .with_columns(pl.col("warm").fill_null(False))
        .collect()
    )
    # only the test events' oracle rows are ever read into memory: the semi join streams the
    # whole table (25M rows × 9 columns at 25M events) past a hash of the test keys
    oracle = (
        pl.scan_parquet(oracle_file)
        .join(test.lazy().select(keys), on=keys, how="semi")
        .collect(engine="streaming")
    )
    joined = test.join(oracle, on=keys, how="left", maintain_order="left")
    missing = joined["score_mean"].null_count()
    if missing:
        raise StageInputError(
            f"{paths['ingested.oracle']}: {missing} test events have no oracle row; "
            "rerun `inttower ingest`"
        )
    probability = oracle_probabilities(
        joined, params.label.drop_ratings, params.label.positive_threshold
    )
    labels = joined["label"].to_numpy().astype(np.float64)
    warm = joined["warm"].to_numpy()
    return (
        _scored(labels, probability),
        _scored(labels[warm], probability[warm]),
        _scored(labels[~warm], probability[~warm]),
    )


def _parquet_rows(path: Path) -> int:
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())


def baseline_metrics(
    labels: np.ndarray, scores: dict[str, np.ndarray]
) -> dict[str, dict[str, float | int | None]]:
    """The baselines' AUC and logloss on the test rows (`baseline_scores`); the mean ratings
    are a ranking, not a probability: AUC only."""
    baselines: dict[str, dict[str, float | int | None]] = {
        name: _scored(labels, probability)
        for name, probability in scores.items()
        if name != "mean_ratings"
    }
    baselines["mean_ratings"] = {
        "auc": finite_or_none(auc(labels, scores["mean_ratings"])),
        "logloss": None,
        "n": len(labels),
    }
    return baselines


def baseline_scores(paths: Paths) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """No-model baselines on the test rows of the features table: the item's smoothed positive
    rate; the user's and item's rates combined additively in logit space, less the train prior's
    logit (each rate carries it once); the sum of the user's
    and item's mean ratings (a ranking, not a probability: AUC only); and a logistic regression
    fit on train over every dense feature the models get — what the features are worth without
    any embedding or tower. Under the `paper` protocol the statistics are computed on each
    split's own labels, so the mean ratings measure how much the leak alone is worth."""
    events = paths["features.events"]
    if not events.exists():
        raise StageInputError(f"{events} not found: run the `features` stage first")
    dense = dense_columns(list(read_parquet_schema(events)))
    table = pl.scan_parquet(events).select("split", "label", *dense)
    test = table.filter(pl.col("split") == "test").collect()
    labels = test["label"].to_numpy().astype(np.float64)
    item_rate = test["item_pos_rate"].to_numpy().astype(np.float64)
    user_rate = test["user_pos_rate"].to_numpy().astype(np.float64)
    # user and item rates each carry the base rate: add their logits, take the prior out once
    prior = float(read_json(paths["features.priors"])["positive_rate"])
    prior_logit = float(_logit(np.array([prior]))[0])
    combined = 1.0 / (1.0 + np.exp(-(_logit(user_rate) + _logit(item_rate) - prior_logit)))
    mean_ratings = (test["user_mean_rating"] + test["item_mean_rating"]).to_numpy()
    # At most LOGISTIC_MAX_ROWS train rows, an even stride (no sampling seed needed), taken
    # before collecting: the fit stays at seconds and the memory small at 25M events.
    train = table.filter(pl.col("split") == "train")
    n_train = train.select(pl.len()).collect().item()
    train = train.gather_every(max(1, -(-n_train // LOGISTIC_MAX_ROWS))).collect()
    for name, rows in (("test", test), ("train", train)):
        for column in dense:
            if rows[column].null_count():
                raise StageInputError(f"{events}: column {column} has nulls in {name} rows")
    return labels, {
        "item_pos_rate": item_rate,
        "user_item_pos_rate_logits": combined,
        "dense_logistic": _dense_logistic(train, test, dense),
        "mean_ratings": mean_ratings.astype(np.float64),
    }


def _dense_logistic(train: pl.DataFrame, test: pl.DataFrame, columns: list[str]) -> np.ndarray:
    # Counts are heavy-tailed: log1p, as the encoders do.
    def matrix(frame: pl.DataFrame) -> np.ndarray:
        values = frame.select(columns).to_numpy().astype(np.float64)
        counts = [index for index, name in enumerate(columns) if name.endswith("_count")]
        values[:, counts] = np.log1p(values[:, counts])
        return values

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(matrix(train), train["label"].to_numpy())
    return model.predict_proba(matrix(test))[:, 1]


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
    return np.log(clipped) - np.log1p(-clipped)


def _logits(model: torch.nn.Module, split: EncodedSplit, device: torch.device) -> np.ndarray:
    return predict_logits(model, DeviceSplit(split, device)).numpy()
