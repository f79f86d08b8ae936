"""The arithmetic floor of training: FLOPs of one real step (torch's own flop counter, not a hand
formula) and the GEMM rate this machine sustains at the model's shapes; their ratio is the
samples/s no implementation of this model can beat here."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


def step_flops(step: Callable[[], torch.Tensor]) -> tuple[int, dict[str, int]]:
    """Total FLOPs of `step` (a forward that returns a loss), its backward included, and the
    forward's FLOPs by operator."""
    with FlopCounterMode(display=False) as counter:
        loss = step()
        forward = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
        loss.backward()
    return int(counter.get_total_flops()), forward


def linear_shapes(model: torch.nn.Module, forward: Callable[[], object]) -> list[tuple[int, ...]]:
    """(rows, in, out) of every nn.Linear call in one forward: the GEMMs the model runs."""
    shapes: list[tuple[int, ...]] = []

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _: object) -> None:
        rows = inputs[0].numel() // inputs[0].shape[-1]
        shapes.append((rows, module.in_features, module.out_features))  # type: ignore[arg-type]

    hooks = [
        m.register_forward_hook(record) for m in model.modules() if isinstance(m, torch.nn.Linear)
    ]
    try:
        with torch.no_grad():
            forward()
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def sgemm_gflops(m: int, k: int, n: int, seconds: float = 0.3, windows: int = 5) -> float:
    """Sustained fp32 GEMM rate (GFLOP/s) of an (m×k)·(k×n) product, timed here: the best of
    `windows` timings, so a neighbour's burst on a shared host does not lower the floor."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    torch.mm(a, b, out=out)  # warm-up
    best = 0.0
    for _ in range(windows):
        runs, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds / windows or runs < 2:
            torch.mm(a, b, out=out)
            runs += 1
        best = max(best, 2 * m * k * n * runs / elapsed / 1e9)
    return best


def model_gemm_gflops(shapes: list[tuple[int, ...]]) -> float:
    """The FLOP-weighted GEMM rate over the model's own shapes (forward; backward has the same
    shapes transposed), each distinct shape timed once."""
    distinct = {shape: shapes.count(shape) for shape in shapes}
    flops = seconds = 0.0
    for (m, k, n), count in distinct.items():
        work = 2.0 * m * k * n * count
        flops += work
        seconds += work / (sgemm_gflops(m, k, n, seconds=0.25) * 1e9)
    return flops / seconds / 1e9


def linear_step_seconds(shapes: list[tuple[int, ...]]) -> float:
    """Seconds one training step's Linear GEMMs alone take at the rate this machine sustains for
    each of their own shapes: the forward product, and backward's two (the input's gradient,
    (m×n)·(n×k), and the weight's, (k×m)·(m×n)). What is left of a step beyond this is the rest
    of the model (bmm, elementwise, the loss, the optimizer)."""
    distinct = {shape: shapes.count(shape) for shape in shapes}
    seconds = 0.0
    for (m, k, n), count in distinct.items():
        for a, b, c in ((m, k, n), (m, n, k), (k, m, n)):
            seconds += count * 2.0 * a * b * c / (sgemm_gflops(a, b, c, seconds=0.25) * 1e9)
    return seconds


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
