"""A torchrun worker: one rank of a data-parallel training run (inttower/training/distributed.py
launches it), training with the launcher's params snapshot."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from inttower.config import parse_params
from inttower.io import staging_area, write_json
from inttower.pipeline.paths import Paths
from inttower.training.card import TrainSummary
from inttower.training.distributed import WORKER_MODULE
from inttower.training.train import train_model


def run_worker(argv: list[str] | None = None) -> tuple[TrainSummary | None, Path]:
    """A torchrun worker: train with the launcher's params snapshot. Returns rank 0's summary
    (None on the other ranks), already written where the launcher reads it, and that path."""
    parser = argparse.ArgumentParser(prog=WORKER_MODULE)
    parser.add_argument("--params", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--reports-dir", required=True)
    parser.add_argument("--summary", required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("INTTOWER_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s rank {os.environ.get('RANK', '?')} %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    params = parse_params(json.loads(Path(args.params).read_text()))
    paths = Paths(data=Path(args.data_dir), reports=Path(args.reports_dir))
    with staging_area(paths.staging):
        summary = train_model(params, paths, resume=args.resume, progress=False)
    if summary is not None:  # rank 0
        write_json(summary.to_json(), Path(args.summary))
    return summary, Path(args.summary)


def main(argv: list[str] | None = None) -> int:
    run_worker(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
