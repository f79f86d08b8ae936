"""The DVC layer: the `dvc` and `git` command lines, run as subprocesses (DVC is never imported,
and lives in its own environment, see scripts/install.sh). The CLI's retrain and the Dagster
versioning step both go through here, so a retrain is versioned the same way from either."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from inttower.errors import InttowerError
from inttower.pipeline.paths import Paths


class DvcError(InttowerError):
    """A dvc (or git) command failed; carries the command and its own message."""


def dvc_executable() -> str:
    """DVC lives in its own environment (scripts/install.sh), linked beside this interpreter."""
    beside = Path(sys.executable).parent / "dvc"
    found = str(beside) if beside.exists() else shutil.which("dvc")
    if found is None:
        raise DvcError("`dvc` not found beside this Python or on PATH: run scripts/install.sh")
    return found


def _run(command: list[str], root: Path, check: bool) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
        check=False,
    )
    if check and result.returncode != 0:
        message = " ".join((result.stderr or result.stdout).split())
        raise DvcError(
            f"`{Path(command[0]).name} {' '.join(command[1:])}` failed in {root}: {message}"
        )
    return result


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `dvc ARGS` in `root`; raise DvcError on failure if `check`."""
    return _run([dvc_executable(), *args], Path(root), check)


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["git", *args], Path(root), check)


def default_remote(root: Path) -> str | None:
    """The remote `dvc push` would use, or None (`dvc remote default` exits 1 when none is set)."""
    result = dvc(root, "remote", "default", check=False)
    name = result.stdout.strip()
    return name if result.returncode == 0 and name else None


def git_remote(root: Path) -> str | None:
    """The git remote experiments are pushed to: `origin`, else the only one, else None."""
    result = git(root, "remote", check=False)
    names = result.stdout.split() if result.returncode == 0 else []
    if "origin" in names:
        return "origin"
    return names[0] if len(names) == 1 else None


def why_not_versionable(
    root: Path, data_dir: Path, params_file: Path, overrides: dict
) -> str | None:
    """A reason to skip versioning, or None. dvc.lock must describe what `dvc repro` would build:
    outputs under <root>/data, made from <root>/params.yaml without run-config overrides."""
    if not (root / ".dvc").is_dir():
        return f"{root.resolve()} is not a DVC repository (run `dvc init` there)"
    if data_dir.resolve() != (root / "data").resolve():
        return f"outputs live in {data_dir}, but dvc.yaml tracks {root / 'data'}"
    if params_file.resolve() != (root / "params.yaml").resolve():
        return f"params came from {params_file}, but dvc.yaml reads {root / 'params.yaml'}"
    if overrides:
        return f"this run overrode params {sorted(overrides)}; dvc.lock would not match them"
    return None


def locked_hashes(root: Path) -> dict[str, str]:
    """Every output's md5 as dvc.lock now records it."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {
        out["path"]: out.get("md5", "")
        for stage in lock.get("stages", {}).values()
        for out in stage.get("outs", [])
    }


def why_no_experiment(root: Path) -> str | None:
    """Why `dvc exp save` cannot run here (it needs a git repository with a commit), or None."""
    head = git(root, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    if head.returncode == 0:
        return None
    inside = git(root, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0:
        return f"{Path(root).resolve()} is not a git repository: no experiment (dvc commit only)"
    return "the git repository has no commit yet: no experiment (commit once; dvc commit only)"


def experiment_name(started: datetime) -> str:
    """`retrain-20261202-031500`: experiments named by the time their retrain started."""
    return started.strftime("retrain-%Y%m%d-%H%M%S")


def save_experiment(root: Path, name: str, include: list[Path]) -> dict[str, str | None]:
    """`dvc commit -f` (dvc.lock records what was built), then `dvc exp save -n NAME`, with the
    registry files included even when git does not track them; the experiment ref is pushed with
    `dvc exp push` (cache too) when a git remote is set, else the cache with `dvc push` when a
    DVC remote is. Nothing is committed to the user's branch."""
    dvc(root, "commit", "--force")
    blocker = why_no_experiment(root)
    if blocker:
        remote = default_remote(root)
        if remote:
            dvc(root, "push")
        return {"experiment": None, "skipped": blocker, "dvc_remote": remote, "git_remote": None}
    untracked = [
        str(path.resolve().relative_to(root.resolve()))
        for path in include
        if path.exists() and path.resolve().is_relative_to(root.resolve())
    ]
    options = [option for path in untracked for option in ("--include-untracked", path)]
    dvc(root, "exp", "save", "--force", "--name", name, *options)
    remote, origin = default_remote(root), git_remote(root)
    if origin:
        dvc(root, "exp", "push", origin, name)
    elif remote:
        dvc(root, "push")
    return {"experiment": name, "dvc_remote": remote, "git_remote": origin}


def restore_experiment(root: Path, name: str) -> None:
    """The workspace of experiment `name`: fetched from the git remote when it is not here
    (`dvc exp pull`, cache included), applied, and its outputs checked out (or pulled)."""
    listed = dvc(root, "exp", "list", "--all-commits", "--name-only", check=False).stdout.split()
    if name not in listed:
        origin = git_remote(root)
        if origin is None:
            raise DvcError(f"experiment {name} is not here and no git remote is set to fetch it")
        dvc(root, "exp", "pull", origin, name)
    dvc(root, "exp", "apply", name)
    if default_remote(root):
        dvc(root, "pull")
    else:
        dvc(root, "checkout")


def experiment_files(root: Path, paths: Paths) -> list[Path]:
    """What an experiment must carry even where git does not track it yet: dvc.lock and the
    reports (metrics for `dvc exp show`; the champion record, its history and the decision)."""
    return [root / "dvc.lock", paths.reports]


@dataclass(frozen=True)
class DvcVersioning:
    """A retrain kept as a DVC experiment of the project at `root`
    (`inttower.lifecycle.retrain.Versioning`): only when dvc.lock can describe it, i.e. the
    outputs are the project's data/, made from its params.yaml with no run-config overrides."""

    root: Path
    params_file: Path
    overrides: dict[str, Any] = field(default_factory=dict)

    def why_not(self, paths: Paths) -> str | None:
        reason = why_not_versionable(self.root, paths.data, self.params_file, self.overrides)
        return reason or why_no_experiment(self.root)

    def experiment_name(self, started: datetime) -> str:
        return experiment_name(started)

    def save(self, experiment: str, paths: Paths) -> dict[str, Any]:
        return save_experiment(self.root, experiment, experiment_files(self.root, paths))
