"""End to end: `dvc repro` in a temporary git repo on the real ml-100k from the mirror."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import copy_project

SMALL_TRAINING = {
    "train.epochs": 2,
    "train.batch_size": 1024,
    "model.hidden_units": [64, 32],
    "model.heads": 4,
    "model.head_dim": 16,
    "model.embedding_dim": 8,
}

pytestmark = pytest.mark.slow


def _run(command: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("INTTOWER_DATA_DIR", None)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _commit(repo: Path, message: str, *flags: str) -> None:
    identity = ["-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    _run(["git", *identity, "commit", "-q", *flags, "-m", message], repo)


def _set(params_file: Path, updates: dict) -> None:
    raw = yaml.safe_load(params_file.read_text())
    for dotted, value in updates.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = value
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory, movielens_mirror) -> Path:
    repo = copy_project(tmp_path_factory.mktemp("repo"))
    _set(repo / "params.yaml", SMALL_TRAINING)
    _run(["git", "init", "-q"], repo)
    _commit(repo, "init", "--allow-empty")
    _run(["git", "add", "-A"], repo)
    _run(["dvc", "repro"], repo)
    return repo


def test_repro_produces_encoded_splits_model_and_contract_metrics(repo: Path) -> None:
    for split in ("train", "valid", "test"):
        assert (repo / "data" / "06_encoded" / f"{split}.safetensors").stat().st_size > 0
    assert (repo / "data" / "07_model" / "model.safetensors").exists()
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert 0.5 < metrics["test"]["auc"] <= 1.0
    assert 0.0 < metrics["test"]["logloss"] < 1.0
    # the served probabilities are calibrated on valid (`auto`: the method with the lowest
    # cross-fitted logloss there); the raw ones are kept beside them
    calibration = metrics["calibration"]
    held_out = calibration["held_out_logloss"]
    assert calibration["method"] == min(held_out, key=held_out.get) and calibration["scale"] > 0
    raw = metrics["uncalibrated"]["test"]
    assert raw["auc"] == metrics["test"]["auc"] and raw["ece"] is not None
    assert (repo / "data" / "07_model" / "calibration.json").exists()
    assert (repo / "dvc.lock").exists()


def ran(output: str) -> set[str]:
    """The stages a `dvc repro` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_second_repro_does_nothing(repo: Path) -> None:
    lock = (repo / "dvc.lock").read_bytes()
    output = _run(["dvc", "repro"], repo)
    # only the source fingerprint looks at the outside world, and it found nothing new
    assert ran(output) == {"source"}, output
    assert (repo / "dvc.lock").read_bytes() == lock
    status = _run(["dvc", "status"], repo)
    assert status.split() == ["source:", "always", "changed"], status


def test_changing_a_split_param_reruns_from_split_only(repo: Path) -> None:
    _set(repo / "params.yaml", {"split.valid": 0.15, "split.test": 0.05})
    output = _run(["dvc", "repro"], repo)
    assert "Running stage 'ingest'" not in output
    assert "Running stage 'validate'" not in output
    for stage in ("split", "features", "encoders", "encode", "train", "evaluate"):
        assert f"Running stage '{stage}'" in output, output
    split_report = json.loads((repo / "reports" / "split.json").read_text())
    assert split_report["splits"]["test"]["events"] < 0.06 * sum(
        row["events"] for row in split_report["splits"].values()
    )


def test_exp_run_switches_the_model_and_metrics_diff_compares(repo: Path) -> None:
    _run(["git", "add", "-A"], repo)
    _commit(repo, "run")
    output = _run(["dvc", "exp", "run", "-S", "model.name=dssm"], repo)
    assert "Running stage 'train'" in output and "Running stage 'split'" not in output
    diff = json.loads(_run(["dvc", "metrics", "diff", "--json"], repo))
    changes = diff["reports/metrics.json"]
    assert changes["model"] == {"old": "inttower", "new": "dssm"}
    assert "test.auc" in changes


def test_exp_show_leads_with_test_auc_and_plots_show_needs_no_internet(repo: Path) -> None:
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], repo))
    metrics = shown[0]["data"]["metrics"]
    assert list(metrics) == ["reports/metrics.json"]  # the only DVC metrics file
    columns = _flatten(metrics["reports/metrics.json"]["data"])
    assert columns[:2] == ["test.auc", "test.logloss"], columns[:10]
    assert not any(column.startswith(("rows", "splits", "sources")) for column in columns)
    html = _run(["dvc", "plots", "show", "--out", "plots-html"], repo)
    page = (repo / "plots-html" / "index.html").read_text()
    assert "<script" not in page and "http" not in page.split("<body", 1)[-1], html
    for name in ("training_curve", "roc", "reliability", "cold_warm"):
        assert f"reports_plots_{name}.png" in page or f"{name}.png" in page, name


def _flatten(block: dict, prefix: str = "") -> list[str]:
    columns = []
    for key, value in block.items():
        if isinstance(value, dict):
            columns += _flatten(value, f"{prefix}{key}.")
        else:
            columns.append(f"{prefix}{key}")
    return columns
