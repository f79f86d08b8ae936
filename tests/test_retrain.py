"""Retraining as a decision, end to end: the real CLI on the real ml-100k, in a temporary git +
DVC repo with a local DVC remote and a bare git remote, then a fresh clone."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from inttower.config import set_dotted

from .helpers import SMALL_TOWERS, copy_project

pytestmark = pytest.mark.slow

SMALL: dict[str, Any] = SMALL_TOWERS  # here: the champion rule, the default quality floor


def _env(mirror: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MOVIELENS_MIRROR": str(mirror),
        "DVC_NO_ANALYTICS": "1",
        "INTTOWER_LOG_LEVEL": "WARNING",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }  # fmt: skip
    for name in ("INTTOWER_DATA_DIR", "INTTOWER_REPORTS_DIR", "PYTHONPATH"):
        env.pop(name, None)
    return env


def _run(command: list[str], cwd: Path, mirror: Path) -> str:
    result = subprocess.run(command, cwd=cwd, env=_env(mirror), capture_output=True, text=True)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _inttower(repo: Path, mirror: Path, *args: str) -> dict[str, Any]:
    return json.loads(_run([sys.executable, "-m", "inttower.cli", *args], repo, mirror))


def _set_params(repo: Path, updates: dict[str, Any]) -> None:
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in updates.items():
        set_dotted(raw, dotted, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _experiments(repo: Path, mirror: Path) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json`: each experiment's name, params and metrics."""
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], repo, mirror))
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment.get("revs", []):
                data = revision.get("data", {})
                found[revision["name"]] = data
    return found


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _trained(repo: Path) -> int:
    log = (repo / "data/logs/runs.jsonl").read_text().splitlines()
    return sum(json.loads(line)["stage"] == "train" for line in log)


def test_a_retrain_is_a_decision_and_every_one_an_experiment(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(movielens_mirror / "ml-100k", mirror / "ml-100k")
    repo = copy_project(tmp_path / "repo")
    _set_params(repo, SMALL)
    origin, store = tmp_path / "origin.git", tmp_path / "dvc-store"
    for command in (
        ["git", "init", "-q", "--bare", "-b", "main", str(origin)],
        ["git", "init", "-q", "-b", "main"],
        ["dvc", "remote", "add", "-d", "store", str(store)],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "project"],
        ["git", "remote", "add", "origin", str(origin)],
        ["git", "push", "-q", "origin", "main"],
    ):
        _run(command, repo if command[1] != "init" or "--bare" not in command else tmp_path, mirror)

    # 1. no champion yet: a model that passes the checks is promoted, and saved as an experiment
    first = _inttower(repo, mirror, "retrain")
    assert first["decision"] == "promoted" and first["reason"] == "no champion yet"
    champion = _inttower(repo, mirror, "champion")
    assert champion["experiment"] == first["experiment"]
    assert {"id", "promoted_at", "as_of"} <= champion.keys()
    assert champion["metrics"]["test"]["auc"] == first["challenger"]["test"]["auc"]
    weights = _md5(repo / "data/07_model/model.safetensors")
    assert champion["artifacts"]["model.safetensors"] == weights

    # 2. nothing changed: nothing is trained, and the reason says so
    trained = _trained(repo)
    second = _inttower(repo, mirror, "retrain")
    assert second["decision"] == "skipped"
    assert f"equal those of champion {champion['id']}" in second["reason"]
    assert _trained(repo) == trained

    # 3. a deliberately weaker challenger: kept out; the champion is unchanged
    _set_params(repo, {"train.epochs": 1, "model.hidden_units": [4]})
    weaker = _inttower(repo, mirror, "retrain")
    assert weaker["decision"] == "kept", weaker["reason"]
    assert "max_auc_drop" in weaker["reason"]
    assert weaker["champion"]["id"] == champion["id"]
    # the champion was scored again, on the same test events, with its own bundle
    assert weaker["champion"]["test"]["auc"] == pytest.approx(champion["metrics"]["test"]["auc"])
    assert weaker["champion"]["test"]["n"] == weaker["challenger"]["metrics"]["test"]["n"]
    assert _inttower(repo, mirror, "champion")["id"] == champion["id"]
    # what is served follows the champion, not the weaker model just trained
    served = _inttower(repo, mirror, "score", "--user-id", "1", "--k", "3", "--json")
    assert served["bundle"].endswith("registry/champion/serving")
    assert served["model_id"] == weights and len(served["items"]) == 3
    assert served["model_id"] != _md5(repo / "data/07_model/model.safetensors")

    # 4. a better one (more epochs, wider towers) is promoted; with the top-K rule on, both are
    # ranked over the whole catalogue on the same window, and the decision records it
    _set_params(
        repo, {"train.epochs": 4, "model.hidden_units": [64, 32], "promotion.max_ndcg_drop": 1.0}
    )
    better = _inttower(repo, mirror, "retrain")
    assert better["decision"] == "promoted", better["reason"]
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert better["challenger"]["test"]["ndcg@10"] == metrics["ranking"]["model"]["ndcg@10"]
    assert 0.0 < better["champion"]["test"]["ndcg@10"] < 1.0
    assert "max_ndcg_drop" in better["reason"]
    assert _inttower(repo, mirror, "champion")["id"] == better["challenger"]["id"] != champion["id"]
    history = json.loads(_run([sys.executable, "-m", "inttower.cli", "champion", "--history"],
                              repo, mirror))  # fmt: skip
    assert [line["experiment"] for line in history] == [first["experiment"], better["experiment"]]

    # every retrain that trained is an experiment, with params and metrics in `dvc exp show`
    experiments = _experiments(repo, mirror)
    names = {first["experiment"], weaker["experiment"], better["experiment"]}
    assert names <= experiments.keys(), experiments.keys()
    shown = experiments[weaker["experiment"]]
    assert shown["params"]["params.yaml"]["data"]["train"]["epochs"] == 1
    assert list(shown["metrics"]) == ["reports/metrics.json"]  # the one metrics file: no clutter
    metrics = shown["metrics"]["reports/metrics.json"]["data"]["test"]
    assert metrics["auc"] == pytest.approx(weaker["challenger"]["test"]["auc"])
    assert "retrain" not in _run(["git", "log", "--oneline"], repo, mirror)  # branch untouched

    # 5. a fresh clone restores the first champion with one command, byte for byte
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, mirror)
    restored = _inttower(clone, mirror, "champion", "--restore", first["experiment"])
    assert restored["id"] == champion["id"] and restored["event"] == "restored"
    assert _md5(clone / "data/07_model/model.safetensors") == weights
    for name, digest in champion["artifacts"].items():
        assert _md5(clone / "data/registry/champion" / name) == digest
    assert _inttower(clone, mirror, "champion")["id"] == champion["id"]
