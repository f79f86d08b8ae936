"""Training throughput on a GPU at the official model size, beside the GPU's own arithmetic floor.

The data: the project's own data stages (source .. encode) run on a small synthetic dataset
(`--seed-events`, the generator's default users and items, so the vocabularies and hence the
model are the official synthetic 1M run's size); then each training set of `--sizes` rows is
drawn from that encoded train split, with replacement (uniform row indices, fixed seed), every
tensor the training loop reads gathered row by row on the device, where it stays. Running the
stages at 25M events takes over an hour on a CPU; the layout is exactly what `encode` writes and
`DeviceSplit` consumes, only the rows repeat.

Each (size, precision, batch size): a fresh model (same seed), a few warm-up steps, then steps of
the training loop's own body (inttower.training.train.Trainer.step: zero_grad, autocast forward,
objective_loss, scaler backward and step) over one epoch's permutation, until the epoch ends or
`--max-seconds` pass; samples/s over the timed steps (the permutation is timed apart). At each
batch size the floor: FLOPs of one real step (torch's flop counter) into the GEMM rate measured
at the model's own Linear shapes in fp32, TF32 and bf16 (CUDA events, best of a few windows).
Also: peak device memory, the batch iteration alone (gathers) against whole steps, and
torch.profiler's top operators over a few bf16 steps. Usage (the proof calls it):
    python benchmarks/gpu_throughput.py --sizes 1000000,25000000 --out $OUT
    python benchmarks/gpu_throughput.py --device cpu --sizes 8000 --batch-sizes 512 --seed-events 20000
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from gpu_record import record  # benchmarks/ is on sys.path: these run as scripts

from inttower.config import Params, load_params
from inttower.features.encoded import LABEL, EncodedSplit, load_split
from inttower.models.losses import objective_loss
from inttower.models.registry import build_model
from inttower.pipeline.paths import Paths
from inttower.pipeline.registry import STAGES
from inttower.training.batching import GROUP_KEY, ITEM_KEY, Batch, DeviceSplit
from inttower.training.device import Precision, select_device
from inttower.training.flops import linear_shapes, sgemm_gflops, step_flops
from inttower.training.train import Trainer, build_optimizer

ROOT = Path(__file__).resolve().parent.parent
DATA_STAGES = ["source", "ingest", "validate", "split", "features", "encoders", "encode"]
PART = "throughput"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _log(message: str) -> None:
    print(message, flush=True)


def source_split(seed_events: int, scratch: Path, seed: int) -> tuple[EncodedSplit, Params, dict]:
    """The encoded train split of a real synthetic run of `seed_events` events."""
    overrides = {
        "seed": seed,
        "data.dataset": "synthetic",
        "data.synthetic.n_events": seed_events,
    }
    params = load_params(ROOT / "params.yaml", overrides)
    paths = Paths(data=scratch / "data", reports=scratch / "reports")
    stage_seconds = {}
    for stage in DATA_STAGES:
        started = time.perf_counter()
        STAGES[stage].run(params, paths)
        stage_seconds[stage] = round(time.perf_counter() - started, 2)
    return load_split(paths["encoded"], "train"), params, stage_seconds


def resident_split(
    source: EncodedSplit, rows: int, device: torch.device, seed: int
) -> EncodedSplit:
    """`rows` rows drawn with replacement from `source`, every tensor training reads, on `device`."""
    generator = torch.Generator(device=device).manual_seed(seed)
    index = torch.randint(0, len(source), (rows,), device=device, generator=generator)
    names = [spec.name for spec in source.fields] + [LABEL, GROUP_KEY, ITEM_KEY]
    tensors = {name: source.tensors[name].to(device).index_select(0, index) for name in names}
    return EncodedSplit(fields=source.fields, tensors=tensors)


@contextmanager
def matmul_precision(name: str) -> Iterator[None]:
    """fp32 and bf16 runs keep torch's default ("highest": no TF32, as the training loop runs);
    tf32 lets float32 matmuls use TF32 tensor cores."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if name == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def precision_for(name: str, device: torch.device) -> Precision:
    if name == "bf16":
        return Precision.for_device(device, "bf16")
    return Precision(device, None)  # fp32 and tf32: no autocast (tf32 is matmul_precision's)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    precision: Precision,
    batch: Batch,
    params: Params,
) -> torch.Tensor:
    """`Trainer.step`, as it is there."""
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        output = model(batch.inputs)
        losses = objective_loss(
            model, output, batch.labels, batch.groups, params.model, params.train.objective,
            items=batch.items,
        )  # fmt: skip
    scaler.scale(losses["loss"]).backward()
    scaler.step(optimizer)
    scaler.update()
    return losses["loss"].detach()


def gemm_rate(m: int, k: int, n: int, dtype: torch.dtype, device: torch.device) -> float:
    """Sustained GEMM TFLOP/s of (m×k)·(k×n) in `dtype` (fp32 under the current matmul
    precision): the best of 3 windows of ~15 ms each, timed with CUDA events."""
    if device.type != "cuda":
        return sgemm_gflops(m, k, n, seconds=0.06, windows=3) / 1e3
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    out = torch.empty(m, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=out)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.mm(a, b, out=out)
    stop.record()
    stop.synchronize()
    reps = max(3, min(2000, int(15.0 / max(start.elapsed_time(stop), 1e-3))))
    best = 0.0
    for _ in range(3):
        start.record()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        stop.record()
        stop.synchronize()
        best = max(best, 2.0 * m * k * n * reps / (start.elapsed_time(stop) / 1e3) / 1e12)
    return best


def gemm_rates(shapes: list[tuple[int, ...]], device: torch.device) -> dict[str, dict[str, float]]:
    """Per arithmetic: the FLOP-weighted TFLOP/s over the forward's Linear GEMMs, and the seconds
    a step's Linear GEMMs alone need (the forward product and backward's two, each at its own
    shape's rate)."""
    distinct = {shape: shapes.count(shape) for shape in shapes}
    result = {}
    for name, dtype in (("fp32", torch.float32), ("tf32", torch.float32), ("bf16", torch.bfloat16)):
        if device.type == "cpu" and name != "fp32":
            continue  # the CPU has neither TF32 nor (here) native bf16: no floor to report
        with matmul_precision(name):
            rates: dict[tuple[int, int, int], float] = {}

            def rate(
                m: int, k: int, n: int, rates: dict = rates, dtype: torch.dtype = dtype
            ) -> float:
                if (m, k, n) not in rates:
                    rates[m, k, n] = gemm_rate(m, k, n, dtype, device)
                return rates[m, k, n]

            flops = forward_seconds = step_seconds = 0.0
            for (m, k, n), count in distinct.items():
                work = 2.0 * m * k * n * count
                flops += work
                forward_seconds += work / (rate(m, k, n) * 1e12)
                for a, b, c in ((m, k, n), (m, n, k), (k, m, n)):
                    step_seconds += count * 2.0 * a * b * c / (rate(a, b, c) * 1e12)
        result[name] = {
            "model_shapes_tflops": round(flops / forward_seconds / 1e12, 2),
            "linear_gemms_ms_per_step": round(step_seconds * 1e3, 3),
        }
    return result


def floor_at(
    batch_size: int, data: DeviceSplit, fields: list, params: Params, device: torch.device
) -> dict[str, Any]:
    """FLOPs per sample of one real step at this batch size and the floors they imply."""
    torch.manual_seed(params.seed)
    model = build_model(fields, params.model).to(device)
    batch = next(iter(data.shuffled(batch_size, params.seed, 0)))
    precision = Precision(device, None)

    def step() -> torch.Tensor:
        with precision.autocast():
            output = model(batch.inputs)
            return objective_loss(
                model, output, batch.labels, batch.groups, params.model, params.train.objective,
                items=batch.items,
            )["loss"]  # fmt: skip

    total, forward = step_flops(step)
    shapes = linear_shapes(model, lambda: model(batch.inputs))
    rates = gemm_rates(shapes, device)
    per_sample = total / len(batch)
    top = sorted(forward.items(), key=lambda item: -item[1])[:5]
    floor = {
        "batch_size": len(batch),
        "mflop_per_sample": round(per_sample / 1e6, 3),
        "forward_mflop_per_sample_by_op": {op: round(n / len(batch) / 1e6, 3) for op, n in top},
        "linear_shapes_forward": sorted({str(shape) for shape in shapes}),
        "gemm": rates,
        "floor_samples_per_s": {
            name: round(rate["model_shapes_tflops"] * 1e12 / per_sample)
            for name, rate in rates.items()
        },
        "linear_only_samples_per_s": {
            name: round(len(batch) / (rate["linear_gemms_ms_per_step"] / 1e3))
            for name, rate in rates.items()
        },
    }
    _log(f"  floor at batch {len(batch)}: {floor}")
    return floor


def timed_steps(
    data: DeviceSplit,
    fields: list,
    params: Params,
    precision_name: str,
    batch_size: int,
    warmup: int,
    max_seconds: float,
    device: torch.device,
) -> dict[str, Any]:
    """One configuration: fresh model, warm-up, then the epoch's steps until it ends or time's up."""
    resident = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with matmul_precision(precision_name):
        precision = precision_for(precision_name, device)
        torch.manual_seed(params.seed)
        model = build_model(fields, params.model).to(device)
        model.train()
        optimizer = build_optimizer(model, params)
        scaler = precision.make_scaler()
        for step, batch in enumerate(data.shuffled(batch_size, params.seed, 0)):
            if step >= warmup:
                break
            train_step(model, optimizer, scaler, precision, batch, params)
        _sync(device)

        batches = data.shuffled(batch_size, params.seed, 1)
        permuting = time.perf_counter()
        first = next(batches)  # draws the epoch's permutation (CPU randperm + copy) and batch 1
        _sync(device)
        permutation_seconds = time.perf_counter() - permuting
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        rows = steps = 0
        started = time.perf_counter()
        batch: Batch | None = first
        while batch is not None:
            loss_sum += train_step(
                model, optimizer, scaler, precision, batch, params
            ).double() * len(batch)
            rows += len(batch)
            steps += 1
            if steps % 10 == 0 and time.perf_counter() - started > max_seconds:
                break
            batch = next(batches, None)
        mean_loss = loss_sum.item() / max(rows, 1)  # syncs
        _sync(device)
        seconds = time.perf_counter() - started

        # the batch iteration alone (index_select gathers of every tensor), as many batches
        gather_rows = 0
        gathering = time.perf_counter()
        for step, batch in enumerate(data.shuffled(batch_size, params.seed, 2)):
            if step == 0:  # the permutation and the first batch excluded, as above
                _sync(device)
                gathering = time.perf_counter()
                continue
            if step > steps:
                break
            gather_rows += len(batch)
        _sync(device)
        gather_seconds = time.perf_counter() - gathering

    result = {
        "precision": precision_name,
        "autocast": precision.name,
        "batch_size": batch_size,
        "rows_in_data": len(data),
        "steps_timed": steps,
        "rows_timed": rows,
        "whole_epoch": rows == len(data),
        "seconds": round(seconds, 3),
        "samples_per_s": round(rows / seconds),
        "ms_per_step": round(seconds / max(steps, 1) * 1e3, 3),
        "mean_loss": round(mean_loss, 5),
        "epoch_permutation_seconds": round(permutation_seconds, 3),
        "batch_iteration_alone_samples_per_s": round(gather_rows / max(gather_seconds, 1e-9)),
        "batch_iteration_share_of_step": round(
            (gather_seconds / max(gather_rows, 1)) / (seconds / max(rows, 1)), 4
        ),
    }
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        result["peak_memory_gib"] = round(peak / 2**30, 3)
        result["peak_memory_above_resident_data_gib"] = round((peak - resident) / 2**30, 3)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def loop_epoch(
    data: DeviceSplit, fields: list, params: Params, precision_name: str, device: torch.device
) -> dict[str, Any]:
    """One whole epoch through the training loop's own `Trainer.train_epoch` (after a warm-up epoch's
    first steps), at the default batch size: the figure `inttower train` itself would log."""
    with matmul_precision(precision_name):
        precision = precision_for(precision_name, device)
        torch.manual_seed(params.seed)
        model = build_model(fields, params.model).to(device)
        optimizer = build_optimizer(model, params)
        scaler = precision.make_scaler()
        for step, batch in enumerate(data.shuffled(params.train.batch_size, params.seed, 0)):
            if step >= 5:
                break
            train_step(model, optimizer, scaler, precision, batch, params)
        _sync(device)
        trainer = Trainer.around(params, model, optimizer, scaler, precision, data)
        loss, seconds = trainer.train_epoch(1)
    return {
        "precision": precision_name,
        "batch_size": params.train.batch_size,
        "rows": len(data),
        "seconds": round(seconds, 3),
        "samples_per_s": round(len(data) / seconds),
        "mean_loss": round(loss, 5),
    }


def sync_points(data: DeviceSplit, fields: list, params: Params, device: torch.device) -> list[str]:
    """Which ops of one bf16 training step make the host wait for the GPU (CUDA sync debug
    mode's warnings, deduplicated): each one stalls the launch queue once per step."""
    if device.type != "cuda":
        return []
    precision = precision_for("bf16", device)
    model = build_model(fields, params.model).to(device)
    optimizer = build_optimizer(model, params)
    scaler = precision.make_scaler()
    batch = next(iter(data.shuffled(params.train.batch_size, params.seed, 0)))
    train_step(model, optimizer, scaler, precision, batch, params)  # warm-up
    torch.cuda.synchronize()
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_step(model, optimizer, scaler, precision, batch, params)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for warning in caught:
        text = f"{warning.filename.split('/')[-1]}:{warning.lineno}: {warning.message}"
        found.append(text[:300])
    return found


def endless_batches(data: DeviceSplit, batch_size: int, seed: int) -> Iterator[Batch]:
    """Batches of epoch 0, 1, 2, ...: as many as asked for, however small the data."""
    epoch = 0
    while True:
        yield from data.shuffled(batch_size, seed, epoch)
        epoch += 1


def _device_time(event: Any) -> float:
    for name in ("self_device_time_total", "self_cuda_time_total"):
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def profile_steps(
    data: DeviceSplit,
    fields: list,
    params: Params,
    precision_name: str,
    steps: int,
    device: torch.device,
    table_path: Path,
) -> dict[str, Any]:
    """torch.profiler over `steps` training steps (after warm-up): the top 15 operators by self
    device time (CPU time on a CPU), and how busy the GPU was over the profiled wall time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with matmul_precision(precision_name):
        precision = precision_for(precision_name, device)
        torch.manual_seed(params.seed)
        model = build_model(fields, params.model).to(device)
        optimizer = build_optimizer(model, params)
        scaler = precision.make_scaler()
        batches = endless_batches(data, params.train.batch_size, params.seed)
        for _ in range(5):
            train_step(model, optimizer, scaler, precision, next(batches), params)
        _sync(device)
        with profile(activities=activities) as profiler:
            started = time.perf_counter()
            for _ in range(steps):  # the batch's gathers included: they are part of a step
                train_step(model, optimizer, scaler, precision, next(batches), params)
            _sync(device)
            wall = time.perf_counter() - started
    events = profiler.key_averages()
    on_gpu = device.type == "cuda"
    key: Callable[[Any], float] = _device_time if on_gpu else (lambda e: e.self_cpu_time_total)
    total_device = sum(_device_time(event) for event in events)
    total_cpu = sum(event.self_cpu_time_total for event in events)
    top = sorted(events, key=lambda e: -key(e))[:15]
    rows = [
        {
            "op": event.key,
            "self_device_ms_per_step": round(_device_time(event) / 1e3 / steps, 4),
            "self_cpu_ms_per_step": round(event.self_cpu_time_total / 1e3 / steps, 4),
            "calls_per_step": round(event.count / steps, 1),
        }
        for event in top
    ]
    lines = [
        f"{precision_name}, batch {params.train.batch_size}, {steps} steps profiled, wall "
        f"{wall * 1e3 / steps:.2f} ms per step (under the profiler), GPU busy "
        f"{total_device / 1e3 / steps:.2f} ms per step, host self time "
        f"{total_cpu / 1e3 / steps:.2f} ms per step",
        "| op | self device ms/step | self CPU ms/step | calls/step |",
        "|---|---|---|---|",
        *(
            f"| {r['op']} | {r['self_device_ms_per_step']} | {r['self_cpu_ms_per_step']} "
            f"| {r['calls_per_step']} |"
            for r in rows
        ),
        "",
    ]
    sort_by = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
    try:
        lines.append(events.table(sort_by=sort_by, row_limit=30))
    except Exception as error:  # the summary above holds the figures either way
        lines.append(f"(profiler table unavailable: {error})")
    table_path.parent.mkdir(parents=True, exist_ok=True)
    with table_path.open("a") as handle:
        handle.write("\n".join(lines) + "\n\n")
    _log("\n".join(lines[: 3 + len(rows)]))
    wall_ms = wall * 1e3 / steps
    return {
        "precision": precision_name,
        "batch_size": params.train.batch_size,
        "steps": steps,
        "wall_ms_per_step_under_profiler": round(wall_ms, 3),
        "gpu_busy_ms_per_step": round(total_device / 1e3 / steps, 3),
        "gpu_busy_share": round(total_device / 1e3 / steps / wall_ms, 3) if on_gpu else None,
        "host_self_ms_per_step": round(total_cpu / 1e3 / steps, 3),
        "calls_per_step": round(sum(event.count for event in events) / steps),
        "top_ops": rows,
    }


def _guarded(name: str, call: Callable[[], Any]) -> Any:
    """Run one measurement; a failure is recorded under `name` and the proof goes on."""
    try:
        return call()
    except Exception as error:
        _log(f"  {name} FAILED: {error!r}")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"error": repr(error)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--sizes", default="1000000,25000000", help="training rows")
    parser.add_argument("--seed-events", type=int, default=200_000)
    parser.add_argument("--precisions", default="bf16,tf32,fp32", help="in order of priority")
    parser.add_argument("--batch-sizes", default="", help="default: train.batch_size and 32768")
    parser.add_argument("--warmup", type=int, default=10, help="steps before timing")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="timed seconds at most")
    parser.add_argument("--profile-steps", type=int, default=10)
    parser.add_argument("--out", default=".", help="folder for profile.txt")
    parser.add_argument(
        "--deadline", type=float, default=float(os.environ.get("GPU_PROOF_BOX", "0")),
        help="seconds this process may take (0: no limit); configurations that would start "
        "within 12 s of it are skipped and recorded as such",
    )  # fmt: skip
    args = parser.parse_args()
    begun = time.perf_counter()

    def time_left() -> float:
        return math.inf if not args.deadline else args.deadline - (time.perf_counter() - begun)

    device = select_device(args.device)
    out = Path(args.out)
    (out / "profile.txt").unlink(missing_ok=True)
    sizes = [int(value) for value in args.sizes.split(",")]
    precisions = args.precisions.split(",")
    _log(f"torch {torch.__version__} (CUDA {torch.version.cuda}) on {device}")

    with tempfile.TemporaryDirectory(prefix="inttower-gpu-throughput-") as scratch:
        started = time.perf_counter()
        source, params, stage_seconds = source_split(args.seed_events, Path(scratch), 42)
        defaults = [params.train.batch_size, 32768]
        batch_sizes = (
            [int(v) for v in args.batch_sizes.split(",")] if args.batch_sizes else defaults
        )
        torch.manual_seed(params.seed)
        n_parameters = build_model(source.fields, params.model).n_parameters()
        data_facts = {
            "how": (
                f"data stages source..encode on synthetic data ({args.seed_events:,} events, "
                f"{params.data.synthetic.n_users} users, {params.data.synthetic.n_items} items); "
                "each size's rows drawn with replacement from that encoded train split "
                "(torch.randint row indices on the device, generator seed = the size's index), "
                "every tensor DeviceSplit reads gathered on the device and kept resident there"
            ),
            "seed_events": args.seed_events,
            "source_train_rows": len(source),
            "stage_seconds": stage_seconds,
            "vocab_sizes": {s.name: s.vocab_size for s in source.fields if s.vocab_size},
            "n_fields": len(source.fields),
            "n_parameters": n_parameters,
            "model": params.model.model_dump(mode="json"),
            "default_batch_size": params.train.batch_size,
            "batch_sizes": batch_sizes,
            "precisions": precisions,
            "float32_matmul_precision_in_training": torch.get_float32_matmul_precision(),
        }
        _log(f"data: {data_facts} ({time.perf_counter() - started:.1f} s)")
        record(PART, {"device": str(device), "data": data_facts, "runs": [], "floors": []})

        resident: dict[int, DeviceSplit] = {}
        for size_index, size in enumerate(sizes):
            building = time.perf_counter()
            resident[size] = DeviceSplit(resident_split(source, size, device, size_index), device)
            _sync(device)
            allocated = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
            _log(
                f"{size:,} rows resident on {device} in {time.perf_counter() - building:.1f} s "
                f"({allocated / 2**30:.2f} GiB allocated in all)"
            )
            record(PART, {f"resident_after_{size}_gib": round(allocated / 2**30, 3)})
        first = resident[sizes[0]]
        fields = source.fields

        floors = []
        for batch_size in batch_sizes:
            floor = _guarded(
                "floor", lambda b=batch_size: floor_at(b, first, fields, params, device)
            )
            floors.append({"batch_size": batch_size, **floor})
            record(PART, {"floors": floors})
        if args.profile_steps:
            profiled = _guarded(
                "profile",
                lambda: profile_steps(
                    first, fields, params, "bf16", args.profile_steps, device, out / "profile.txt"
                ),
            )
            record(PART, {"profile": profiled})
            found = _guarded("sync points", lambda: sync_points(first, fields, params, device))
            _log(f"  host-device syncs in one bf16 step: {found}")
            record(PART, {"host_device_syncs_in_one_bf16_step": found})
        epoch = _guarded(
            "Trainer.train_epoch", lambda: loop_epoch(first, fields, params, "bf16", device)
        )
        _log(f"  Trainer.train_epoch itself, bf16, {len(first):,} rows: {epoch}")
        record(PART, {"train_epoch_bf16_default_batch": epoch})

        runs: list[dict[str, Any]] = []
        for name in precisions:  # in priority order: every size and batch of bf16 first
            for size in sizes:
                for batch_size in batch_sizes:
                    if time_left() < 12 + args.max_seconds:
                        result: dict[str, Any] = {"error": "skipped: the part's deadline"}
                    else:
                        result = _guarded(
                            "run",
                            lambda n=name, s=size, b=batch_size: timed_steps(
                                resident[s], fields, params, n, b, args.warmup, args.max_seconds,
                                device,
                            ),
                        )  # fmt: skip
                    result.update(precision=name, batch_size=batch_size, rows_in_data=size)
                    floor = next((f for f in floors if f["batch_size"] == batch_size), {})
                    limit = floor.get("floor_samples_per_s", {}).get(name)
                    if limit and "samples_per_s" in result:
                        result["fraction_of_floor"] = round(result["samples_per_s"] / limit, 4)
                    runs.append(result)
                    _log(f"  {result}")
                    record(PART, {"runs": runs})

    timed = [r for r in runs if "samples_per_s" in r]
    if timed:
        best = max(timed, key=lambda r: r["samples_per_s"])
        default = [r["samples_per_s"] for r in timed
                   if r["precision"] == "bf16" and r["batch_size"] == params.train.batch_size]  # fmt: skip
        summary = {"best": best, "bf16_default_batch_samples_per_s": default}
        _log(f"\nsummary: {summary}")
        record(PART, {"summary": summary})


if __name__ == "__main__":
    main()
