"""One run at a time per data directory, whichever front end starts it.

The lock is a file in the data directory (outside every output folder) holding its holder as
JSON. Two mechanisms together make it hold for a whole run:

- an exclusive `flock` while a process works: the kernel drops it when the process dies, even
  under SIGKILL, so a crashed run never blocks the next one;
- the holder record, which outlives one process when the run is a *session* of several:
  `dvc repro` runs each stage as its own `inttower <stage>` process, so those processes record
  the `dvc` process (their nearest ancestor without DVC_STAGE) as the holder. Between two of its stages no process holds the
  flock, but the record names a live `dvc repro` and every other front end stays out. The record
  is stale once that process is gone (checked by pid and process start time), and is taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inttower.errors import InttowerError
from inttower.pipeline.catalog import RUN_LOCK

# Set by DVC for every stage command it runs (dvc/stage/run.py): the command is one step of a
# `dvc repro` (or `dvc exp run`) session whose process is our parent.
DVC_STAGE_ENV = "DVC_STAGE"


class RunLocked(InttowerError):
    """Another run holds the data directory; names the holder."""


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if there is none:
    with the pid it identifies a process even after its pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields start after the last ')'
    return stat.rsplit(")", 1)[1].split()[19]


def _parent_of(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def _in_stage(pid: int) -> bool:
    """Whether `pid` was started with DVC_STAGE set: DVC sets it only for its stage commands."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(entry.startswith(b"DVC_STAGE=") for entry in environ.split(b"\0"))


def _session_pid() -> int:
    """The `dvc` process this stage belongs to: the nearest ancestor started without
    DVC_STAGE. DVC runs a stage through `sh -c CMD`, and whether that shell execs the command or
    waits for it depends on the shell and the command, so the parent may be the shell."""
    pid = os.getppid()
    for _ in range(16):
        parent = _parent_of(pid)
        if not _in_stage(pid) or parent <= 1:
            return pid
        pid = parent
    return pid


def _alive(record: dict[str, Any]) -> bool:
    if record.get("host") != socket.gethostname():
        return True  # another machine's process: we cannot tell, so it holds
    pid = int(record.get("pid", 0))
    return pid > 0 and _process_start(pid) == record.get("pid_start")


def _command_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"pid {pid}"
    words = [word for word in raw.decode(errors="replace").split("\0") if word]
    if len(words) > 1 and Path(words[0]).name.startswith("python"):
        words = words[1:]  # `python …/bin/dvc repro` reads better as `dvc repro`
    if not words:
        return f"pid {pid}"
    return shlex.join([Path(words[0]).name, *words[1:4]])


def holder_record(description: str | None = None) -> dict[str, Any]:
    """Who is running: this process, or the DVC session whose stage this process is."""
    session = os.environ.get(DVC_STAGE_ENV)
    pid = _session_pid() if session else os.getpid()
    command = _command_of(pid) if session else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    return {
        "command": description or command,
        "pid": pid,
        "pid_start": _process_start(pid),
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "session": bool(session),
        **({"dvc_stage": session} if session else {}),
    }


def describe(record: dict[str, Any]) -> str:
    stage = f", stage {record['dvc_stage']}" if record.get("dvc_stage") else ""
    return (
        f"{record.get('command', '?')} (pid {record.get('pid', '?')} on {record.get('host', '?')}"
        f", since {record.get('started_at', '?')}{stage})"
    )


def _read_record(handle: int) -> dict[str, Any]:
    os.lseek(handle, 0, os.SEEK_SET)
    raw = os.read(handle, 1 << 16)
    try:
        record = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {}  # a torn write of a process killed mid-record: nobody holds it
    return record if isinstance(record, dict) else {}


def _write_record(handle: int, record: dict[str, Any] | None) -> None:
    os.ftruncate(handle, 0)
    if record:
        os.lseek(handle, 0, os.SEEK_SET)
        os.write(handle, (json.dumps(record, sort_keys=True) + "\n").encode())


@contextlib.contextmanager
def run_lock(data_dir: Path | str, description: str | None = None) -> Iterator[dict[str, Any]]:
    """Hold the data directory for this block; raise RunLocked at once, naming the holder, when
    another run has it. A holder that died (SIGKILL included) is taken over."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / RUN_LOCK
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = _read_record(handle)
            raise RunLocked(
                f"{data_dir}: in use by {describe(held) if held else 'another process'}; "
                "wait for it to finish (one run at a time per data folder)"
            ) from None
        mine = holder_record(description)
        held = _read_record(handle)
        same_session = held.get("pid") == mine["pid"] and held.get("host") == mine["host"]
        if held and held.get("session") and not same_session and _alive(held):
            raise RunLocked(
                f"{data_dir}: in use by {describe(held)}, between two of its stages; "
                "wait for it to finish (one run at a time per data folder)"
            )
        if same_session and held.get("pid_start") == mine["pid_start"]:
            mine["started_at"] = held.get("started_at", mine["started_at"])
        _write_record(handle, mine)
        try:
            yield mine
        finally:
            # a DVC session keeps its record until its `dvc` process ends; anything else clears it
            if not mine["session"]:
                _write_record(handle, None)
    finally:
        os.close(handle)  # closing drops the flock
