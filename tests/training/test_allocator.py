"""The training allocator setting in a fresh glibc process: large tensors come from the heap
while it applies, and from fresh mappings again once it is left."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# A fresh interpreter: no freed block left in the heap by earlier tests can serve the tensor.
PROBE = """
import json, sys
from pathlib import Path
import torch
from inttower.training.allocator import reused_host_memory

LARGE = 64 * 2**20  # above glibc's largest mmap threshold (32 MiB)

def heap():
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith("[heap]"):
            start, end = (int(part, 16) for part in line.split()[0].split("-"))
            return end - start
    return 0

def growth():
    before = heap()
    tensor = torch.empty(LARGE, dtype=torch.uint8)
    grown = heap() - before
    del tensor
    return grown >= LARGE

result = {"default": growth()}
with reused_host_memory(torch.device(sys.argv[1])) as applied:
    result["applied"] = applied
    result["inside"] = growth()
result["after"] = growth()
print(json.dumps(result))
"""


def _probe(device: str) -> dict[str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, device], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_large_tensors_come_from_the_heap_only_while_training_on_cpu() -> None:
    assert _probe("cpu") == {"default": False, "applied": True, "inside": True, "after": False}


def test_not_applied_for_cuda() -> None:
    assert _probe("cuda") == {"default": False, "applied": False, "inside": False, "after": False}
