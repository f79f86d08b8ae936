"""The stage registry, dvc.yaml and the CLI agree, and the CLI reports errors in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from inttower.dvcfile import render
from inttower.pipeline import REGISTRY_PATHS, STAGE_LIST, STAGES

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
        for out in stage.outs(REGISTRY_PATHS):
            assert str(out).startswith("data/") and str(out) in entry["outs"]


def test_edges_follow_the_data() -> None:
    assert STAGES["split"].upstream == ("validate",)
    assert STAGES["encode"].upstream == ("features", "encoders")
    assert set(STAGES["evaluate"].upstream) == {"features", "encode", "train"}
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
