"""The whole chain at scale: wall time and peak RSS of every stage, ingest → evaluate, on
synthetic events (one training epoch by default).

Each stage is `inttower <stage>` in a fresh process tree, so its peak RSS is its own (for DDP the
largest rank's); the stages share one data folder, as `dvc repro` runs them. Usage:
    python benchmarks/chain_scale.py --events 25000000
    python benchmarks/chain_scale.py --events 1000000 --nproc 2 --epochs 1
    python benchmarks/chain_scale.py --events 25000000 --to encode   # the data stages only
    python benchmarks/chain_scale.py --keep /tmp/chain25m --from evaluate  # one stage again
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _overrides import parse_overrides  # benchmarks/ is on sys.path: these run as scripts
from train_scale import synthetic

CHAIN = ["source", "ingest", "validate", "split", "features", "encoders", "encode", "train",
         "evaluate"]  # fmt: skip
# a fresh wrapper per stage: its RUSAGE_CHILDREN peak is that stage's alone (the largest of the
# processes it waited for, in KiB), printed as its last line
WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def run_stage(stage: str, data_dir: Path, overrides: dict[str, object]) -> tuple[float, float]:
    """(wall seconds, peak RSS GiB) of one stage; its stderr is shown if it fails."""
    command = [sys.executable, "-m", "inttower.cli", stage, "--data-dir", str(data_dir)]
    for key, value in overrides.items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{stage} failed:\n{result.stderr[-3000:]}")
    return wall, int(result.stdout.strip().splitlines()[-1]) / 2**20


def _throughput(data_dir: Path) -> str:
    """The train stage's own figures, from the last train line of the run log (never versioned)."""
    from inttower.pipeline.paths import Paths

    lines = Paths.for_data(data_dir).run_log.read_text().splitlines()
    run = next(entry for entry in map(json.loads, reversed(lines)) if entry["stage"] == "train")
    epochs = ", ".join(f"{seconds:,.1f}" for seconds in run["epoch_seconds"])
    return f"train: {run['samples_per_second']:,.0f} samples/s, epoch s {epochs}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=25_000_000)
    parser.add_argument("--nproc", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--from",
        dest="first",
        choices=CHAIN,
        default=CHAIN[0],
        help="the first stage to run (the earlier ones' outputs must be in --keep)",
    )
    parser.add_argument("--to", choices=CHAIN, default=CHAIN[-1], help="the last stage to run")
    parser.add_argument(
        "--keep",
        type=Path,
        help="the data folder to use and keep (default: a temporary one, removed at the end)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one more params override for every stage, the value as YAML (repeatable)",
    )
    args = parser.parse_args()
    chain = CHAIN[CHAIN.index(args.first) : CHAIN.index(args.to) + 1]
    overrides = {**synthetic(args.events), "train.nproc": args.nproc, "train.epochs": args.epochs,
                 "train.device": "cpu"}  # fmt: skip
    overrides.update(parse_overrides(args.set))
    print(f"chain on {args.events:,} synthetic events, nproc {args.nproc}, {args.epochs} epoch(s)")
    print("| stage | wall s | peak RSS GiB |")
    print("|---|---|---|")
    total = 0.0
    with contextlib.ExitStack() as stack:
        if args.keep is None:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="inttower-chain-"))
            data_dir = Path(scratch) / "data"
        else:
            data_dir = args.keep.resolve()
        for stage in chain:
            wall, peak = run_stage(stage, data_dir, overrides)
            total += wall
            print(f"| {stage} | {wall:,.1f} | {peak:.2f} |", flush=True)
            if stage == "train":
                print(_throughput(data_dir), flush=True)
        print(f"| **{chain[0]} → {chain[-1]}** | {total:,.1f} | |")
        if args.to == "evaluate":
            test = json.loads((data_dir / "reports" / "metrics.json").read_text())["test"]
            print(f"test AUC {test['auc']:.4f}, logloss {test['logloss']:.4f}")


if __name__ == "__main__":
    main()
