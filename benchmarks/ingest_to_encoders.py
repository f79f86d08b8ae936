"""Wall time and peak memory of ingest → validate → split → features → encoders.

Runs each configuration in a fresh subprocess (so peak RSS is its own) several times and prints
medians. Usage:
    python benchmarks/ingest_to_encoders.py                       # ml-100k and 25M synthetic
    python benchmarks/ingest_to_encoders.py --events 1000000 --repeats 3
    python benchmarks/ingest_to_encoders.py --repeats 1 --set features.genre_profile=true
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _overrides import parse_overrides  # benchmarks/ is on sys.path: these run as scripts

STAGES = ["source", "ingest", "validate", "split", "features", "encoders"]

ROOT = Path(__file__).resolve().parent.parent


def _child(dataset: str, events: int, data_dir: str, extra: dict[str, Any]) -> None:
    from inttower.config import load_params
    from inttower.pipeline.paths import Paths
    from inttower.pipeline.registry import STAGES as REGISTRY

    overrides = {"data.dataset": dataset}
    if dataset == "synthetic":
        overrides |= {
            "data.synthetic.n_events": events,
            "data.synthetic.n_users": max(1000, events // 150),
            "data.synthetic.n_items": max(500, events // 400),
        }
    params = load_params(ROOT / "params.yaml", {**overrides, **extra})
    paths = Paths(data=Path(data_dir), reports=Path(data_dir) / "reports")
    timings = {}
    for name in STAGES:
        started = time.perf_counter()
        REGISTRY[name].run(params, paths)
        timings[name] = round(time.perf_counter() - started, 2)
    print(json.dumps(timings))


def _measure(dataset: str, events: int, extra: dict[str, Any]) -> tuple[float, float, dict]:
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                dataset,
                str(events),
                data_dir,
                json.dumps(extra),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "INTTOWER_LOG_LEVEL": "WARNING"},
        )
        wall = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(result.stderr)
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return wall, peak_gib, json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=25_000_000, help="synthetic events")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], help="extra key=value override")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), args.child[2], json.loads(args.child[3]))
        return
    extra = parse_overrides(args.set)
    os.environ.setdefault("MOVIELENS_MIRROR", str(ROOT.parent / "shared" / "movielens"))
    for dataset, events in (("ml-100k", 0), ("synthetic", args.events)):
        walls, runs = [], []
        for _ in range(args.repeats):
            wall, _, stages = _measure(dataset, events, extra)
            walls.append(wall)
            runs.append(stages)
        # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: measured per dataset, the
        # larger dataset runs last, so its figure is its own.
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        per_stage = {name: statistics.median(run[name] for run in runs) for name in STAGES}
        label = dataset if dataset != "synthetic" else f"synthetic {events:,} events"
        print(
            f"{label}: median wall {statistics.median(walls):.1f} s over {args.repeats} runs "
            f"(process start included), peak RSS {peak:.2f} GiB; per stage (s): {per_stage}"
        )


if __name__ == "__main__":
    main()
