"""Training at scale on synthetic events: samples/s, epoch time and peak RSS vs events, for one
process and for torchrun + DDP with several (gloo on this CPU).

The data stages run once per size (in this process); each training run is `inttower train` in a
fresh subprocess tree, one epoch by default, and its peak RSS is the largest of the processes
it waited for (for DDP: the largest rank, each rank mapping the same split files). Usage:
    python benchmarks/train_scale.py --events 1000000 --nproc 1,2
    python benchmarks/train_scale.py --events 1000000,5000000 --nproc 1 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_STAGES = ["source", "ingest", "validate", "split", "features", "encoders", "encode"]


def _data(events: int, data_dir: Path) -> dict[str, float]:
    from inttower.config import load_params
    from inttower.pipeline.paths import Paths
    from inttower.pipeline.registry import STAGES

    params = load_params(ROOT / "params.yaml", synthetic(events))
    paths = Paths.for_data(data_dir)
    seconds = {}
    for name in DATA_STAGES:
        started = time.perf_counter()
        STAGES[name].run(params, paths)
        seconds[name] = round(time.perf_counter() - started, 1)
    return seconds


def synthetic(events: int) -> dict[str, object]:
    return {
        "data.dataset": "synthetic",
        "data.synthetic.n_events": events,
        "data.synthetic.n_users": max(1000, events // 150),
        "data.synthetic.n_items": max(500, events // 300),
    }


def _train(events: int, data_dir: Path, nproc: int, epochs: int) -> dict[str, float]:
    command = [sys.executable, "-m", "inttower.cli", "train", "--data-dir", str(data_dir)]
    for key, value in {**synthetic(events), "train.nproc": nproc, "train.epochs": epochs,
                       "train.device": "cpu"}.items():  # fmt: skip
        command += ["--set", f"{key}={json.dumps(value)}"]
    # a fresh wrapper per run: its RUSAGE_CHILDREN peak is this run's alone (the largest of the
    # processes it waited for, in KiB), printed as its last line
    wrapper = (
        "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr[-2000:])
    *lines, peak = result.stdout.strip().splitlines()
    result.stdout = "\n".join(lines)
    summary = json.loads(result.stdout.strip().splitlines()[-1])["train"]
    timing = summary["timing"]
    return {
        "samples_per_second": timing["samples_per_second"],
        "epoch_seconds": max(timing["epoch_seconds"]),
        "wall_seconds": round(wall, 1),
        "peak_rss_gib": round(int(peak) / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1000000")
    parser.add_argument("--nproc", default="1,2")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    print("| events | nproc | samples/s | epoch s | wall s (incl. start-up) | peak RSS GiB |")
    print("|---|---|---|---|---|---|")
    for events in (int(value) for value in args.events.split(",")):
        with tempfile.TemporaryDirectory(prefix="inttower-scale-") as scratch:
            data_dir = Path(scratch) / "data"
            seconds = _data(events, data_dir)
            print(f"data stages at {events:,} events: {seconds}", file=sys.stderr)
            for nproc in (int(value) for value in args.nproc.split(",")):
                row = _train(events, data_dir, nproc, args.epochs)
                print(
                    f"| {events:,} | {nproc} | {row['samples_per_second']:,.0f} "
                    f"| {row['epoch_seconds']:.1f} | {row['wall_seconds']:.1f} "
                    f"| {row['peak_rss_gib']} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
