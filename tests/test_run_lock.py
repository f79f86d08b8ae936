"""One run at a time per data folder: real processes, a real SIGKILL, a DVC-style session."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inttower.pipeline.catalog import RUN_LOCK
from inttower.pipeline.run_lock import RunLocked, run_lock

ROOT = Path(__file__).resolve().parent.parent

# Holds the lock of argv[1] until killed; tells the test it holds it by printing a line.
HOLDER = """
import sys, time
from inttower.pipeline.run_lock import run_lock
with run_lock(sys.argv[1], description=sys.argv[2]):
    print("holding", flush=True)
    time.sleep(600)
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def _hold(data: Path, description: str, **env: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data), description],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(**env),
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inttower.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_env(),
    )


def test_a_second_run_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    data = tmp_path / "data"
    holder = _hold(data, "dagster run 1234")
    try:
        started = time.monotonic()
        result = _cli("split", "--data-dir", str(data), cwd=tmp_path)
        assert time.monotonic() - started < 30  # at once: no waiting for the holder
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"inttower: error: {data}: in use by dagster run 1234")
        assert f"pid {holder.pid}" in line and "since 20" in line
        assert not (data / "03_split").exists()
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    data = tmp_path / "data"
    holder = _hold(data, "inttower run")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert json.loads((data / RUN_LOCK).read_text())["pid"] == holder.pid  # its record remains
    with run_lock(data, "the next run") as mine:
        assert mine["pid"] == os.getpid()
        assert json.loads((data / RUN_LOCK).read_text())["command"] == "the next run"
    assert (data / RUN_LOCK).read_text() == ""  # released: nobody holds it


def test_a_dvc_session_holds_the_folder_between_its_stages(tmp_path: Path) -> None:
    """`dvc repro` runs each stage as a child process with DVC_STAGE set: the lock names the
    parent (the `dvc` process) and stays held between two children, for everyone but that
    session's next stage. Here this test process plays `dvc repro`."""
    data = tmp_path / "data"
    stage = "import sys\nfrom inttower.pipeline.run_lock import run_lock\nwith run_lock(sys.argv[1]): pass"
    subprocess.run(
        [sys.executable, "-c", stage, str(data)], env=_env(DVC_STAGE="train"), check=True
    )
    record = json.loads((data / RUN_LOCK).read_text())
    assert record["session"] and record["dvc_stage"] == "train"
    assert record["pid"] == os.getpid()  # the stage's parent, not the finished stage
    # between two stages no process holds the flock, yet another front end is refused
    other = subprocess.run(
        [sys.executable, "-c", HOLDER, str(data), "dagster run 9"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert other.returncode != 0
    assert "between two of its stages" in other.stderr and f"pid {os.getpid()}" in other.stderr
    # the same session's next stage goes ahead
    subprocess.run(
        [sys.executable, "-c", stage, str(data)], env=_env(DVC_STAGE="evaluate"), check=True
    )
    assert json.loads((data / RUN_LOCK).read_text())["dvc_stage"] == "evaluate"


def test_a_stage_run_through_a_shell_that_waits_names_the_dvc_process(tmp_path: Path) -> None:
    """DVC runs `sh -c CMD`; a shell that does not exec CMD (here: `CMD; true`) stands between
    the stage and `dvc`. The record names `dvc` (this test), not the shell, which ends with the
    stage and would leave the folder unheld between two stages."""
    data = tmp_path / "data"
    stage = "import sys\nfrom inttower.pipeline.run_lock import run_lock\nwith run_lock(sys.argv[1]): pass"
    command = shlex.join([sys.executable, "-c", stage, str(data)]) + "; true"
    subprocess.run(["sh", "-c", command], env=_env(DVC_STAGE="train"), check=True)
    record = json.loads((data / RUN_LOCK).read_text())
    assert record["pid"] == os.getpid(), record
    assert record["session"] and record["dvc_stage"] == "train"


def test_a_session_record_of_a_finished_dvc_process_is_stale(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(finished.stdout)
    record = {"command": "dvc repro", "pid": pid, "pid_start": "1", "host": os.uname().nodename,
              "started_at": "2026-01-01T00:00:00+00:00", "session": True, "dvc_stage": "train"}  # fmt: skip
    (data / RUN_LOCK).write_text(json.dumps(record))
    with run_lock(data, "dagster run 10") as mine:
        assert mine["command"] == "dagster run 10"


def test_one_process_cannot_take_a_folder_twice(tmp_path: Path) -> None:
    with (
        run_lock(tmp_path, "outer"),
        pytest.raises(RunLocked, match="in use by outer"),
        run_lock(tmp_path, "inner"),
    ):
        pass
