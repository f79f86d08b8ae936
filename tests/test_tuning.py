"""`inttower tune`: a declared space checked on load, trials scored on valid in their own
folders, a study that is the same for the same seed, and the best params as a patch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inttower.errors import InttowerError
from inttower.io import file_md5
from inttower.lifecycle.tuning import load_space, tune
from inttower.training.train import train_model
from tests.helpers import ROOT
from tests.training.helpers import tiny_params, write_tiny_project

SPACE = {
    "trials": 3,
    "space": {
        "train.lr": {"low": 0.003, "high": 0.03, "log": True},
        "model.id_dim": {"choices": [0, 4]},
        "model.dropout": {"low": 0.0, "high": 0.3},
    },
}


def _space(tmp_path: Path, raw: object, name: str = "tune.yaml") -> Path:
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"trials": 2, "space": {"train.lrr": {"low": 0.1, "high": 0.2}}}, "space.train.lrr"),
        ({"trials": 2, "space": {"train.lr": {"low": 0.2, "high": 0.1}}}, "low < high"),
        ({"trials": 2, "space": {"train.lr": {"low": 0, "high": 1, "log": True}}}, "low > 0"),
        ({"trials": 2, "space": {"model.dropout": {"low": 0.1, "high": 1.5}}}, "model.dropout"),
        ({"trials": 2, "space": {"model.id_dim": {"choices": []}}}, "choices"),
        ({"trials": 0, "space": {"train.lr": {"low": 0.1, "high": 0.2}}}, "trials"),
        ({"trials": 2, "space": {"train.lr": [1, 2]}}, "space.train.lr"),
        (
            {"trials": 2, "space": {"model.hidden_units": {"choices": [[8], [4]]}}},
            "scalars|numbers",
        ),
        ("trials: 2\nspace: {train.lr: {low: 1\n", "not valid YAML"),
    ],
)
def test_a_bad_space_is_refused_naming_its_key(tmp_path: Path, raw: object, message: str) -> None:
    with pytest.raises(InttowerError, match=message.replace(".", r"\.")) as error:
        load_space(_space(tmp_path, raw), tiny_params())
    assert str(error.value).startswith(str(tmp_path / "tune.yaml"))
    assert "\n" not in str(error.value)


def test_the_study_is_scored_on_valid_reproducible_and_leaves_the_model_alone(
    tmp_path: Path,
) -> None:
    params = tiny_params()
    reports = []
    for run in ("first", "again"):
        paths = write_tiny_project(tmp_path / run)
        train_model(params, paths, progress=False)
        model = file_md5(paths["model.weights"])
        reports.append(tune(params, paths, load_space(_space(tmp_path, SPACE), params)))
        assert file_md5(paths["model.weights"]) == model  # trials train in their own folders
        assert (paths.data / "tune" / "study.db").exists()
        assert json.loads((paths.reports / "tune.json").read_text()) == reports[-1]
    first, again = reports
    assert [row["params"] for row in first["trials"]] == [row["params"] for row in again["trials"]]
    assert [row["valid_auc"] for row in first["trials"]] == [
        row["valid_auc"] for row in again["trials"]
    ]
    assert len(first["trials"]) == 3
    best = first["best"]
    assert best["valid_auc"] == max(row["valid_auc"] or 0 for row in first["trials"])
    assert yaml.safe_load(first["patch"])["train"]["lr"] == best["params"]["train.lr"]
    assert first["dvc"].startswith("dvc exp run -S ")


def test_the_cli_refuses_a_bad_space_in_one_line(tmp_path: Path) -> None:
    space = _space(tmp_path, {"trials": 2, "space": {"model.nope": {"choices": [1]}}})
    result = subprocess.run(
        [sys.executable, "-m", "inttower.cli", "tune", "--space", str(space)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("inttower: error: ")
    assert "space.model.nope" in result.stderr and "Traceback" not in result.stderr


def test_the_dagster_job_runs_the_same_study(tmp_path: Path) -> None:
    import dagster as dg

    from dagster_project.definitions import build_definitions
    from dagster_project.resources import StorageResource

    write_tiny_project(tmp_path)  # data/06_encoded under tmp_path
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["model"].update(tiny_params().model.model_dump(mode="json"))
    raw["train"].update(epochs=2, batch_size=32, device="cpu", threads=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    _space(tmp_path, {**SPACE, "trials": 2})
    storage = StorageResource(root=str(tmp_path), data_dir=str(tmp_path / "data"))
    defs = build_definitions(tmp_path / "params.yaml", storage)
    result = defs.resolve_job_def("tune_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"tune_study": {"config": {"space": "tune.yaml", "trials": 2}}}},
    )
    assert result.success
    report = result.output_for_node("tune_study")
    assert len(report["trials"]) == 2
    assert json.loads((tmp_path / "reports/tune.json").read_text()) == report
