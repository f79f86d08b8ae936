"""Training throughput (samples/s) beside its arithmetic floor, epoch time and memory per epoch.

The floor: the FLOPs of one real training step counted by torch's flop counter, divided into the
fp32 GEMM rate this machine sustains at the model's own Linear shapes (measured here, beside
the 1024³ sgemm); the achieved fraction is the median samples/s over that floor. Validation is
timed apart (rows/s), so an epoch's time is explained end to end.

IntTower at the official configuration (params.yaml defaults) on the real encoded ml-100k train
split, with the training loop's own epoch and validation functions, for each precision; prints the
median over epochs (the first, warm-up epoch excluded), and the process's peak and current RSS
after every epoch, which stay flat when nothing leaks across steps. Usage:
    MOVIELENS_MIRROR=/path python benchmarks/train_throughput.py --epochs 4
    python benchmarks/train_throughput.py --precisions fp32 --threads 2
    python benchmarks/train_throughput.py --precisions fp32 --epochs 1 --profile
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


def _floor(model, train_data, precision, params) -> float:
    """Print and return the samples/s floor: one real step's FLOPs (torch's counter) into the
    GEMM rate measured at the model's own Linear shapes."""
    import torch

    from inttower.models.losses import objective_loss
    from inttower.training.flops import (
        linear_shapes,
        linear_step_seconds,
        model_gemm_gflops,
        sgemm_gflops,
        step_flops,
    )

    batch = next(iter(train_data.shuffled(params.train.batch_size, params.seed, 1)))

    def step() -> torch.Tensor:
        with precision.autocast():
            output = model(batch.inputs)
            return objective_loss(model, output, batch.labels, batch.groups, params.model,
                                  params.train.objective, items=batch.items)["loss"]  # fmt: skip

    total_flops, forward_ops = step_flops(step)
    model.zero_grad(set_to_none=True)
    per_sample = total_flops / len(batch)
    shapes = linear_shapes(model, lambda: model(batch.inputs))
    gemm = model_gemm_gflops(shapes)
    cube = sgemm_gflops(1024, 1024, 1024)
    floor = gemm * 1e9 / per_sample
    linear = linear_step_seconds(shapes)
    top = sorted(forward_ops.items(), key=lambda item: -item[1])[:4]
    print(
        f"  floor: {per_sample / 1e6:.2f} MFLOP per sample (forward "
        f"{sum(forward_ops.values()) / len(batch) / 1e6:.2f}: "
        + ", ".join(f"{op} {n / len(batch) / 1e6:.2f}" for op, n in top)
        + f"); sgemm {gemm:.1f} GFLOP/s at the model's shapes ({cube:.1f} at 1024³)"
        f" -> floor {floor:,.0f} samples/s"
    )
    step_at_floor = len(batch) / floor
    print(
        f"  the Linear GEMMs alone (forward and both backward products, each at its own shape's "
        f"rate): {linear * 1e3:.0f} ms per step of {len(batch)} = {linear / step_at_floor:.0%} of "
        f"the floor's {step_at_floor * 1e3:.0f} ms; {len(batch) / linear:,.0f} samples/s with "
        "nothing else in the step"
    )
    return floor


def _profile(model, optimizer, scaler, precision, train_data, params) -> None:
    """Where a training epoch's time goes: torch.profiler over one more epoch of the loop's own
    `Trainer.train_epoch`, the top operators by self CPU time and their share of the total."""
    from torch.profiler import ProfilerActivity, profile

    from inttower.training.train import Trainer

    steps = train_data.n_batches(params.train.batch_size)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        Trainer.around(params, model, optimizer, scaler, precision, train_data).train_epoch(99)
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    print(f"  profile of one epoch ({steps} steps): {total / 1e3 / steps:.1f} ms per step")
    print("  | op | self ms/step | share | calls/step |")
    print("  |---|---|---|---|")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]:
        print(
            f"  | {event.key} | {event.self_cpu_time_total / 1e3 / steps:.2f} "
            f"| {event.self_cpu_time_total / total:.1%} | {event.count / steps:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per precision (+1)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    parser.add_argument("--model", default="inttower")
    parser.add_argument("--set", action="append", default=[], help="extra key=value override")
    parser.add_argument(
        "--profile", action="store_true",
        help="after the timed epochs, torch.profiler over one more epoch: the top operators",
    )  # fmt: skip
    parser.add_argument(
        "--compile", action="store_true", help="train through torch.compile(model) (inductor)"
    )
    args = parser.parse_args()
    extra = parse_overrides(args.set)

    import torch

    from inttower.config import load_params
    from inttower.features.encoded import load_split
    from inttower.models.registry import build_model
    from inttower.pipeline.paths import Paths
    from inttower.pipeline.registry import STAGES
    from inttower.training.allocator import reused_host_memory
    from inttower.training.batching import DeviceSplit
    from inttower.training.device import Precision, reproducible, select_device
    from inttower.training.flops import cpu_model
    from inttower.training.train import Trainer, _validate, build_optimizer

    print(
        f"CPU: {cpu_model()}; torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
    )

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
            with reproducible(params, device), reused_host_memory(device):
                train_data = DeviceSplit(train_split, device)
                valid_data = DeviceSplit(valid_split, device)
                model = build_model(train_split.fields, params.model).to(device)
                optimizer = build_optimizer(model, params)
                scaler = precision.make_scaler()
                rates, epoch_seconds, valid_rates = [], [], []
                print(
                    f"\n{args.model} {precision.name} on {device} "
                    f"({torch.get_num_threads()} threads), {len(train_data)} train rows, "
                    f"{len(valid_data)} valid rows, {model.n_parameters():,} parameters"
                )
                floor = _floor(model, train_data, precision, params)
                stepped = torch.compile(model) if args.compile else model
                trainer = Trainer.around(
                    params, model, optimizer, scaler, precision, train_data, stepped
                )
                for epoch in range(1, args.epochs + 2):
                    started = time.perf_counter()
                    _, train_seconds = trainer.train_epoch(epoch)
                    validated = time.perf_counter()
                    valid_auc, _ = _validate(model, valid_data)
                    valid_rate = len(valid_data) / (time.perf_counter() - validated)
                    seconds = time.perf_counter() - started
                    peak, current = _rss_mib()
                    rate = len(train_data) / train_seconds
                    print(
                        f"  epoch {epoch}: {rate:,.0f} samples/s ({rate / floor:.0%} of the floor), "
                        f"validation {valid_rate:,.0f} rows/s, {seconds:.2f} s incl. validation, "
                        f"valid AUC {valid_auc:.4f}, peak RSS {peak:,.0f} MiB, "
                        f"current RSS {current:,.0f} MiB" + (" (warm-up)" if epoch == 1 else "")
                    )
                    if epoch > 1:
                        rates.append(rate)
                        epoch_seconds.append(seconds)
                        valid_rates.append(valid_rate)
                if args.profile:
                    _profile(model, optimizer, scaler, precision, train_data, params)
                median = statistics.median(rates)
                print(
                    f"  median over {len(rates)} epochs: {median:,.0f} samples/s = "
                    f"{median / floor:.0%} of the {floor:,.0f} floor; validation "
                    f"{statistics.median(valid_rates):,.0f} rows/s; "
                    f"{statistics.median(epoch_seconds):.2f} s per epoch incl. validation"
                )


if __name__ == "__main__":
    main()
