"""Code dependencies are the import closure of each stage's function, and nothing a stage really
imports while it runs is missing from them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inttower.config import set_dotted
from inttower.lifecycle import champion
from inttower.pipeline import code_deps
from inttower.pipeline.registry import STAGE_LIST, STAGES
from inttower.pipeline.stages import split

ROOT = Path(__file__).resolve().parent.parent

# Runs one CLI command and prints the inttower modules imported while it ran.
RECORD_IMPORTS = """
import json, sys
from inttower import cli
before = set(sys.modules)
status = cli.main(sys.argv[1:])
loaded = sorted(m for m in set(sys.modules) - before if m.split(".")[0] == "inttower")
print("IMPORTED " + json.dumps(loaded))
sys.exit(status)
"""


def test_train_and_evaluate_declare_what_the_issue_found_missing() -> None:
    assert {
        "inttower/evaluation/metrics.py",
        "inttower/features/encoded.py",
        "inttower/pipeline/paths.py",
    } <= set(STAGES["train"].code)
    assert "inttower/features/encoded.py" in STAGES["evaluate"].code
    assert "inttower/evaluation/metrics.py" in STAGES["evaluate"].code


def test_a_stage_does_not_depend_on_other_stages_code() -> None:
    assert not any(path.startswith("inttower/models") for path in STAGES["ingest"].code)
    assert "inttower/features/point_in_time.py" not in STAGES["split"].code
    assert "inttower/training/train.py" not in STAGES["evaluate"].code  # evaluation needs no loop


def test_layers_import_downwards_only() -> None:
    """No sideways imports: training reaches evaluation's measures (metrics, calibration), never
    its report, ranking or plots; paths never reach features."""
    training = code_deps.closure({"inttower.training.train"})
    evaluation = {module for module in training if module.startswith("inttower.evaluation.")}
    assert evaluation == {"inttower.evaluation.metrics", "inttower.evaluation.calibration"}
    assert code_deps.closure({"inttower.pipeline.paths"}) == {
        "inttower",
        "inttower.pipeline",  # the package's __init__: a docstring, no imports
        "inttower.pipeline.paths",
        "inttower.pipeline.catalog",
    }


def test_a_stage_counts_its_own_modules_imports_and_not_its_neighbours() -> None:
    modules = code_deps.function_modules(split.run)
    assert "inttower.data.split" in modules  # imported at the top of the split stage's module
    assert "inttower.data.schema" not in modules  # imported by the `validate` stage's module


def test_local_imports_in_a_function_count_and_its_neighbours_do_not() -> None:
    modules = code_deps.function_modules(champion.score_bundle)
    assert "inttower.pipeline.stages.features" in modules  # imported inside its body
    assert "inttower.data.fingerprint" not in modules  # imported inside `lineage`, beside it


def test_dvc_yaml_lists_each_stages_closure_as_its_code_deps() -> None:
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage in STAGE_LIST:
        code = [dep for dep in declared[stage.name]["deps"] if dep.startswith("inttower/")]
        assert code == list(stage.code), stage.name


@pytest.mark.slow
def test_no_stage_imports_a_module_it_does_not_declare(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    """Each stage in its own process on the real ml-100k, as `dvc repro` runs them: every
    inttower module it imports while running is among its declared code dependencies."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    small = {"train.epochs": 1, "model.hidden_units": [16], "model.heads": 2, "model.head_dim": 4}
    for dotted, value in small.items():
        set_dotted(raw, dotted, value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MOVIELENS_MIRROR": str(movielens_mirror)}
    for stage in STAGE_LIST:
        result = subprocess.run(
            [sys.executable, "-c", RECORD_IMPORTS, stage.name, "--data-dir", "data"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, f"{stage.name}: {result.stderr[-2000:]}"
        line = next(row for row in result.stdout.splitlines() if row.startswith("IMPORTED "))
        imported = {code_deps.module_file(name) for name in json.loads(line.split(" ", 1)[1])}
        undeclared = sorted(
            path.relative_to(ROOT).as_posix()
            for path in imported
            if path is not None and path.relative_to(ROOT).as_posix() not in stage.code
        )
        assert not undeclared, f"stage {stage.name} imports undeclared {undeclared}"
