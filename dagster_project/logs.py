"""Forward the library's Python logging into the Dagster run log, so training progress shows."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

LIBRARY_LOGGER = "inttower"


class _RunLogHandler(logging.Handler):
    """Re-emits each record on a Dagster log manager (which is itself a logging.Logger)."""

    def __init__(self, run_log: logging.Logger) -> None:
        super().__init__()
        self.run_log = run_log
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.run_log.log(record.levelno, self.format(record))
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def forward_library_logs(run_log: logging.Logger, level: int = logging.INFO) -> Iterator[None]:
    """While a stage runs, send `inttower.*` records (one line per epoch) to `context.log`."""
    library = logging.getLogger(LIBRARY_LOGGER)
    handler = _RunLogHandler(run_log)
    level_before = library.level
    # the library logs at INFO; without a level here the root's WARNING would drop those lines
    if library.level == logging.NOTSET or library.level > level:
        library.setLevel(level)
    library.addHandler(handler)
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.setLevel(level_before)
