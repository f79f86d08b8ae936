"""The serving bundle on real ml-100k: ONNX parity with PyTorch, top-k against a brute-force
ranking by the full model, seen items excluded, a fresh process with only the bundle folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from inttower.config import Params, load_params
from inttower.errors import ArtifactError, ConfigError, InttowerError
from inttower.features.encoded import load_fields
from inttower.features.encoders import Encoders
from inttower.io import load_tensors, read_parquet
from inttower.models.item_cache import ItemCache
from inttower.models.registry import build_model
from inttower.pipeline.paths import Paths
from inttower.pipeline.registry import STAGES, run_stage, stage_names
from inttower.serving.features import ITEM_KEY, USER_KEY, latest_features
from inttower.serving.scorer import Scorer
from tests.helpers import ROOT, SMALL_TOWERS


def _params(**extra: object) -> Params:
    return load_params(ROOT / "params.yaml", {**SMALL_TOWERS, **extra})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, movielens_mirror: Path) -> Paths:
    paths = Paths.for_data(tmp_path_factory.mktemp("serving") / "data")
    params = _params()
    for name in stage_names():
        run_stage(STAGES[name], params, paths, "test")
    return paths


@pytest.fixture(scope="module")
def scorer(project: Paths) -> Scorer:
    return Scorer.load(project["serving"])


def _model(paths: Paths) -> torch.nn.Module:
    model = build_model(load_fields(paths["encoded"]), _params().model)
    model.load_state_dict(load_tensors(paths["model.weights"]))
    return model.eval()


def _latest(paths: Paths):
    return latest_features(
        read_parquet(paths["split.events"]),
        read_parquet(paths["features.users"]),
        read_parquet(paths["features.items"]),
        read_parquet(paths["validated.items"]).sort("item_id"),
        Encoders.load(paths["encoders"]),
        _params().features,
    )


def test_onnx_runtime_scores_equal_pytorch_on_1k_candidates(project: Paths, scorer: Scorer) -> None:
    model, latest = _model(project), _latest(project)
    users = {k: v[:8] for k, v in latest.users.items() if k != USER_KEY}
    items = {k: v[:1000] for k, v in latest.items.items() if k != ITEM_KEY}
    reference = ItemCache.build(model, items).score(users).numpy()
    served = scorer.logits({k: v.numpy() for k, v in users.items()}, np.arange(1000))
    assert served.shape == (8, 1000)
    assert np.abs(served - reference).max() < 1e-5


def _expected_positives(project: Paths, logits: np.ndarray, item_ids: list[int]) -> np.ndarray:
    """The served score, computed here from its definition: log(1 + the item's ratings in the 30
    days before the features' moment) + log σ(calibrated logit)."""
    until = int(read_parquet(project["split.events"])["timestamp"].max()) + 1
    recent = (
        read_parquet(project["validated.interactions"])
        .filter(pl.col("timestamp").is_between(until - 30 * 86_400, until, closed="left"))
        .group_by("item_id")
        .len("ratings")
    )
    counts = dict(recent.iter_rows())
    ratings = np.array([counts.get(item, 0) for item in item_ids], dtype=np.float64)
    calibration = json.loads(project["model.calibration"].read_text())
    z = calibration["scale"] * logits.astype(np.float64) + calibration["bias"]
    return np.log1p(ratings) + np.log(1.0 / (1.0 + np.exp(-z)))


def test_top_k_matches_a_brute_force_ranking_by_the_full_model(
    project: Paths, scorer: Scorer
) -> None:
    model, latest = _model(project), _latest(project)
    row = 5
    user_id = int(latest.users[USER_KEY][row])
    n_items = len(scorer)
    # every (user, item) pair through the model's own forward: no cache, no ONNX
    pairs = {k: v[row : row + 1].expand(n_items, *v.shape[1:]) for k, v in latest.users.items()}
    pairs.update(latest.items)
    with torch.no_grad():
        logits = model({spec.name: pairs[spec.name] for spec in model_fields(project)}).logits
    item_ids = latest.items[ITEM_KEY].tolist()
    expected = _expected_positives(project, logits.numpy(), item_ids)
    seen = set(
        read_parquet(project["validated.interactions"])
        .filter(pl.col("user_id") == user_id)["item_id"]
        .to_list()
    )
    assert seen, "the chosen user has interactions"
    ranked = sorted(
        (-float(score), int(item))
        for item, score in zip(item_ids, expected.tolist(), strict=True)
        if item not in seen
    )
    top = scorer.top_k(user_id=user_id, k=20)
    assert scorer.rank_by == "expected_positives"
    assert [item.item_id for item in top] == [item for _, item in ranked[:20]]
    assert [item.score for item in top] == pytest.approx([-score for score, _ in ranked[:20]])
    assert not {item.item_id for item in top} & seen
    assert [item.rank for item in top] == list(range(1, 21))
    assert all(0.0 < item.probability < 1.0 for item in top)
    # the served score is not the probability: a popular item outranks a better-liked rare one
    probabilities = [item.probability for item in top]
    assert probabilities != sorted(probabilities, reverse=True)
    with_seen = scorer.top_k(user_id=user_id, k=n_items, exclude_seen=False)
    assert {item.item_id for item in with_seen} >= seen
    # a candidate set: ranked within itself, seen ones still left out; none: nothing
    pool = [item for _, item in ranked[5:25]] + sorted(seen)[:5]
    ranked_pool = scorer.top_k(user_id=user_id, k=10, candidates=pool)
    assert [item.item_id for item in ranked_pool] == [item for _, item in ranked[5:15]]
    assert scorer.top_k(user_id=user_id, k=10, candidates=[]) == []
    with pytest.raises(InttowerError, match="item 99999999 is not in the bundle"):
        scorer.top_k(user_id=user_id, k=3, candidates=[99999999])


def test_ranked_by_probability_the_top_k_follows_the_logit(project: Paths, tmp_path: Path) -> None:
    paths = Paths.for_data(tmp_path / "data")
    shutil.copytree(project.data, paths.data)
    run_stage(STAGES["export"], _params(**{"serving.rank_by": "probability"}), paths, "test")
    scorer = Scorer.load(paths["serving"])
    assert scorer.rank_by == "probability" and scorer.item_prior is None
    user_id = int(scorer.user_ids[5])
    top = scorer.top_k(user_id=user_id, k=20)
    assert [item.score for item in top] == [item.logit for item in top]
    probabilities = [item.probability for item in top]
    assert probabilities == sorted(probabilities, reverse=True)


def model_fields(paths: Paths):
    return load_fields(paths["encoded"])


def test_the_bundle_loads_in_a_fresh_process_with_only_its_folder(
    project: Paths, scorer: Scorer, tmp_path: Path
) -> None:
    alone = tmp_path / "bundle"
    shutil.copytree(project["serving"], alone)
    user_id = int(scorer.user_ids[3])
    script = (
        "import json, sys\n"
        "from inttower.serving.scorer import Scorer\n"
        f"top = Scorer.load({str(alone)!r}).top_k(user_id={user_id}, k=10)\n"
        "print(json.dumps({'top': [t.to_json() for t in top], 'torch': 'torch' in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    printed = json.loads(result.stdout)
    assert printed["torch"] is False  # serving needs onnxruntime, numpy and safetensors only
    assert printed["top"] == [item.to_json() for item in scorer.top_k(user_id=user_id, k=10)]


def test_export_is_byte_for_byte_reproducible(project: Paths) -> None:
    before = {path.name: path.read_bytes() for path in project["serving"].iterdir()}
    run_stage(STAGES["export"], _params(), project, "test")
    after = {path.name: path.read_bytes() for path in project["serving"].iterdir()}
    assert before == after
    manifest = json.loads(before["manifest.json"])
    assert manifest["n_items"] == 1682 and manifest["n_users"] == 943  # the whole catalogue
    assert manifest["features_as_of"] == "1998-04-22T23:10:39Z"  # just after the last event
    assert manifest["opset"] >= 17


def _score(project: Paths, *args: str) -> subprocess.CompletedProcess[str]:
    """`inttower score` in its own process, on the project's data folder."""
    command = [sys.executable, "-m", "inttower.cli", "score", "--data-dir", str(project.data)]
    return subprocess.run([*command, *args], capture_output=True, text=True)


def test_cli_score_prints_top_k_as_json(project: Paths, scorer: Scorer) -> None:
    user_id = int(scorer.user_ids[0])
    result = _score(project, "--user-id", str(user_id), "--k", "3", "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["user_id"] == user_id and printed["bundle_id"] == scorer.bundle_id
    assert [item["item_id"] for item in printed["items"]] == [
        item.item_id for item in scorer.top_k(user_id=user_id, k=3)
    ]
    unknown = _score(project, "--user-id", "999999")
    assert unknown.returncode == 2
    assert "user 999999 is not in the bundle" in unknown.stderr


def test_a_changed_bundle_file_is_refused_by_name(project: Paths, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(project["serving"], copy)
    (copy / "items.safetensors").write_bytes(b"torn")
    with pytest.raises(ArtifactError, match=r"items\.safetensors: md5 differs"):
        Scorer.load(copy)
    with pytest.raises(InttowerError, match="no serving bundle here"):
        Scorer.load(tmp_path / "nowhere")


def test_a_single_tower_model_cannot_be_exported(project: Paths) -> None:
    with pytest.raises(ConfigError, match=r"model\.name"):
        run_stage(STAGES["export"], _params(**{"model.name": "dnn"}), project, "test")


def test_every_evaluation_ranks_the_whole_catalogue_beside_popularity_and_the_mf(
    project: Paths,
) -> None:
    metrics = json.loads(project["metrics"].read_text())
    keys = {"recall@10", "ndcg@10", "recall@20", "ndcg@20", "coverage@10"}
    for block in ("ranking", "ranking_valid"):
        rankers = {"model", "popularity", "recent_popularity", "ids_mf"}
        assert set(metrics[block]) == rankers, block
        for ranker, values in metrics[block].items():
            assert set(values) == keys, (block, ranker)
            assert all(0.0 <= value <= 1.0 for value in values.values())
    assert metrics["ranking_users"]["test"]["catalogue"] == 1682  # every ml-100k item
    assert list(metrics)[:2] == ["test", "ranking"]  # dvc exp show: after test AUC and logloss
    assert project["plots.ranking"].exists()


def test_the_ranking_metrics_score_users_as_the_served_bundle_does(
    project: Paths, scorer: Scorer
) -> None:
    """Evaluation's full-catalogue ranking runs the ONNX scorer's computation: on a sample of
    users its logits and served scores over the whole catalogue equal what `inttower score`
    computes, with the same item prior."""
    from inttower.evaluation.calibration import Calibration
    from inttower.evaluation.ranking import _served_logits
    from inttower.serving.rank import item_prior, served_scores

    model, latest = _model(project), _latest(project)
    rows = np.array([0, 7, 19, 42, 101])
    users = {k: v[rows] for k, v in latest.users.items() if k != USER_KEY}
    items = {k: v for k, v in latest.items.items() if k != ITEM_KEY}
    ranked = _served_logits(ItemCache.build(model, items), users).numpy()
    served = scorer.logits({k: v.numpy() for k, v in users.items()})
    assert ranked.shape == served.shape == (5, len(scorer))
    assert np.abs(ranked - served).max() < 1e-4
    rated = read_parquet(project["validated.interactions"])
    catalogue = latest.items[ITEM_KEY].numpy()
    rated_items, rated_at = rated["item_id"].to_numpy(), rated["timestamp"].to_numpy()
    prior = item_prior(rated_items, rated_at, catalogue, latest.timestamp, 30.0)
    assert np.array_equal(prior, scorer.item_prior)
    calibration = Calibration.from_json(json.loads(project["model.calibration"].read_text()))
    ours = served_scores(ranked, prior, calibration.scale, calibration.bias)
    theirs = scorer.scores(served)
    assert np.abs(ours - theirs).max() < 1e-4
    assert (np.argsort(-ours, axis=1)[:, :10] == np.argsort(-theirs, axis=1)[:, :10]).mean() > 0.99
