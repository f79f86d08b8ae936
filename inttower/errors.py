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


class ParamsFileError(ConfigError):
    """params.yaml itself cannot be read: bad bytes, bad YAML syntax, or no mapping at all."""

    def __init__(
        self, path: Path | str, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        # A ConfigError (callers catching those still do), but located by file and position:
        # there is no key yet when the file does not parse.
        self.key = "<file>"
        self.path = Path(path)
        self.line = line
        self.column = column
        where = str(self.path)
        where += f":{line}" if line is not None else ""
        where += f":{column}" if line is not None and column is not None else ""
        InttowerError.__init__(self, f"params: {where}: {message}")


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
        # the first line alone names the file, the first failing line and what broke
        first = _first_failing(sample)
        at = f"; first at {first}" if first else ""
        super().__init__(f"{source}: {table} failed validation: {checks}{at}\n{sample}")


def _first_failing(sample: str) -> str | None:
    """`<file>:<line> <what failed>` of the sample table's first row, or None."""
    rows = sample.splitlines()
    if len(rows) < 2:
        return None
    cells = [cell for cell in rows[1].split("  ") if cell.strip()]
    return " ".join(cell.strip() for cell in cells[:2]) if len(cells) >= 2 else None


class StageInputError(InttowerError):
    """A stage's input is missing: an upstream stage has not run or its output was removed."""


class ArtifactError(InttowerError):
    """A stage's artifact exists but is corrupt or truncated (e.g. a copy cut short)."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {message}")
