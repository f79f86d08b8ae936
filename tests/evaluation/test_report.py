from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from inttower.errors import StageInputError
from inttower.evaluation import report
from inttower.evaluation.metrics import auc
from inttower.features.encoded import load_fields, load_split
from inttower.io import load_tensors
from inttower.models.registry import build_model
from inttower.pipeline.paths import Paths
from inttower.training.train import train_model
from tests.training.helpers import tiny_params, write_tiny_project

BLOCK_KEYS = {"auc", "logloss", "gauc", "ece", "n"}
# the tiny project is encoded tensors without a catalogue: its ranking metrics are tested on the
# real ml-100k (tests/serving/test_bundle.py)
evaluate_model = functools.partial(report.evaluate_model, ranking=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    paths = write_tiny_project(tmp_path_factory.mktemp("project"))
    train_model(tiny_params(), paths, progress=False)
    return paths


def test_evaluate_writes_the_metrics_contract(trained: Paths) -> None:
    returned = evaluate_model(tiny_params(), trained)
    written = json.loads(trained["metrics"].read_text())
    assert written == returned
    for block in ("test", "valid"):
        assert set(written[block]) == BLOCK_KEYS, block
    for block in ("test_cold", "test_warm"):  # with the ids-only MF on the same users
        assert set(written[block]) == BLOCK_KEYS | {"ids_mf"}, block
        assert written[block]["ids_mf"]["n"] == written[block]["n"]
    assert isinstance(written["test"]["auc"], float)
    assert isinstance(written["test"]["logloss"], float)
    assert written["test"]["n"] == len(load_split(trained["encoded"], "test"))
    assert written["test_cold"]["n"] + written["test_warm"]["n"] == written["test"]["n"]
    assert written["test_cold"]["n"] > 0 and written["test_warm"]["n"] > 0
    assert set(written["baselines"]) == {
        "item_pos_rate",
        "user_item_pos_rate_logits",
        "mean_ratings",
        "dense_logistic",
        "ids_mf",
    }
    assert written["baselines"]["ids_mf"]["n"] == written["test"]["n"]
    assert written["oracle"] is written["oracle_warm"] is written["oracle_cold"] is None  # real
    for baseline in written["baselines"].values():
        assert {"auc", "logloss"} <= set(baseline)
    assert written["baselines"]["mean_ratings"]["logloss"] is None  # a ranking, not a probability
    assert written["model"] == "inttower"
    assert written["protocol"] == "temporal" and written["leaky"] is False


def test_valid_metrics_agree_with_the_training_run(trained: Paths) -> None:
    metrics = evaluate_model(tiny_params(), trained)
    card = json.loads(trained["model.card"].read_text())
    raw = metrics["uncalibrated"]["valid"]  # training validated the raw logits
    assert raw["auc"] == pytest.approx(card["valid"]["auc"], abs=1e-12)
    assert raw["logloss"] == pytest.approx(card["valid"]["logloss"], abs=1e-12)
    assert metrics["valid"]["auc"] == pytest.approx(raw["auc"], abs=1e-12)  # order kept
    assert metrics["valid"]["logloss"] <= raw["logloss"] + 1e-12  # fit there: never worse


def test_a_bf16_trained_model_is_evaluated_in_fp32(tmp_path: Path) -> None:
    """Trained under bf16 autocast, scored in fp32: the test AUC is that of a plain fp32 pass."""
    paths = write_tiny_project(tmp_path)
    params = tiny_params(**{"train.precision": "bf16"})
    train_model(params, paths, progress=False)
    metrics = evaluate_model(params, paths)
    model = build_model(load_fields(paths["encoded"]), params.model)
    model.load_state_dict(load_tensors(paths["model.weights"]))
    model.eval()
    test = load_split(paths["encoded"], "test")
    with torch.no_grad():
        fp32 = model(test.inputs()).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(test.inputs()).logits.float()
    assert fp32.dtype == torch.float32 and not torch.equal(fp32, bf16)
    assert metrics["test"]["auc"] == pytest.approx(auc(test.labels, fp32), abs=1e-12)


def test_baselines_score_the_features_tables_test_rows(trained: Paths) -> None:
    metrics = evaluate_model(tiny_params(), trained)
    events = pl.read_parquet(trained["features.events"]).filter(pl.col("split") == "test")
    expected = auc(events["label"].to_numpy(), events["item_pos_rate"].to_numpy())
    assert metrics["baselines"]["item_pos_rate"]["auc"] == pytest.approx(expected)
    assert metrics["baselines"]["item_pos_rate"]["n"] == events.height
    mean_ratings = events["user_mean_rating"] + events["item_mean_rating"]
    expected = auc(events["label"].to_numpy(), mean_ratings.to_numpy())
    assert metrics["baselines"]["mean_ratings"]["auc"] == pytest.approx(expected)
    # fit on train over every dense feature: the user rate there carries both biases
    linear = metrics["baselines"]["dense_logistic"]
    assert linear["n"] == events.height
    assert linear["auc"] > metrics["baselines"]["item_pos_rate"]["auc"] + 0.01


def test_the_rate_logit_baseline_counts_the_prior_once(trained: Paths) -> None:
    """σ(logit u + logit i − logit prior): each smoothed rate carries the base rate once."""
    metrics = evaluate_model(tiny_params(), trained)
    events = pl.read_parquet(trained["features.events"]).filter(pl.col("split") == "test")
    prior = json.loads(trained["features.priors"].read_text())["positive_rate"]

    def logit(p: np.ndarray) -> np.ndarray:
        return np.log(p) - np.log1p(-p)

    user, item = (
        events[name].to_numpy().astype(np.float64) for name in ("user_pos_rate", "item_pos_rate")
    )
    probability = 1 / (1 + np.exp(-(logit(user) + logit(item) - logit(np.array(prior)))))
    labels = events["label"].to_numpy().astype(np.float64)
    expected = -np.mean(labels * np.log(probability) + (1 - labels) * np.log1p(-probability))
    assert metrics["baselines"]["user_item_pos_rate_logits"]["logloss"] == pytest.approx(expected)


def test_charts_and_their_curves_are_written(trained: Paths) -> None:
    evaluate_model(tiny_params(), trained)
    for name in ("plots.training_curve", "plots.roc", "plots.reliability", "plots.cold_warm"):
        png = trained[name].read_bytes()
        assert png.startswith(b"\x89PNG\r\n") and len(png) > 5000, name
    first = {name: trained[name].read_bytes() for name in ("plots.roc", "plots.cold_warm")}
    evaluate_model(tiny_params(), trained)
    assert first == {name: trained[name].read_bytes() for name in first}  # stable bytes
    roc = pl.read_csv(trained["curves.roc"])
    assert roc.columns == ["fpr", "tpr"] and roc.height <= 500
    calibration = pl.read_csv(trained["curves.calibration"])
    assert calibration.columns == ["bin", "mean_predicted", "fraction_positive", "count"]
    assert calibration["count"].sum() == len(load_split(trained["encoded"], "test"))
    assert calibration["mean_predicted"].is_between(0, 1).all()


def test_the_paper_protocol_is_labelled_leaky(trained: Paths) -> None:
    metrics = evaluate_model(tiny_params(**{"split.protocol": "paper"}), trained)
    assert metrics["protocol"] == "paper" and metrics["leaky"] is True


def test_a_model_trained_with_other_model_params_is_refused(trained: Paths) -> None:
    with pytest.raises(StageInputError, match="train"):
        evaluate_model(tiny_params(**{"model.dropout": 0.2}), trained)


def test_a_model_trained_on_other_data_is_refused(tmp_path: Path) -> None:
    paths = write_tiny_project(tmp_path)
    train_model(tiny_params(**{"train.epochs": 1}), paths, progress=False)
    write_tiny_project(tmp_path, seed=1)  # re-encode: the model no longer matches its inputs
    with pytest.raises(StageInputError, match="other encoded data"):
        evaluate_model(tiny_params(**{"train.epochs": 1}), paths)


def test_evaluating_before_training_names_the_missing_stage(tmp_path: Path) -> None:
    with pytest.raises(StageInputError, match="train"):
        evaluate_model(tiny_params(), write_tiny_project(tmp_path))
