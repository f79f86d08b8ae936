"""Pre-ranking latency from the item cache, beside its GEMM floor: one user and a batch of users
against 1k, 10k and 100k cached candidates, in PyTorch (`ItemCache.score`) and in ONNX Runtime
(the serving bundle's two graphs, as `inttower.serving.scorer.Scorer` runs them).

The floor: FLOPs of one request counted by torch's flop counter (user tower + MaxSim), divided
into the fp32 sgemm rate this machine sustains, measured here at 1024³ (its best) and at the
MaxSim's own shape (K = head_dim is small). Nothing scores faster than the GEMMs it needs.

An untrained IntTower at the official configuration is enough (latency does not depend on the
weights); candidates are synthetic item inputs with ml-100k's field shapes. Medians (p90) of
`--repeats` runs after a warm-up. `--heads` shows the faster mode: fewer heads, fewer GEMM FLOPs
(its AUC cost on ml-100k: benchmarks/quality.py --set model.heads=H). Usage:
    python benchmarks/scoring_latency.py --repeats 20
    python benchmarks/scoring_latency.py --heads 8 --candidates 10000,100000 --users 1,64
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from inttower.config import FeatureParams, ModelParams
from inttower.features.encoded import FieldSpec, tower_fields
from inttower.features.point_in_time import (
    DENSE_ITEM,
    DENSE_USER,
    RECENT_RATE_PREFIX,
    RECENT_RESIDUAL_PREFIX,
    RESIDUAL,
    dense_tower,
)
from inttower.models import ItemCache, build_model
from inttower.serving.export import export_scorer, export_user_tower
from inttower.serving.scorer import OnnxScoring
from inttower.training.flops import cpu_model, sgemm_gflops

RECENT_PREFIXES = (RECENT_RATE_PREFIX, RECENT_RESIDUAL_PREFIX)

# ml-100k's encoded fields (vocabulary sizes from fields.json of the default split); the dense
# ones are those the default `features` params produce.
_DEFAULTS = FeatureParams()
DENSE = [
    *DENSE_USER,
    *DENSE_ITEM,
    *(RESIDUAL if _DEFAULTS.residuals else ()),
    *(f"{prefix}{window}" for window in _DEFAULTS.recent_windows for prefix in RECENT_PREFIXES),
]
FIELDS = [
    FieldSpec("user_id", "sparse", "user", vocab_size=752),
    FieldSpec("gender", "sparse", "user", vocab_size=4),
    FieldSpec("age_bucket", "sparse", "user", vocab_size=9),
    FieldSpec("occupation", "sparse", "user", vocab_size=23),
    FieldSpec("zip_prefix", "sparse", "user", vocab_size=109),
    FieldSpec("history", "sequence", "user", vocab_size=1581, length=20),
    FieldSpec("item_id", "sparse", "item", vocab_size=1581),
    FieldSpec("decade", "sparse", "item", vocab_size=10),
    FieldSpec("genres", "sequence", "item", vocab_size=20, length=6),
    *(FieldSpec(name, "dense", dense_tower(name)) for name in DENSE),
]


def _inputs(tower: str, rows: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    batch = {}
    for spec in FIELDS:
        if spec.tower != tower:
            continue
        if spec.kind == "dense":
            batch[spec.name] = torch.randn(rows, generator=generator)
        else:
            shape = (rows, spec.length) if spec.kind == "sequence" else (rows,)
            batch[spec.name] = torch.randint(1, spec.vocab_size, shape, generator=generator)
    return batch


def _time(call: Callable[[], object], repeats: int, budget_s: float) -> tuple[float, float]:
    """Median and p90 in ms of up to `repeats` runs (at least 3, fewer when over budget)."""
    call()  # warm-up
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < repeats and (len(samples) < 3 or time.perf_counter() - started < budget_s):
        begin = time.perf_counter()
        call()
        samples.append((time.perf_counter() - begin) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def _flops(call: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        call()
    return int(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default="1000,10000,100000")
    parser.add_argument("--users", default="1,64", help="users per request")
    parser.add_argument(
        "--max-gflop", type=float, default=300.0, help="skip requests heavier than this"
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per row at most")
    parser.add_argument("--heads", type=int, default=ModelParams().heads)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="add torch bf16 autocast rows")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    params = ModelParams(heads=args.heads)
    model = build_model(FIELDS, params).eval()
    head_dim = params.head_dim
    queries = len(params.hidden_units) * params.heads
    peak = sgemm_gflops(1024, 1024, 1024)
    at_shape = sgemm_gflops(512 * params.heads, head_dim, queries)  # maxsim_block's orientation
    print(
        f"inttower, official sizes but heads={params.heads}; {cpu_model()}, "
        f"{torch.backends.cpu.get_cpu_capability()}, {threads} threads"
    )
    print(
        f"sgemm: {peak:.1f} GFLOP/s at 1024³ (the floor's rate), {at_shape:.1f} at the MaxSim's "
        f"shape ({512 * params.heads}×{head_dim}·{head_dim}×{queries}: 512 items, one user)"
    )
    print("medians (p90) in ms; floor = counted FLOPs / 1024³ sgemm rate")
    print("| candidates | users | engine | GFLOP | floor | latency | × floor |")
    print("|---|---|---|---|---|---|---|")
    user_graph = export_user_tower(model, FIELDS)
    for n_candidates in (int(value) for value in args.candidates.split(",")):
        catalogue = _inputs("item", n_candidates, generator)
        cache = ItemCache.build(model, catalogue)
        probe = model.user_tower(_inputs("user", 2, generator)).vectors.detach()
        onnx = OnnxScoring(
            user_graph,
            export_scorer(model, probe, cache),
            cache.items.numpy(),
            cache.item_bias.numpy() if cache.item_bias is not None else None,
            threads,
        )
        for n_users in (int(value) for value in args.users.split(",")):
            users = _inputs("user", n_users, generator)
            feed = {spec.name: users[spec.name].numpy() for spec in tower_fields(FIELDS, "user")}
            flops = _flops(lambda: cache.score(users))  # noqa: B023
            if flops / 1e9 > args.max_gflop:
                print(f"| {n_candidates:,} | {n_users} | (skipped: {flops / 1e9:.0f} GFLOP) |")
                continue
            floor = flops / (peak * 1e9) * 1000
            engines: list[tuple[str, Callable[[], object]]] = [
                ("torch fp32", lambda: cache.score(users)),  # noqa: B023
                ("onnxruntime fp32", lambda: onnx.logits(feed)),  # noqa: B023
            ]
            if args.bf16:

                def bf16() -> object:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return cache.score(users)  # noqa: B023

                engines.append(("torch bf16 autocast", bf16))
            for engine, call in engines:
                median, p90 = _time(call, args.repeats, args.budget)
                print(
                    f"| {n_candidates:,} | {n_users} | {engine} | {flops / 1e9:.2f} "
                    f"| {floor:.1f} | {median:.1f} ({p90:.1f}) | {median / floor:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
