"""Fixtures for the Dagster front end: a small-params copy of the project as a git + DVC repo,
and one in-process retrain of it on the real ml-100k that several tests read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.definitions import build_definitions
from dagster_project.resources import StorageResource

from .helpers import copy_project, dvc, git


@dataclass
class Retrain:
    """One retrain_job run of the project copy, with the instance that recorded it."""

    project: Path
    remote: Path
    instance: dg.DagsterInstance
    result: dg.ExecuteInProcessResult
    defs: dg.Definitions


@pytest.fixture(scope="session")
def retrain(tmp_path_factory: pytest.TempPathFactory, movielens_mirror: Path) -> Retrain:
    """The project copied into a git + DVC repo with a local-directory remote, retrained once in
    process (an instance on disk), then its dvc.lock and reports committed to git."""
    base = tmp_path_factory.mktemp("dvc")
    project = copy_project(base / "project")
    remote = base / "remote"
    git("init", "-q", "-b", "main", cwd=project)
    dvc("init", "-q", cwd=project)
    dvc("remote", "add", "-d", "local", str(remote), cwd=project)
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", "project", cwd=project)

    storage = StorageResource(
        root=str(project), data_dir=str(project / "data"), mirror=str(movielens_mirror)
    )
    defs = build_definitions(project / "params.yaml", storage)
    # on disk, so a webserver can read what it recorded (the UI's stale status)
    home = base / "dagster_home"
    home.mkdir()
    instance = dg.DagsterInstance.local_temp(tempdir=str(home))
    result = defs.resolve_job_def("retrain_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    if result.success:
        git("add", "-A", cwd=project)
        git("commit", "-q", "-m", "retrain", cwd=project)
    return Retrain(project, remote, instance, result, defs)
