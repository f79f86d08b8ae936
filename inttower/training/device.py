"""Where training runs: an explicit device choice, and mixed precision only on CUDA."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from inttower.errors import InttowerError

DeviceRequest = Literal["auto", "cpu", "cuda"]


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


@dataclass(frozen=True)
class Precision:
    """Mixed-precision settings: bf16 where the GPU supports it, fp16 + GradScaler otherwise."""

    device: torch.device
    dtype: torch.dtype | None  # None = full float32 (always on CPU)

    @classmethod
    def for_device(cls, device: torch.device) -> Precision:
        if device.type != "cuda":
            return cls(device, None)
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
