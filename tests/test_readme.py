"""Every shell command the README shows runs, as written, on the real ml-100k.

The commands are read from the README's ```bash blocks, in order, and run one after another in a
copy of the project (its own git repo, DAGSTER_HOME and data) with the environment activated, as
a user who follows the page would. A command whose comment says `# skip: why` is not run here
(the reason is printed); `# needs: …` names what it needs beyond the mirror. The copy's
params.yaml is the project's with small epochs, committed, so DVC sees a clean repo.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.dagster.helpers import SMALL_PARAMS, write_params
from tests.dagster.test_definitions import _free_port, _graphql, _stop
from tests.helpers import ROOT

BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)
SKIP = re.compile(r"#\s*skip:\s*(.+)$")
LONG_RUNNING = {"dg dev"}  # servers: started, asked over GraphQL, stopped
COMMAND_TIMEOUT = 600


def readme_commands(text: str) -> list[tuple[str, str | None]]:
    """(command, skip reason or None) for every line of every bash block."""
    commands = []
    for block in BLOCK.findall(text):
        for line in block.splitlines():
            if not line.strip():
                continue
            skip = SKIP.search(line)
            commands.append((line.strip(), skip.group(1).strip() if skip else None))
    return commands


def _bare(command: str) -> str:
    return command.split("#", 1)[0].strip()


def test_the_readme_is_a_front_page_whose_commands_are_all_runnable_or_skipped() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    commands = readme_commands(text)
    bare = [_bare(command) for command, _ in commands]
    assert bare[:2] == ["make run", "make test"]  # the two commands come first
    for needed in ("dg dev", "dg check defs", "dg launch --assets '*'", "dvc repro"):
        assert needed in bare
    assert all(reason for command, reason in commands if _bare(command) == "make test")
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), f"README links to a missing page: {link}"


def test_the_skip_marker_is_read_from_the_comment() -> None:
    text = "```bash\nmake test   # the suite  # skip: recursion\ndvc repro  # runs\n```\n"
    assert readme_commands(text) == [
        ("make test   # the suite  # skip: recursion", "recursion"),
        ("dvc repro  # runs", None),
    ]


def _copy_project(target: Path) -> None:
    """The tracked and untracked-but-not-ignored files, mtimes kept (so make's install rule
    sees the shared, installed .venv as current), and the environment linked, not rebuilt."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(ROOT / ".venv")


def _git(target: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=target, check=True, capture_output=True)


def _activated_env(target: Path, mirror: Path) -> dict[str, str]:
    """What `source .venv/bin/activate` gives, plus the offline mirror and a clean instance."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DAGSTER_")}
    bin_dir = target / ".venv" / "bin"
    env.update(
        VIRTUAL_ENV=str(target / ".venv"),
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        DAGSTER_HOME=str(target / ".dagster_home"),
        DAGSTER_DISABLE_TELEMETRY="1",
        MOVIELENS_MIRROR=str(mirror),
        GIT_AUTHOR_NAME="readme",
        GIT_AUTHOR_EMAIL="readme@example.com",
        GIT_COMMITTER_NAME="readme",
        GIT_COMMITTER_EMAIL="readme@example.com",
    )
    env.pop("INTTOWER_DATA_DIR", None)
    env.pop("INTTOWER_REPORTS_DIR", None)
    return env


UI_QUERY = """{ assetNodes { assetKey { path } isMaterializable isPartitioned }
  backtest: assetNodes(assetKeys: [{path: ["backtest"]}]) { partitionKeys } }"""


def _serve_and_ask(command: str, cwd: Path, env: dict[str, str], log: Path) -> dict:
    """Start `dg dev` (on a free port: CI may have 3000 taken), ask what the UI will offer,
    stop it with Ctrl-C as a user would."""
    port = _free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            f"{command} --host 127.0.0.1 --port {port}", shell=True, cwd=cwd, env=env,
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while True:
                assert process.poll() is None, log.read_text()[-3000:]
                try:
                    return _graphql(port, UI_QUERY)["data"]
                except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError):
                    assert time.monotonic() < deadline, "dg dev: no answer within 180 s"
                    time.sleep(1)
        finally:
            _stop(process)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.slow
def test_every_readme_command_runs_on_the_real_ml100k(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    project = tmp_path / "inttower"
    project.mkdir()
    _copy_project(project)
    small = {**SMALL_PARAMS, "train.threads": 2}
    write_params(project / "params.yaml", small)
    assert yaml.safe_load((project / "params.yaml").read_text())["train"]["epochs"] == 1
    (project / ".dagster_home").mkdir()
    shutil.copy(project / "scripts/dagster.yaml", project / ".dagster_home/dagster.yaml")
    _git(project, "init", "-q", "-b", "main")
    env = _activated_env(project, movielens_mirror)
    subprocess.run(["git", "add", "-A"], cwd=project, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "the project"], cwd=project, env=env, check=True)

    ran, skipped = [], []
    for command, reason in readme_commands((ROOT / "README.md").read_text()):
        if reason:
            skipped.append(f"{_bare(command)}: {reason}")
            continue
        started = time.perf_counter()
        if _bare(command) in LONG_RUNNING:
            ui = _serve_and_ask(_bare(command), project, env, tmp_path / "dg_dev.log")
            partitioned = [
                n for n in ui["assetNodes"] if n["isMaterializable"] and n["isPartitioned"]
            ]
            assert partitioned == []  # "Materialize all" asks for no partitions
            weeks = ui["backtest"][0]["partitionKeys"]
            assert weeks[0] == "1997-09-29" and len(weeks) == 30  # registered by make run's ingest
        else:
            result = subprocess.run(
                command, shell=True, cwd=project, env=env, capture_output=True, text=True,
                timeout=COMMAND_TIMEOUT, check=False,
            )  # fmt: skip
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"README command failed: {command}\n{output[-4000:]}"
            assert "SupersessionWarning" not in output, command
        ran.append(f"{_bare(command)} ({time.perf_counter() - started:.0f} s)")
    print("ran:", *ran, "skipped:", *skipped, sep="\n  ")
    assert any(line.startswith("make run") for line in ran)
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["test"]["auc"] > 0.6
