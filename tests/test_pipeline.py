"""The stage registry, dvc.yaml and the CLI agree, and the CLI reports errors in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from inttower.pipeline.registry import STAGE_LIST, STAGES
from inttower_dvc.dvcfile import DVC_PATHS, render

ROOT = Path(__file__).resolve().parent.parent


def test_committed_dvc_yaml_is_generated_from_the_registry() -> None:
    assert (ROOT / "dvc.yaml").read_text() == render(), "run `inttower dvc-yaml` and commit"


def test_dvc_stages_declare_code_params_and_outputs() -> None:
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(declared) == [stage.name for stage in STAGE_LIST]
    for stage in STAGE_LIST:
        entry = declared[stage.name]
        assert entry["cmd"] == f"inttower {stage.name} --data-dir data"
        for source in stage.code:
            assert source in entry["deps"] and (ROOT / source).exists(), source
        assert entry.get("params", []) == list(stage.params)
        outs = [next(iter(out)) for out in entry.get("outs", [])]
        cached, reports = stage.outs(DVC_PATHS), stage.reports(DVC_PATHS)
        assert outs == [str(out) for out in [*cached, *reports]]
        assert all(str(out).startswith("data/") for out in cached)
        assert all(str(out).startswith("reports/") for out in reports)
        # DVC must never delete outputs before a stage runs: a failed stage keeps the last good
        for section in ("outs", "metrics", "plots"):
            assert all(next(iter(out.values()))["persist"] for out in entry.get(section, []))
    assert declared["source"]["always_changed"] is True


def test_edges_follow_the_data() -> None:
    assert STAGES["ingest"].upstream == ("source",)
    assert STAGES["split"].upstream == ("validate",)
    assert STAGES["encode"].upstream == ("features", "encoders")
    # ingest too: the synthetic oracle (never a feature) goes straight to evaluation; and the
    # full-catalogue ranking reads every rating, the catalogue, the split events and encoders
    assert set(STAGES["evaluate"].upstream) == {
        "ingest",
        "validate",
        "split",
        "features",
        "encoders",
        "encode",
        "train",
    }
    # a DAG in registry order: every upstream stage comes earlier
    order = [stage.name for stage in STAGE_LIST]
    for stage in STAGE_LIST:
        assert all(order.index(up) < order.index(stage.name) for up in stage.upstream)


def test_code_version_changes_with_the_stages_params_only() -> None:
    from inttower.config import load_params

    params = load_params(ROOT / "params.yaml")
    faster = params.model_copy(update={"train": params.train.model_copy(update={"lr": 0.5})})
    assert STAGES["train"].code_version(params) != STAGES["train"].code_version(faster)
    assert STAGES["split"].code_version(params) == STAGES["split"].code_version(faster)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inttower.cli", *args], cwd=cwd, capture_output=True, text=True
    )


def test_cli_reports_a_bad_param_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("split:\n  protocol: shuffled\n")
    result = _cli("split", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1].startswith("inttower: error: params: split.protocol")
    )
    assert "Traceback" not in result.stderr


def test_cli_names_the_missing_upstream_output(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    result = _cli("encoders", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 2
    assert "04_features/events.parquet not found" in result.stderr
    assert not (tmp_path / "data" / "05_encoders").exists()


def _mirror_with(tmp_path: Path, ml100k_dir: Path, extra_ratings: int = 0) -> Path:
    mirror = tmp_path / "mirror"
    shutil.copytree(ml100k_dir, mirror / "ml-100k")
    if extra_ratings:
        ratings = mirror / "ml-100k" / "u.data"
        lines = ratings.read_text().splitlines(keepends=True)
        ratings.write_text("".join(lines + lines[:extra_ratings]))  # exact duplicates
    return mirror


def _cli_env(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inttower.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def test_a_side_run_keeps_its_reports_beside_its_data(tmp_path: Path, ml100k_dir: Path) -> None:
    """INTTOWER_DATA_DIR elsewhere: reports go to <data>/reports, never the project's."""
    project = tmp_path / "project"
    (project / "reports").mkdir(parents=True)
    (project / "params.yaml").write_text("seed: 1\n")
    side = tmp_path / "side"
    mirror = _mirror_with(tmp_path, ml100k_dir)
    result = _cli_env(
        "run",
        "--to",
        "split",
        cwd=project,
        INTTOWER_DATA_DIR=str(side),
        MOVIELENS_MIRROR=str(mirror),
    )
    assert result.returncode == 0, result.stderr
    assert (side / "reports" / "split.json").exists()
    assert list((project / "reports").iterdir()) == []
    assert not (project / "data").exists()


def test_duplicate_ratings_stop_the_run_in_one_line(tmp_path: Path, ml100k_dir: Path) -> None:
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    mirror = _mirror_with(tmp_path, ml100k_dir, extra_ratings=50)
    result = _cli_env("run", "--data-dir", "data", cwd=tmp_path, MOVIELENS_MIRROR=str(mirror))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    first = next(line for line in result.stderr.splitlines() if line.startswith("inttower: error"))
    assert "u.data" in first and "duplicate rating" in first, result.stderr
    assert "Traceback" not in result.stderr and last
    assert not (tmp_path / "data" / "02_validated").exists()


def test_a_truncated_artifact_is_one_line_and_nothing_downstream(
    tmp_path: Path, ml100k_dir: Path
) -> None:
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    mirror = _mirror_with(tmp_path, ml100k_dir)
    env = {"MOVIELENS_MIRROR": str(mirror)}
    ran = _cli_env("run", "--to", "features", "--data-dir", "data", cwd=tmp_path, **env)
    assert ran.returncode == 0, ran.stderr
    events = tmp_path / "data" / "04_features" / "events.parquet"
    os.truncate(events, events.stat().st_size // 2)
    result = _cli_env("encoders", "--data-dir", "data", cwd=tmp_path, **env)
    assert result.returncode == 2
    (line,) = [row for row in result.stderr.splitlines() if row.startswith("inttower: error")]
    assert "data/04_features/events.parquet: corrupt or truncated parquet" in line
    assert line.endswith("rerun `inttower features`")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "05_encoders").exists()


def test_synthetic_data_reports_the_oracle_beside_the_model(tmp_path: Path) -> None:
    """The generator's truth, scored on the same test events: the ceiling of the table."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    small = [
        "data.dataset=synthetic",
        "data.synthetic.n_users=600",
        "data.synthetic.n_items=300",
        "data.synthetic.n_events=20000",
        "train.epochs=2",
        "model.hidden_units=[32]",
        "model.heads=4",
        "model.head_dim=8",
    ]
    args = [arg for pair in small for arg in ("--set", pair)]
    result = _cli_env("run", "--data-dir", "data", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    oracle = metrics["oracle"]
    assert oracle["n"] == metrics["test"]["n"]
    assert metrics["test"]["auc"] < oracle["auc"] + 0.005  # nothing beats the truth
    assert oracle["logloss"] < metrics["baselines"]["item_pos_rate"]["logloss"]
