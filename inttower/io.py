"""Atomic artifact writers: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        if temporary.exists():
            os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are shared
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_parquet(frame: pl.DataFrame, target: Path | str) -> Path:
    with atomic_path(target) as temporary:
        frame.write_parquet(temporary, statistics=True)
    return Path(target)


def write_json(payload: Any, target: Path | str) -> Path:
    with atomic_path(target) as temporary:
        temporary.write_text(
            json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n"
        )
    return Path(target)


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def file_md5(path: Path | str, chunk: int = 1 << 20) -> str:
    """md5 as DVC and GroupLens publish it."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
