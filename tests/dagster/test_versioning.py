"""DVC versioning of a retrain: commit + push to a local remote, then a fresh clone pulls the
exact model and metrics and has nothing to recompute."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dagster_project.retraining import CHAMPION_ASSET
from dagster_project.versioning import VERSIONED_ASSET
from inttower.io import file_md5
from inttower_dvc.commands import why_not_versionable

from .conftest import Retrain
from .helpers import dvc, git

RESTORED = (
    "data/07_model/model.safetensors",
    "data/07_model/model_card.json",
    "reports/metrics.json",
    "reports/plots/roc.csv",
    "reports/plots/calibration.csv",
)


@pytest.mark.slow
def test_retrain_commits_and_pushes_to_the_default_remote(retrain: Retrain) -> None:
    assert retrain.result.success
    (event,) = retrain.result.asset_materializations_for_node(VERSIONED_ASSET)
    metadata = {key: value.value for key, value in event.metadata.items()}
    assert metadata["status"] == "pushed" and metadata["dvc_remote"] == "local"
    assert "data/07_model" in metadata["dvc_lock_data"]
    assert any(retrain.remote.rglob("*")), "the remote received no files"
    # the retrain is an experiment, named by the run's start; the champion record names it
    experiment = metadata["experiment"]
    assert (
        experiment
        in dvc("exp", "list", "--all-commits", "--name-only", cwd=retrain.project).split()
    )
    (decision,) = retrain.result.asset_materializations_for_node(CHAMPION_ASSET)
    assert decision.metadata["decision"].value == "promoted"
    assert decision.metadata["experiment"].value == experiment
    champion = json.loads((retrain.project / "reports/champion.json").read_text())
    assert champion["experiment"] == experiment


@pytest.fixture(scope="module")
def pulled_clone(retrain: Retrain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh `git clone` of the retrained project, then `dvc pull` from the local remote."""
    assert retrain.result.success
    clone = tmp_path_factory.mktemp("pulled") / "clone"
    git("clone", "-q", str(retrain.project), str(clone), cwd=clone.parent)
    dvc("pull", cwd=clone)
    return clone


@pytest.mark.slow
def test_a_fresh_clone_pulls_the_exact_model_and_metrics(
    retrain: Retrain, pulled_clone: Path
) -> None:
    for relative in RESTORED:
        assert file_md5(pulled_clone / relative) == file_md5(retrain.project / relative), relative


@pytest.mark.slow
def test_a_fresh_clone_has_nothing_to_recompute(pulled_clone: Path) -> None:
    status = dvc("status", cwd=pulled_clone)
    assert status.split() == ["source:", "always", "changed"], status  # the fingerprint only
    output = dvc("repro", cwd=pulled_clone)
    assert re.findall(r"Running stage '([^']+)'", output) == ["source"], output


def test_versioning_is_skipped_when_dvc_lock_would_not_describe_the_artifacts(
    tmp_path: Path,
) -> None:
    params = tmp_path / "params.yaml"
    assert "not a DVC repository" in str(
        why_not_versionable(tmp_path, tmp_path / "data", params, {})
    )
    (tmp_path / ".dvc").mkdir()
    assert why_not_versionable(tmp_path, tmp_path / "data", params, {}) is None
    elsewhere = why_not_versionable(tmp_path, tmp_path / "scratch", params, {})
    assert "dvc.yaml tracks" in str(elsewhere)
    other_params = why_not_versionable(tmp_path, tmp_path / "data", tmp_path / "p.yaml", {})
    assert "dvc.yaml reads" in str(other_params)
    overridden = why_not_versionable(tmp_path, tmp_path / "data", params, {"train.lr": 0.1})
    assert "train.lr" in str(overridden)
