"""A stage's code dependencies: the import closure of its function inside `inttower/`.

DVC deps and Dagster code versions both come from here, so editing any module a stage can
execute reruns it, and no list of files is kept by hand. The closure is static (read with
`ast`, nothing imported) and conservative: in the stage function's own module only the
module-level imports and the function's own body count; every module reached from there counts
with all of its imports, module-level or local, since any of its functions may run.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from functools import cache
from pathlib import Path

PACKAGE = "inttower"
PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_DIR.parent


def module_file(module: str) -> Path | None:
    """The source file of an `inttower.*` module or package, or None when there is none."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    relative = Path(*module.split(".")[1:])
    for candidate in (PACKAGE_DIR / relative / "__init__.py", PACKAGE_DIR / f"{relative}.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(nodes: list[ast.AST]) -> set[str]:
    """Every `inttower.*` module named by the import statements among `nodes` (walked deeply)."""
    found: set[str] = set()
    for node in (inner for outer in nodes for inner in ast.walk(outer)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from inttower.features import encoded` imports a submodule, not a name
            found |= {
                f"{node.module}.{alias.name}"
                for alias in node.names
                if module_file(f"{node.module}.{alias.name}") is not None
            }
    return {name for name in found if module_file(name) is not None}


def _with_parents(module: str) -> set[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = module.split(".")
    return {".".join(parts[:index]) for index in range(1, len(parts) + 1)}


@cache
def _module_imports(module: str) -> frozenset[str]:
    path = module_file(module)
    assert path is not None, module
    return frozenset(_imported([ast.parse(path.read_text(), str(path))]))


def _top_level_imports(module: str) -> set[str]:
    path = module_file(module)
    assert path is not None, module
    tree = ast.parse(path.read_text(), str(path))
    top = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return _imported(list(top))


def closure(modules: set[str]) -> set[str]:
    """The modules reachable from `modules` (with their parent packages), all imports counted."""
    seen: set[str] = set()
    pending = {parent for module in modules for parent in _with_parents(module)}
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        for imported in _module_imports(module):
            pending |= _with_parents(imported) - seen
    return seen


def function_modules(function: Callable[..., object]) -> set[str]:
    """Every `inttower` module `function` can execute: its own module's top-level imports and its
    body's imports, then their whole closure."""
    module = function.__module__
    source = inspect.getsource(function)
    body = ast.parse(inspect.cleandoc("\n" + source) if source[:1].isspace() else source)
    start = {module} | _top_level_imports(module) | _imported([body])
    # the stage's own module counts for its file, not for every function beside this one
    parents = _with_parents(module) - {module}
    return closure((start - {module}) | parents) | {module}


def function_files(function: Callable[..., object]) -> list[str]:
    """`function_modules` as source files relative to the repo root, sorted."""
    files = {module_file(module) for module in function_modules(function)}
    return sorted(path.relative_to(REPO_ROOT).as_posix() for path in files if path is not None)
