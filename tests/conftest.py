"""Shared fixtures: the real MovieLens mirror (never copied into the repo)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MIRROR = ROOT.parent / "shared" / "movielens"

# Tests run stages from temporary directories: make the mirror path absolute once, up front.
if os.environ.get("MOVIELENS_MIRROR"):
    os.environ["MOVIELENS_MIRROR"] = str(Path(os.environ["MOVIELENS_MIRROR"]).resolve())


@pytest.fixture(scope="session")
def movielens_mirror() -> Path:
    """The offline mirror: $MOVIELENS_MIRROR, else ../shared/movielens beside the repo."""
    mirror = Path(os.environ.get("MOVIELENS_MIRROR") or DEFAULT_MIRROR).resolve()
    if not (mirror / "ml-100k" / "u.data").exists():
        pytest.skip(f"real ml-100k not found under {mirror}: set MOVIELENS_MIRROR")
    os.environ["MOVIELENS_MIRROR"] = str(mirror)
    return mirror


@pytest.fixture(scope="session")
def ml100k_dir(movielens_mirror: Path) -> Path:
    return movielens_mirror / "ml-100k"


@pytest.fixture(scope="session")
def ml1m_meta_dir(movielens_mirror: Path) -> Path:
    """Real ml-1m users.dat and movies.dat (no ratings): `::` separators, latin-1 titles."""
    directory = movielens_mirror / "ml-1m-meta"
    if not (directory / "movies.dat").exists():
        pytest.skip(f"ml-1m-meta not found under {movielens_mirror}")
    return directory


@pytest.fixture(autouse=True)
def _no_dagster_instance_left_current() -> Iterator[None]:
    """A test that leaves a Dagster instance entered breaks later, unrelated tests.

    Dagster keeps the entered instance's state storage as the process's current one
    (a context variable holding a weak reference): once that instance is collected,
    every later `resolve_job_def` fails with "undefined DagsterInstance weakref",
    in whichever test the garbage collector picks. Fail the test that leaked it.
    """
    yield
    if "dagster" not in sys.modules:
        return
    from dagster._core.storage.defs_state.base import DefsStateStorage

    leaked = DefsStateStorage.get()
    if leaked is not None:
        pytest.fail(
            f"a Dagster instance is still entered after the test ({type(leaked).__name__}): "
            "use `with` on build_schedule_context / build_sensor_context / the instance"
        )
