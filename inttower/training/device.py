"""Where training runs: an explicit device choice, and the arithmetic precision it uses."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from inttower.config import Params
from inttower.errors import InttowerError

log = logging.getLogger("inttower.training")

DeviceRequest = Literal["auto", "cpu", "cuda"]
PrecisionRequest = Literal["auto", "fp32", "bf16"]


class DeviceError(InttowerError):
    """The requested device cannot be used (e.g. `cuda` on a machine without a GPU)."""


def select_device(requested: DeviceRequest | str) -> torch.device:
    """Resolve `train.device`; asking for cuda without a GPU is an error, never a CPU fallback."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda":
        if not torch.cuda.is_available():
            build = torch.version.cuda or "a CPU-only build"
            raise DeviceError(
                f"params: train.device: 'cuda' requested but no CUDA device is available "
                f"(torch {torch.__version__}, {build}); use 'auto' or 'cpu'"
            )
        return torch.device("cuda")
    raise DeviceError(f"params: train.device: {requested!r} is not one of auto, cpu, cuda")


# CPU flags of native bfloat16 arithmetic (Linux /proc/cpuinfo names)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# measured on a 2-core AMD EPYC with AVX2 only (torch 2.13, official model, ml-100k train split)
EMULATED_BF16_SLOWDOWN = "17x slower than fp32 there (240 vs 4,173 samples/s)"


def native_bf16_flags() -> list[str]:
    """The native-bfloat16 flags this CPU reports ([] when none, or when /proc is not there)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = {
        flag
        for line in text.splitlines()
        if line.startswith("flags")
        for flag in line.split(":", 1)[1].split()
    }
    return [flag for flag in NATIVE_BF16_FLAGS if flag in flags]


def _warn_if_emulated_bf16() -> None:
    if native_bf16_flags():
        return
    log.warning(
        "train.precision: bf16 on a CPU without native bfloat16 (torch CPU capability %s; "
        "no %s in /proc/cpuinfo): autocast emulates it, %s; use fp32 (or auto) here",
        torch.backends.cpu.get_cpu_capability(),
        " or ".join(NATIVE_BF16_FLAGS),
        EMULATED_BF16_SLOWDOWN,
    )


@dataclass(frozen=True)
class Precision:
    """Autocast settings from `train.precision`: `auto` is AMP on CUDA (bf16 where supported,
    else fp16 + GradScaler), bf16 on a CPU with native bf16 and fp32 on other CPUs; `bf16`
    autocasts on either device; `fp32` never. Evaluation is fp32 whatever trained the model."""

    device: torch.device
    dtype: torch.dtype | None  # None = full float32

    @classmethod
    def for_device(
        cls, device: torch.device, requested: PrecisionRequest | str = "auto"
    ) -> Precision:
        if requested == "fp32":
            return cls(device, None)
        if requested == "bf16":
            if device.type == "cuda" and not torch.cuda.is_bf16_supported():
                raise DeviceError(
                    "params: train.precision: 'bf16' requested but this GPU does not support "
                    "bfloat16; use 'auto' (fp16 with loss scaling) or 'fp32'"
                )
            if device.type == "cpu":
                _warn_if_emulated_bf16()
            return cls(device, torch.bfloat16)
        if requested != "auto":
            raise DeviceError(
                f"params: train.precision: {requested!r} is not one of auto, fp32, bf16"
            )
        # CPU: bf16 where the CPU has native bf16 (AVX512-BF16 or AMX; same quality over 5 seeds,
        # 1.4x the samples/s: docs/performance.md), fp32 elsewhere (emulated bf16 is many times
        # slower). Either way a CPU run is deterministic on its machine; the card records which.
        if device.type != "cuda":
            return cls(device, torch.bfloat16 if native_bf16_flags() else None)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return cls(device, dtype)

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    @property
    def name(self) -> str:
        return "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    def make_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is a no-op unless fp16 gradients need scaling."""
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_scaler)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            yield


@contextlib.contextmanager
def reproducible(params: Params, device: torch.device) -> Iterator[None]:
    """Seed torch, force deterministic kernels on CPU and pin the thread count; the process-wide
    settings are put back afterwards so a caller (tests, Dagster) is not left altered."""
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    threads_before = torch.get_num_threads()
    torch.manual_seed(params.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    if params.train.threads > 0:
        torch.set_num_threads(params.train.threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        torch.set_num_threads(threads_before)
