"""Our own exception types: each carries the file, row, column or parameter at fault."""

from __future__ import annotations

from pathlib import Path


class InttowerError(Exception):
    """Base of every error the CLI reports in one line (no traceback unless asked)."""


class ConfigError(InttowerError):
    """A parameter is missing, unknown or out of range; `key` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"params: {key}: {message}")


class DataSourceError(InttowerError):
    """A source file is missing, unreadable or malformed at a given line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}" if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {message}")


class DownloadError(InttowerError):
    """A download failed, was truncated, or did not match its published checksum."""


class UnsafeArchiveError(InttowerError):
    """An archive holds an absolute path, a `..` entry or a link; nothing was extracted."""


class ValidationFailed(InttowerError):
    """Data broke its schema; carries a per-check summary and a sample of failing rows."""

    def __init__(self, table: str, source: str, failures: list[dict], sample: str) -> None:
        self.table = table
        self.source = source
        self.failures = failures
        self.sample = sample
        checks = "; ".join(
            f"{f['check']} on {f['column']} ({f['count']} rows)" for f in failures[:5]
        )
        super().__init__(f"{source}: {table} failed validation: {checks}\n{sample}")


class StageInputError(InttowerError):
    """A stage's input is missing: an upstream stage has not run or its output was removed."""
