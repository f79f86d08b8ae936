"""Atomic artifact writers: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inttower.errors import ArtifactError, StageInputError
from inttower.pipeline.catalog import writer_of

if TYPE_CHECKING:
    import polars as pl
    import torch

_UMASK = os.umask(0)
os.umask(_UMASK)

# Where temporary files are written while a stage runs. Outside every output folder, so a run
# killed mid-write can never leave a `.part` file that DVC or Dagster would hash as an output.
_STAGING: contextvars.ContextVar[Path | None] = contextvars.ContextVar("staging", default=None)


@contextlib.contextmanager
def staging_area(directory: Path | str) -> Iterator[Path]:
    """Write every atomic file of this block through `directory` (same filesystem as the outputs,
    outside any output folder); leftovers of an earlier killed run there are removed first."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob(".*.part"):
        leftover.unlink(missing_ok=True)
    token = _STAGING.set(directory)
    try:
        yield directory
    finally:
        _STAGING.reset(token)


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path (in the staging area, else beside `target`); rename it over
    `target` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _STAGING.get() or target.parent
    staging.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=staging)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        if temporary.exists():
            os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are shared
        _replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _replace(temporary: Path, target: Path) -> None:
    try:
        os.replace(temporary, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # the staging area sits on another filesystem: copy beside the target, then rename
        beside = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            shutil.copyfile(temporary, beside)
            os.replace(beside, target)
        finally:
            beside.unlink(missing_ok=True)


def write_parquet(frame: pl.DataFrame, target: Path | str) -> Path:
    with atomic_path(target) as temporary:
        frame.write_parquet(temporary, statistics=True)
    return Path(target)


def write_json(payload: Any, target: Path | str, sort_keys: bool = True) -> Path:
    """Pretty JSON, atomically; keys sorted unless the payload's own order is the point (the
    metrics file, whose first keys are the first columns of `dvc exp show`)."""
    with atomic_path(target) as temporary:
        temporary.write_text(
            json.dumps(payload, indent=2, sort_keys=sort_keys, default=_jsonable) + "\n"
        )
    return Path(target)


def append_jsonl(record: dict[str, Any], target: Path | str) -> Path:
    """Append one JSON line (a log, never a versioned artifact): one O_APPEND write per record,
    so concurrent writers never interleave inside a line."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, default=_jsonable) + "\n"
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(line)
    return target


def read_json(path: Path | str) -> Any:
    """A JSON artifact; a missing file is a StageInputError, a cut-short one an ArtifactError."""
    path = _artifact(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _corrupt(path, "JSON", f"byte 0x{exc.object[exc.start]:02x} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
        raise _corrupt(path, "JSON", reason) from None


class Summary:
    """What a stage hands its front end (a frozen dataclass beside the code that makes it): the
    CLI prints `to_json()`, Dagster reads the attributes, the run log keeps `timings()`."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def timings(self) -> dict[str, Any]:
        """Facts of this process (seconds, throughput): the run log's, never a versioned file's."""
        return {}


def known_fields(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """`raw`'s keys that name a field of dataclass `cls`: a record read back from JSON written by
    another version keeps what this version knows."""
    names = {item.name for item in fields(cls)}
    return {key: value for key, value in raw.items() if key in names}


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


# --- reading artifacts: a missing or corrupt file is one clear line, not a library traceback ---


def _artifact(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise StageInputError(f"{path} not found: run the stage that produces it first")
    return path


def _corrupt(path: Path, kind: str, reason: str) -> ArtifactError:
    reason = reason.strip().splitlines()[0] if reason.strip() else "unreadable"
    stage = writer_of(path)
    rerun = f"`inttower {stage}`" if stage else "the stage that writes it"
    return ArtifactError(path, f"corrupt or truncated {kind} ({reason}); rerun {rerun}")


def _parquet_reason(exc: pl.exceptions.ComputeError) -> str:
    return str(exc).removeprefix("parquet: ").removeprefix("File out of specification: ")


def read_parquet(path: Path | str, **kwargs: Any) -> pl.DataFrame:
    """One parquet artifact (`kwargs` go to `pl.read_parquet`); missing or corrupt: one line."""
    import polars as pl

    path = _artifact(path)
    try:
        return pl.read_parquet(path, **kwargs)
    except pl.exceptions.ComputeError as exc:  # bad footer, bad page, failed decompression
        raise _corrupt(path, "parquet", _parquet_reason(exc)) from None


def read_parquet_blocks(path: Path | str, rows: int) -> Iterator[pl.DataFrame]:
    """A parquet artifact in consecutive blocks of `rows` rows, never read whole: each block is a
    slice of a lazy scan, which reads only the row groups it spans."""
    import polars as pl

    path = _artifact(path)
    try:
        total = pl.scan_parquet(path).select(pl.len()).collect().item()
        for start in range(0, total, rows):
            yield pl.scan_parquet(path).slice(start, rows).collect()
    except pl.exceptions.ComputeError as exc:
        raise _corrupt(path, "parquet", _parquet_reason(exc)) from None


def read_parquet_schema(path: Path | str) -> pl.Schema:
    """Column names and dtypes of a parquet artifact, from its footer alone."""
    import polars as pl

    path = _artifact(path)
    try:
        return pl.Schema(pl.read_parquet_schema(path))
    except pl.exceptions.ComputeError as exc:
        raise _corrupt(path, "parquet", _parquet_reason(exc)) from None


def load_tensors(path: Path | str) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors artifact (torch is imported only here: keeps this module
    light for the data stages)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = _artifact(path)
    try:
        return load_file(str(path))
    except SafetensorError as exc:
        reason = str(exc).removeprefix("Error while deserializing header: ")
        raise _corrupt(path, "safetensors", reason) from None
