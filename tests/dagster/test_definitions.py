"""The code location loads from the project root with no flags: `dg check defs`, and `dg dev`
serves it, the backtest's partitions being the ingested weeks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dagster_project.assets import ASSET_NAMES, SOURCE_FILES
from dagster_project.retraining import CHAMPION_ASSET
from dagster_project.versioning import VERSIONED_ASSET

from .helpers import ROOT, VENV_BIN

STARTUP_TIMEOUT = 120  # seconds: a cold `dg dev` imports torch in its code server
ASSETS_QUERY = "{ assetNodes { assetKey { path } groupName } }"
SCHEDULE_QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
    schedules { name cronSchedule executionTimezone futureTicks(limit: 1) { results { timestamp } } }
} } } }"""


def _env(dagster_home: Path) -> dict[str, str]:
    # DAGSTER_HOME outside the repo: nothing a test runs may write into the working tree
    return {**os.environ, "DAGSTER_HOME": str(dagster_home), "DAGSTER_DISABLE_TELEMETRY": "1"}


def test_dg_check_defs_passes_from_the_project_root(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "dg"), "check", "defs"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "All definitions loaded successfully" in output
    assert "SupersessionWarning" not in output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C lets `dg dev` stop its webserver, daemon and code server; kill what remains."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # its own session: only what this test started
    process.wait(timeout=10)


@pytest.mark.slow
def test_dg_dev_lists_every_asset_over_graphql(tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "dagster_dev.log").open("wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "dg"), "dev", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        nodes = None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while nodes is None and time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "dagster_dev.log").read_text()[-3000:]
            try:
                nodes = _graphql(port, ASSETS_QUERY)["data"]["assetNodes"]
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError):
                time.sleep(1)
        assert nodes is not None, f"no GraphQL answer within {STARTUP_TIMEOUT}s"
        listed = {"/".join(node["assetKey"]["path"]): node["groupName"] for node in nodes}
        dagster_only = {VERSIONED_ASSET, CHAMPION_ASSET, SOURCE_FILES, "backtest"}
        assert set(listed) == {*ASSET_NAMES.values(), *dagster_only}
        assert listed["raw_movielens"] == "ingestion"
        assert listed["inttower_model"] == "modeling"

        repositories = _graphql(port, SCHEDULE_QUERY)["data"]["repositoriesOrError"]["nodes"]
        (schedule,) = [s for repo in repositories for s in repo["schedules"]]
        assert schedule["name"] == "retrain_schedule"
        (tick,) = schedule["futureTicks"]["results"]
        assert tick["timestamp"] > time.time()
        next_tick = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(tick["timestamp"]))
        print(f"retrain_schedule next tick: {next_tick}")
    finally:
        _stop(process)
        log.close()
