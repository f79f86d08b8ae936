"""torchrun + DistributedDataParallel on CPU (gloo), two real processes, real ml-100k."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from inttower.config import load_params
from inttower.errors import ConfigError
from inttower.evaluation.report import evaluate_model
from inttower.pipeline.paths import Paths
from inttower.pipeline.registry import STAGES, run_stage
from inttower.training.distributed import WORKER_ENV, torchrun_command
from tests.helpers import ROOT, SMALL_TOWERS

pytestmark = pytest.mark.slow
DATA_STAGES = ("source", "ingest", "validate", "split", "features", "encoders", "encode")
# patience above the epochs: the kill-and-resume test needs every epoch to run, not an early stop
SMALL = {**SMALL_TOWERS, "train.epochs": 3, "train.patience": 10}


def _cli(data: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "inttower.cli", args[0], "--data-dir", str(data)]
    for key, value in SMALL.items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    command += args[1:]  # after the defaults: these win
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory, movielens_mirror: Path) -> Paths:
    paths = Paths.for_data(tmp_path_factory.mktemp("ddp") / "data")
    params = load_params(ROOT / "params.yaml", SMALL)
    for name in DATA_STAGES:
        run_stage(STAGES[name], params, paths, "test")
    return paths


def test_two_gloo_processes_train_what_one_process_does(encoded: Paths) -> None:
    one = load_params(ROOT / "params.yaml", SMALL)
    run_stage(STAGES["train"], one, encoded, "test")
    single = evaluate_model(one, encoded, ranking=False)["test"]["auc"]
    two = load_params(ROOT / "params.yaml", {**SMALL, "train.nproc": 2})
    summary = run_stage(STAGES["train"], two, encoded, "test")  # launches torchrun, waits
    card = json.loads(encoded["model.card"].read_text())
    assert card["world_size"] == 2 and summary.world_size == 2
    assert card["epochs_run"] == 3 and len(card["history"]) == 3
    distributed = evaluate_model(two, encoded, ranking=False)["test"]["auc"]
    assert abs(distributed - single) < 0.01, (single, distributed)


def _rank(parent: psutil.Process, rank: str) -> psutil.Process | None:
    for child in parent.children(recursive=True):
        try:
            environ = child.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if environ.get(WORKER_ENV) == "1" and environ.get("RANK") == rank:
            return child
    return None


def test_a_rank_killed_mid_epoch_fails_the_run_and_resume_completes(encoded: Paths) -> None:
    for leftover in (encoded["model.weights"], encoded["model.card"]):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(encoded.checkpoints, ignore_errors=True)  # the last test's run
    run = _cli(encoded.data, "train", "--set", "train.nproc=2", "--set", "train.epochs=6")
    latest = encoded.checkpoints / "latest.json"
    deadline = time.monotonic() + 240
    while not latest.exists() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    assert latest.exists(), run.communicate()
    victim = _rank(psutil.Process(run.pid), "1")
    assert victim is not None, "rank 1 is running"
    os.kill(victim.pid, signal.SIGKILL)  # in epoch 2: epoch 1's checkpoint is on disk
    _, stderr = run.communicate(timeout=240)
    assert run.returncode == 2, stderr
    error = [line for line in stderr.splitlines() if line.startswith("inttower: error:")]
    assert error and "distributed training failed" in error[0], stderr
    assert not encoded["model.weights"].exists()  # nothing half-written, nothing written
    resumed = _cli(encoded.data, "train", "--resume", "--set", "train.nproc=2",
                   "--set", "train.epochs=6")  # fmt: skip
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    summary = json.loads(stdout.splitlines()[-1])["train"]
    assert summary["timing"]["resumed_from_epoch"] >= 1
    assert json.loads(encoded["model.card"].read_text())["epochs_run"] == 6


def test_nodes_need_a_rendezvous_and_nproc_must_be_positive(monkeypatch) -> None:
    params = load_params(ROOT / "params.yaml", {"train.nproc": 2, "train.nnodes": 2})
    monkeypatch.delenv("INTTOWER_RDZV_ENDPOINT", raising=False)
    with pytest.raises(ConfigError, match="INTTOWER_RDZV_ENDPOINT"):
        torchrun_command(params, [])
    monkeypatch.setenv("INTTOWER_RDZV_ENDPOINT", "head:29400")
    monkeypatch.setenv("INTTOWER_RDZV_ID", "job-1")
    command = torchrun_command(params, [])
    assert "--nnodes=2" in command and "--rdzv-endpoint=head:29400" in command
    assert "--standalone" not in command
    with pytest.raises(ConfigError, match=r"train\.nproc"):
        load_params(ROOT / "params.yaml", {"train.nproc": 0})
