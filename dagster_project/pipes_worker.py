"""The torchrun worker Dagster launches: rank 0 talks Dagster Pipes, every rank trains.

`dagster_pipes` is Dagster's small protocol library (no Dagster install needed in an image);
the training itself is `inttower.training.worker.run_worker`, as under the CLI.
"""

from __future__ import annotations

import logging
import os
import sys

from dagster_pipes import PipesContext, open_dagster_pipes

from inttower.training.worker import run_worker


class _ToPipes(logging.Handler):
    """Library log lines (epochs, early stopping) into the Dagster run's logs."""

    def __init__(self, pipes: PipesContext) -> None:
        super().__init__(level=logging.INFO)
        self.pipes = pipes

    def emit(self, record: logging.LogRecord) -> None:
        log = self.pipes.log
        (log.warning if record.levelno >= logging.WARNING else log.info)(record.getMessage())


def main() -> int:
    if os.environ.get("RANK", "0") != "0":
        run_worker()
        return 0
    with open_dagster_pipes() as pipes:
        handler = _ToPipes(pipes)
        logging.getLogger("inttower").addHandler(handler)
        try:
            summary, _ = run_worker()
        finally:
            logging.getLogger("inttower").removeHandler(handler)
        if summary is None:
            raise RuntimeError("rank 0 returned no training summary")
        pipes.report_asset_materialization(
            metadata={
                "world_size": summary.world_size,
                "reported_by": "rank 0 (Dagster Pipes)",
                "pipes_valid_auc": round(float(summary.valid_auc), 4),
                "pipes_samples_per_second": round(summary.timing.samples_per_second),
                "pipes_epoch_seconds": ", ".join(f"{s:.1f}" for s in summary.timing.epoch_seconds),
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
