"""Scoring latency from the item cache on a GPU, beside the same requests on this machine's CPU.

benchmarks/scoring_latency.py's setup (untrained IntTower at the official size, ml-100k's field
shapes, synthetic candidates), timed on the GPU in PyTorch (`ItemCache.score`: fp32, TF32, bf16
autocast; the cache on the GPU, user inputs sent from the host in every request, the call
synchronised) and in ONNX Runtime with its CUDA provider when that provider exists; and on the
CPU in PyTorch fp32 and ONNX Runtime (as `Scorer` runs it). The MaxSim's block size
(layers.MAXSIM_BLOCK, 2^19 floats, tuned for a CPU cache) is timed as is and at 2^28 floats,
fewer and larger GEMMs. Floors: counted FLOPs over the 8192³ GEMM rate, and the cached item
vectors' bytes over the device's copy bandwidth. Medians (p90) in ms. Usage:
    python benchmarks/gpu_scoring.py --candidates 10000,100000 --users 1,64
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import onnxruntime as ort
import torch
from gpu_record import record  # benchmarks/ is on sys.path: these run as scripts
from scoring_latency import FIELDS, _flops, _inputs, _time

import inttower.models.layers as layers
from inttower.config import ModelParams
from inttower.features.encoded import tower_fields
from inttower.models import ItemCache, build_model
from inttower.serving.export import export_scorer, export_user_tower
from inttower.serving.scorer import OnnxScoring
from inttower.training.flops import sgemm_gflops

PART = "scoring"
LARGE_BLOCK = 1 << 28
MAX_BLOCKS = 2000  # more MaxSim blocks than this per request: the default-block row is skipped


def _log(message: str) -> None:
    print(message, flush=True)


def gpu_rates(device: torch.device) -> dict[str, float]:
    """8192³ GEMM TFLOP/s in fp32, TF32 and bf16, and copy bandwidth (GB/s, read + written)."""
    rates = {}
    n = 8192
    for name, dtype, mode in (
        ("fp32", torch.float32, "highest"),
        ("tf32", torch.float32, "high"),
        ("bf16", torch.bfloat16, "highest"),
    ):
        torch.set_float32_matmul_precision(mode)
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(10):
            a @ b
        torch.cuda.synchronize()
        rates[f"{name}_tflops"] = round(2 * n**3 * 10 / (time.perf_counter() - started) / 1e12, 1)
    torch.set_float32_matmul_precision("highest")
    source = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(10):
        target.copy_(source)
    torch.cuda.synchronize()
    rates["copy_gbps"] = round(2 * source.numel() * 10 / (time.perf_counter() - started) / 1e9)
    return rates


def cache_call(
    cache: ItemCache, users: dict[str, torch.Tensor], block: int, mode: str
) -> Callable[[], object]:
    """One request against the cache: MaxSim block size and arithmetic (fp32, tf32, bf16)."""

    def call() -> object:
        layers.MAXSIM_BLOCK = block
        torch.set_float32_matmul_precision("high" if mode == "tf32" else "highest")
        try:
            if mode == "bf16":
                with torch.autocast(cache.items.device.type, dtype=torch.bfloat16):
                    return cache.score(users)
            return cache.score(users)
        finally:
            torch.set_float32_matmul_precision("highest")

    return call


def synced(call: Callable[[], object], device: torch.device) -> Callable[[], object]:
    def run() -> object:
        result = call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return result

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default="10000,100000")
    parser.add_argument("--users", default="1,64")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--budget", type=float, default=4.0, help="seconds per row at most")
    parser.add_argument("--cpu-max-gflop", type=float, default=300.0, help="skip heavier on CPU")
    parser.add_argument("--no-cpu", action="store_true", help="GPU rows only")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    gpu = torch.device("cuda") if cuda else None
    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    providers = ort.get_available_providers()
    facts: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cpu_threads": threads,
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": providers,
        "maxsim_block_default": layers.MAXSIM_BLOCK,
        "maxsim_block_large": LARGE_BLOCK,
    }
    facts["cpu_sgemm_gflops_1024"] = round(sgemm_gflops(1024, 1024, 1024), 1)
    if gpu is not None:
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts.update(gpu_rates(gpu))
    _log(str(facts))
    record(PART, {"facts": facts, "rows": []})

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    params = ModelParams()
    model = build_model(FIELDS, params).eval()
    user_graph = export_user_tower(model, FIELDS)
    rows: list[dict[str, Any]] = []
    default_block = layers.MAXSIM_BLOCK
    _log("| candidates | users | engine | GFLOP | latency ms (p90) | floor ms | × floor |")
    _log("|---|---|---|---|---|---|---|")
    for n_candidates in (int(value) for value in args.candidates.split(",")):
        catalogue = _inputs("item", n_candidates, generator)
        cpu_cache = ItemCache.build(model, catalogue)
        probe = model.user_tower(_inputs("user", 2, generator)).vectors.detach()
        scorer_graph = export_scorer(model, probe, cpu_cache)
        item_vectors = cpu_cache.items.numpy()
        item_bias = cpu_cache.item_bias.numpy() if cpu_cache.item_bias is not None else None
        onnx_cpu = OnnxScoring(user_graph, scorer_graph, item_vectors, item_bias, threads)
        onnx_gpu = None
        if "CUDAExecutionProvider" in providers:
            onnx_gpu = OnnxScoring(user_graph, scorer_graph, item_vectors, item_bias, threads)
            on_cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            onnx_gpu.user_tower = ort.InferenceSession(user_graph, providers=on_cuda)
            onnx_gpu.scorer = ort.InferenceSession(scorer_graph, providers=on_cuda)
        gpu_model = gpu_cache = None
        if gpu is not None:
            gpu_model = build_model(FIELDS, params).eval()
            gpu_model.load_state_dict(model.state_dict())
            gpu_model.to(gpu)
            gpu_cache = ItemCache.build(gpu_model, catalogue)
        cache_bytes = cpu_cache.items.numel() * cpu_cache.items.element_size()
        for n_users in (int(value) for value in args.users.split(",")):
            users = _inputs("user", n_users, generator)
            feed = {spec.name: users[spec.name].numpy() for spec in tower_fields(FIELDS, "user")}
            # counted on the GPU in large blocks when there is one: the CPU's 2-item blocks at
            # 64 users × 100k would run 50k Python iterations under the counter
            flops = _flops(
                cache_call(
                    gpu_cache or cpu_cache, users, LARGE_BLOCK if cuda else default_block, "fp32"
                )
            )
            layers.MAXSIM_BLOCK = default_block
            engines: list[tuple[str, torch.device, Callable[[], object], float | None]] = []
            if gpu_cache is not None and gpu is not None:
                rate_fp32 = facts["fp32_tflops"] * 1e12
                rate_bf16 = facts["bf16_tflops"] * 1e12
                memory = cache_bytes / (facts["copy_gbps"] * 1e9)  # the cache read once
                per_item = n_users * len(params.hidden_units) * params.heads * params.heads
                blocks = -(-n_candidates // layers._block(per_item, n_candidates))
                choices = [(" block 2^28", LARGE_BLOCK)]
                if blocks <= MAX_BLOCKS:
                    choices.insert(0, ("", default_block))
                else:
                    _log(f"| {n_candidates:,} | {n_users} | gpu torch, default block | skipped: "
                         f"{blocks:,} blocks (Python-loop bound) |")  # fmt: skip
                for block_name, block in choices:
                    engines.append((f"gpu torch fp32{block_name}", gpu,
                                    cache_call(gpu_cache, users, block, "fp32"),
                                    max(flops / rate_fp32, memory)))  # fmt: skip
                    if block == LARGE_BLOCK:
                        engines.append((f"gpu torch tf32{block_name}", gpu,
                                        cache_call(gpu_cache, users, block, "tf32"), None))  # fmt: skip
                    engines.append((f"gpu torch bf16 autocast{block_name}", gpu,
                                    cache_call(gpu_cache, users, block, "bf16"),
                                    max(flops / rate_bf16, memory)))  # fmt: skip
            if onnx_gpu is not None:
                engines.append(
                    ("gpu onnxruntime CUDA fp32", cpu, partial(onnx_gpu.logits, feed), None)
                )
            if not args.no_cpu and flops / 1e9 <= args.cpu_max_gflop:
                cpu_floor = flops / (facts["cpu_sgemm_gflops_1024"] * 1e9)
                engines += [
                    ("cpu torch fp32", cpu, cache_call(cpu_cache, users, default_block, "fp32"),
                     cpu_floor),
                    ("cpu onnxruntime fp32", cpu, partial(onnx_cpu.logits, feed), cpu_floor),
                ]  # fmt: skip
            for engine, device, call, floor in engines:
                try:
                    median, p90 = _time(synced(call, device), args.repeats, args.budget)
                    row = {
                        "candidates": n_candidates,
                        "users": n_users,
                        "engine": engine,
                        "gflop": round(flops / 1e9, 2),
                        "median_ms": round(median, 3),
                        "p90_ms": round(p90, 3),
                        "floor_ms": round(floor * 1e3, 4) if floor else None,
                        "x_floor": round(median / (floor * 1e3), 2) if floor else None,
                    }
                except Exception as error:
                    row = {"candidates": n_candidates, "users": n_users, "engine": engine,
                           "error": repr(error)}  # fmt: skip
                finally:
                    layers.MAXSIM_BLOCK = default_block
                    torch.set_float32_matmul_precision("highest")
                rows.append(row)
                _log(
                    f"| {n_candidates:,} | {n_users} | {engine} | {flops / 1e9:.2f} | "
                    f"{row.get('median_ms')} ({row.get('p90_ms')}) | {row.get('floor_ms')} | "
                    f"{row.get('x_floor')} |" + (f" {row['error']}" if "error" in row else "")
                )
                record(PART, {"rows": rows})
        gpu_cache = gpu_model = None
        if cuda:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
