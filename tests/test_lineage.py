"""Lineage you can trust, end to end on the real ml-100k: what dvc.lock and Dagster record is what
was built. Real `dvc` in a temporary git repo, real Dagster runs, real processes and SIGKILL."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from dagster_project.definitions import build_definitions
from dagster_project.resources import OVERRIDE_TAG, SNAPSHOT_TAG, StorageResource
from dagster_project.versioning import VERSIONED_ASSET
from inttower.config import set_dotted
from inttower.io import file_md5
from inttower.pipeline.catalog import RUN_LOCK
from inttower.pipeline.registry import STAGE_LIST
from inttower_dvc.hashes import dvc_md5
from tests.helpers import SMALL_TOWERS, copy_project

pytestmark = pytest.mark.slow

PROJECT_FILES = (
    "inttower",
    "inttower_dvc",
    "dvc.yaml",
    "pyproject.toml",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
)
SMALL = {**SMALL_TOWERS, "checks.min_test_auc": 0.0}
STAGE_ASSETS = [stage.noun for stage in STAGE_LIST]


def _env(mirror: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MOVIELENS_MIRROR": str(mirror),
        "DVC_NO_ANALYTICS": "1",
        **extra,
    }
    env.pop("INTTOWER_DATA_DIR", None)
    env.pop("INTTOWER_REPORTS_DIR", None)
    return env


def _run(
    command: list[str], cwd: Path, mirror: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=_env(mirror), capture_output=True, text=True)
    if check:
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _set_params(repo: Path, updates: dict[str, Any]) -> None:
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in updates.items():
        set_dotted(raw, dotted, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, movielens_mirror: Path) -> Path:
    """A mirror of our own, so a test may change it."""
    copy = tmp_path_factory.mktemp("mirror")
    shutil.copytree(movielens_mirror / "ml-100k", copy / "ml-100k")
    return copy


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> Path:
    """The project in a git + DVC repo, reproduced once with small params."""
    repo = copy_project(tmp_path_factory.mktemp("lineage"))
    _set_params(repo, SMALL)
    _run(["git", "init", "-q"], repo, mirror)
    _run(["dvc", "repro"], repo, mirror)
    return repo


def _defs(repo: Path, mirror: Path) -> dg.Definitions:
    storage = StorageResource(root=str(repo), data_dir=str(repo / "data"), mirror=str(mirror))
    return build_definitions(repo / "params.yaml", storage)


@contextmanager
def _on_first_epoch(action: Callable[[], None]) -> Iterator[list[Any]]:
    """Call `action` once, from inside a running training step, when its first epoch ends."""
    outcomes: list[Any] = []

    class Trigger(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not outcomes and record.getMessage().startswith("epoch 1/"):
                outcomes.append(action())

    logger = logging.getLogger("inttower.training")
    trigger = Trigger()
    logger.addHandler(trigger)
    try:
        yield outcomes
    finally:
        logger.removeHandler(trigger)


def _overriding(repo: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Launchpad config that overrides params (the resource's whole config: path included)."""
    config = {"path": str(repo / "params.yaml"), "overrides": overrides}
    return {"resources": {"params": {"config": config}}}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def _failure(result: dg.ExecuteInProcessResult, step: str) -> str:
    (event,) = [e for e in result.all_events if e.is_step_failure and e.step_key == step]
    return str(event.event_specific_data.error)


def test_two_identical_runs_record_identical_outputs(repo: Path, mirror: Path) -> None:
    """Timings, clocks and host facts live in the run log: every versioned output is the same."""
    before = (repo / "dvc.lock").read_text()
    _run(["dvc", "repro", "-f"], repo, mirror)
    assert (repo / "dvc.lock").read_text() == before
    log = [json.loads(line) for line in (repo / "data/logs/runs.jsonl").read_text().splitlines()]
    train_runs = [row for row in log if row["stage"] == "train"]
    assert len(train_runs) == 2 and all(row["samples_per_second"] > 0 for row in train_runs)


def test_an_unchanged_source_elsewhere_reruns_nothing(
    repo: Path, mirror: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(mirror, moved)
    (moved / "ml-100k" / "README").write_text("not read by the parser\n")
    result = subprocess.run(
        ["dvc", "repro"], cwd=repo, env=_env(moved), capture_output=True, text=True, check=True
    )
    assert _ran(result.stdout) == {"source"}, result.stdout


def test_a_killed_encode_leaves_nothing_in_its_output_folder(repo: Path, mirror: Path) -> None:
    """SIGKILL in the middle of writing a split, then a good rerun: the folder hashes exactly
    as dvc.lock recorded it after a clean run (no `.part` or temporary file inside)."""
    locked = yaml.safe_load((repo / "dvc.lock").read_text())
    (clean,) = [
        out for out in locked["stages"]["encode"]["outs"] if out["path"] == "data/06_encoded"
    ]
    kill_mid_write = (
        "import os, signal, sys\n"
        "import inttower.features.encoded as encoded\n"
        "real = encoded.SplitWriter.append\n"
        "def half_then_kill(self, tensors):\n"
        "    real(self, {name: t[: t.shape[0] // 2] for name, t in tensors.items()})\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "encoded.SplitWriter.append = half_then_kill\n"
        "from inttower.cli import main\n"
        "sys.exit(main(['encode', '--data-dir', 'data']))\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", kill_mid_write], cwd=repo, env=_env(mirror), capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL
    assert list((repo / "data" / ".staging").glob(".*.part")), "the kill left no partial file"
    _run(["inttower", "encode", "--data-dir", "data"], repo, mirror)
    encoded = repo / clean["path"]
    assert sorted(path.name for path in encoded.iterdir()) == [
        "fields.json",
        "test.safetensors",
        "train.safetensors",
        "valid.safetensors",
    ]
    assert dvc_md5(encoded) == clean["md5"]
    assert not list((repo / "data" / ".staging").glob(".*.part"))  # cleaned when a stage starts


def test_a_failed_stage_keeps_the_outputs_of_the_last_good_run(repo: Path, mirror: Path) -> None:
    weights = repo / "data/07_model/model.safetensors"
    before = file_md5(weights)
    history = (repo / "reports/train_history.json").read_bytes()
    _set_params(repo, {"train.device": "cuda"})  # no GPU here: the train stage fails (exit 2)
    try:
        failed = _run(["dvc", "repro"], repo, mirror, check=False)
        assert failed.returncode != 0
        assert "cuda" in failed.stdout + failed.stderr
        assert file_md5(weights) == before
        assert (repo / "reports/train_history.json").read_bytes() == history
    finally:
        _set_params(repo, {"train.device": "cpu"})


def test_a_params_edit_during_a_dagster_run_is_never_versioned(repo: Path, mirror: Path) -> None:
    """Edit params.yaml while the model trains: every step keeps the run's snapshot, and the DVC
    step fails, leaving dvc.lock as it was."""
    lock = (repo / "dvc.lock").read_text()
    original = (repo / "params.yaml").read_text()

    def edit() -> None:
        _set_params(repo, {"features.smoothing": 5.0})

    try:
        with _on_first_epoch(edit) as edited:
            result = (
                _defs(repo, mirror)
                .resolve_job_def("retrain_job")
                .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
            )
        assert edited, "the edit never happened"
        assert not result.success
        assert "changed on disk after this run started" in _failure(result, VERSIONED_ASSET)
        assert (repo / "dvc.lock").read_text() == lock
        snapshots = {_metadata(result, asset)["params_snapshot"] for asset in STAGE_ASSETS}
        assert len(snapshots) == 1
        evaluation = _metadata(result, "model_evaluation")
        assert evaluation["params_overridden"] is False
        features = _metadata(result, "event_features")["params"]
        assert features["features"]["smoothing"] == 10.0
    finally:
        (repo / "params.yaml").write_text(original)


def test_an_override_run_is_marked_and_not_versioned(repo: Path, mirror: Path) -> None:
    lock = (repo / "dvc.lock").read_text()
    instance = dg.DagsterInstance.ephemeral()
    result = (
        _defs(repo, mirror)
        .resolve_job_def("retrain_job")
        .execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=_overriding(repo, {"seed": 7}),
        )
    )
    assert not result.success
    assert "overrode params ['seed']" in _failure(result, VERSIONED_ASSET)
    assert (repo / "dvc.lock").read_text() == lock
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags[OVERRIDE_TAG] == "True" and SNAPSHOT_TAG in tags
    for asset in STAGE_ASSETS:
        metadata = _metadata(result, asset)
        assert metadata["params_overridden"] is True
        assert metadata["params_overrides"] == {"seed": 7}


def test_dvc_repro_refuses_a_folder_a_dagster_run_holds(repo: Path, mirror: Path) -> None:
    """During a Dagster run's training, `dvc repro -f` fails at once naming the run, and the
    outputs DVC would otherwise have deleted before running the stage stay in place."""
    model = repo / "data/07_model/model.safetensors"

    def repro() -> subprocess.CompletedProcess[str]:
        return _run(["dvc", "repro", "-f", "source"], repo, mirror, check=False)

    with _on_first_epoch(repro) as outcomes:
        result = (
            _defs(repo, mirror)
            .resolve_job_def("retrain_job")
            .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        )
    (refused,) = outcomes
    assert refused.returncode != 0
    assert f"in use by dagster run {result.run_id}" in refused.stdout + refused.stderr
    assert (repo / "data/00_source/fingerprint.json").exists()  # persist: not deleted
    assert result.success, "the Dagster run itself goes on"
    assert model.exists()
    _run(["dvc", "repro"], repo, mirror)  # back in step with dvc.lock


def test_a_dagster_run_refuses_a_folder_dvc_repro_holds(
    repo: Path, mirror: Path, tmp_path: Path
) -> None:
    """`dvc repro -f` with seed 42 and, while it trains, a Dagster run with seed 7: the Dagster
    run fails at once, naming `dvc repro`; what DVC records is what DVC built."""
    _set_params(repo, {"train.epochs": 30, "train.patience": 30})  # a train stage to catch
    # its output goes to a file: nobody reads a pipe while it runs, and a full pipe would block it
    output = open(tmp_path / "repro.log", "w+")  # noqa: SIM115 (closed below, after the wait)
    repro = subprocess.Popen(
        ["dvc", "repro", "-f"], cwd=repo, env=_env(mirror), stdout=output, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            lock = repo / "data" / RUN_LOCK
            if '"dvc_stage": "train"' in (lock.read_text() if lock.exists() else ""):
                break
            assert repro.poll() is None, (tmp_path / "repro.log").read_text()
            time.sleep(0.05)
        else:
            pytest.fail("dvc repro never reached its train stage")
        result = (
            _defs(repo, mirror)
            .resolve_job_def("retrain_job")
            .execute_in_process(
                instance=dg.DagsterInstance.ephemeral(),
                raise_on_error=False,
                run_config=_overriding(repo, {"seed": 7}),
            )
        )
        assert repro.wait(timeout=600) == 0, (tmp_path / "repro.log").read_text()
    finally:
        if repro.poll() is None:
            repro.kill()
        output.close()
        _set_params(repo, {"train.epochs": SMALL["train.epochs"], "train.patience": 2})
    assert not result.success
    failures = [str(e.event_specific_data) for e in result.all_events if e.is_failure]
    assert any("in use by dvc repro" in text for text in failures), failures
    card = json.loads((repo / "data/07_model/model_card.json").read_text())
    assert card["params"]["seed"] == 42
    assert not result.get_asset_materialization_events()
    _run(["dvc", "repro"], repo, mirror)


def test_a_changed_mirror_reruns_ingest_and_what_follows(repo: Path, mirror: Path) -> None:
    """50 more ratings in the mirror: ingest and everything after it rerun. Before, DVC said
    "Data and pipelines are up to date"."""
    ratings = mirror / "ml-100k" / "u.data"
    lines = ratings.read_text().splitlines(keepends=True)
    more = []
    for line in lines[:50]:  # the same user and movie rated again a second later
        user, item, rating, stamp = line.split("\t")
        more.append(f"{user}\t{item}\t{rating}\t{int(stamp) + 1}\n")
    ratings.write_text("".join(lines + more))
    output = _run(["dvc", "repro"], repo, mirror).stdout
    assert {"source", "ingest", "validate", "split", "train", "evaluate"} <= _ran(output), output
    sources = json.loads((repo / "data/00_source/fingerprint.json").read_text())
    assert sources["files"]["u.data"]["size"] == ratings.stat().st_size
