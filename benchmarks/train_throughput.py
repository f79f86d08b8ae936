"""Training throughput (samples/s), epoch time (validation included) and memory per epoch.

IntTower at the official configuration (params.yaml defaults) on the real encoded ml-100k train
split, with the training loop's own epoch and validation functions, for each precision; prints the
median over epochs (the first, warm-up epoch excluded), and the process's peak and current RSS
after every epoch, which stay flat when nothing leaks across steps. Usage:
    MOVIELENS_MIRROR=/path python benchmarks/train_throughput.py --epochs 4
    python benchmarks/train_throughput.py --precisions fp32 --threads 2
    python benchmarks/train_throughput.py --set features.residuals=false --set 'features.recent_windows=[]'
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from _overrides import parse_overrides  # benchmarks/ is on sys.path: these run as scripts

ROOT = Path(__file__).resolve().parent.parent
DATA_STAGES = ["source", "ingest", "validate", "split", "features", "encoders", "encode"]


def _rss_mib() -> tuple[float, float]:
    """(peak, current) resident set size of this process in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return peak, pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per precision (+1)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    parser.add_argument("--model", default="inttower")
    parser.add_argument("--set", action="append", default=[], help="extra key=value override")
    args = parser.parse_args()
    extra = parse_overrides(args.set)

    import torch

    from inttower.config import load_params
    from inttower.features.encoded import load_split
    from inttower.models.registry import build_model
    from inttower.paths import Paths
    from inttower.pipeline import STAGES
    from inttower.training.batching import DeviceSplit
    from inttower.training.device import Precision, reproducible, select_device
    from inttower.training.train import _train_epoch, _validate

    with tempfile.TemporaryDirectory(prefix="inttower-throughput-") as scratch:
        paths = Paths(data=Path(scratch), reports=Path(scratch) / "reports")
        data_params = load_params(ROOT / "params.yaml", extra)
        for stage in DATA_STAGES:
            STAGES[stage].run(data_params, paths)
        train_split = load_split(paths["encoded"], "train")
        valid_split = load_split(paths["encoded"], "valid")

        for precision_name in args.precisions.split(","):
            params = load_params(
                ROOT / "params.yaml",
                {
                    "model.name": args.model,
                    "train.precision": precision_name,
                    "train.threads": args.threads,
                    "train.epochs": args.epochs + 1,
                    **extra,
                },
            )
            device = select_device(params.train.device)
            precision = Precision.for_device(device, params.train.precision)
            with reproducible(params, device):
                train_data = DeviceSplit(train_split, device)
                valid_data = DeviceSplit(valid_split, device)
                model = build_model(train_split.fields, params.model).to(device)
                optimizer = torch.optim.Adam(model.parameters(), lr=params.train.lr)
                scaler = precision.make_scaler()
                rates, epoch_seconds = [], []
                print(
                    f"\n{args.model} {precision.name} on {device} "
                    f"({torch.get_num_threads()} threads), {len(train_data)} train rows, "
                    f"{len(valid_data)} valid rows, {model.n_parameters():,} parameters"
                )
                for epoch in range(1, args.epochs + 2):
                    started = time.perf_counter()
                    _, train_seconds = _train_epoch(
                        model, optimizer, scaler, precision, train_data, params, epoch, False, None
                    )
                    valid_auc, _ = _validate(model, valid_data)
                    seconds = time.perf_counter() - started
                    peak, current = _rss_mib()
                    rate = len(train_data) / train_seconds
                    print(
                        f"  epoch {epoch}: {rate:,.0f} samples/s, {seconds:.2f} s incl. validation, "
                        f"valid AUC {valid_auc:.4f}, peak RSS {peak:,.0f} MiB, "
                        f"current RSS {current:,.0f} MiB" + (" (warm-up)" if epoch == 1 else "")
                    )
                    if epoch > 1:
                        rates.append(rate)
                        epoch_seconds.append(seconds)
                print(
                    f"  median over {len(rates)} epochs: {statistics.median(rates):,.0f} samples/s,"
                    f" {statistics.median(epoch_seconds):.2f} s per epoch incl. validation"
                )


if __name__ == "__main__":
    main()
