"""The two commands the README opens with are the ones CI and users run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import ROOT


def _make_dry_run(target: str) -> list[str]:
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, check=True
    )
    return [line for line in result.stdout.splitlines() if line and not line.startswith("make")]


def test_ci_runs_make_test_and_make_test_runs_the_suite() -> None:
    commands = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert commands[-1] == "MOVIELENS_MIRROR=../shared/movielens make test"
    assert _make_dry_run("test")[-1] == ".venv/bin/python -m pytest -q"
    quick_start = (ROOT / "README.md").read_text().split("## The pipeline")[0]
    assert "make run" in quick_start and "make test" in quick_start


def test_make_run_launches_the_named_pipeline_job_in_a_project_dagster_home() -> None:
    commands = _make_dry_run("run")
    assert commands[-1] == ".venv/bin/dg launch --job inttower_pipeline"  # [tool.dg] finds the code
    # the project's own folder, unless the environment names one (activation exports it)
    expected = Path(os.environ.get("DAGSTER_HOME") or ROOT / ".dagster_home").resolve()
    made = [line for line in commands if line.startswith("mkdir -p ")]
    assert [Path(line.removeprefix("mkdir -p ").strip('"')).resolve() for line in made] == [
        expected
    ]
    assert ".dagster_home/" in (ROOT / ".gitignore").read_text().splitlines()
