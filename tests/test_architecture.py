"""The layers keep their places: the `inttower` library knows nothing of Dagster or DVC (the
front ends, `dagster_project/` and `inttower_dvc/`, hold them), and its packages are rooms by
concern (docs/architecture.md); stages hand typed summaries, not dicts, to the front ends."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path

from inttower.pipeline.registry import STAGE_LIST

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "inttower"
FRONT_END = LIBRARY / "cli.py"  # the command line: it hands the library a DVC versioning
FORBIDDEN = {"dagster", "dagster_project", "dvc", "dvc_data", "inttower_dvc"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_library_module_imports_dagster_or_dvc() -> None:
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted(LIBRARY.rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN
        and not (path == FRONT_END and name.startswith("inttower_dvc"))
    }
    assert not offending


def test_no_library_module_runs_a_dvc_or_git_command() -> None:
    """A command line is a list whose first item is the program: no `"dvc"` or `"git"` there."""
    offending = []
    for path in sorted(LIBRARY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.List | ast.Tuple) and node.elts:
                first = node.elts[0]
                if isinstance(first, ast.Constant) and first.value in ("dvc", "git"):
                    offending.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offending


def test_importing_every_library_module_loads_neither_dagster_nor_dvc() -> None:
    """In a fresh process: every module of the library imported, then what came with them."""
    script = (
        "import importlib, json, pkgutil, sys\n"
        "import inttower\n"
        "for module in pkgutil.walk_packages(inttower.__path__, 'inttower.'):\n"
        "    if module.name != 'inttower.cli':\n"
        "        importlib.import_module(module.name)\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert "inttower" in loaded
    assert not loaded & FORBIDDEN, loaded & FORBIDDEN


def test_the_top_level_holds_only_the_entry_points_and_the_shared_basics() -> None:
    modules = sorted(path.name for path in LIBRARY.glob("*.py"))
    assert modules == ["__init__.py", "cli.py", "errors.py", "io.py"]
    packages = sorted(path.name for path in LIBRARY.iterdir() if (path / "__init__.py").exists())
    assert packages == [
        "config", "data", "evaluation", "features", "lifecycle", "models", "pipeline",
        "serving", "training",
    ]  # fmt: skip


def test_every_stage_returns_a_frozen_typed_summary() -> None:
    for stage in STAGE_LIST:
        returned = typing.get_type_hints(stage.run)["return"]
        assert dataclasses.is_dataclass(returned), f"{stage.name} returns {returned}"
        assert returned.__dataclass_params__.frozen, f"{stage.name}: {returned.__name__}"
        assert callable(returned.to_json) and callable(returned.timings), stage.name
