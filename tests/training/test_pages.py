"""A split's mapped pages leave the process's RSS and come back intact from the file cache."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from inttower.io import load_tensors
from inttower.training.pages import file_mappings, release_file_pages

pytestmark = pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/self/smaps")


def _resident_kib(path: Path) -> int:
    """Rss of this process's mappings of `path`, from /proc/self/smaps."""
    target, total, inside = str(path.resolve()), 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header
            inside = len(fields) == 6 and fields[5] == target
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


def test_released_pages_leave_rss_and_the_tensors_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "train.safetensors"
    generator = torch.Generator().manual_seed(3)
    written = {
        "ids": torch.randint(0, 1 << 30, (4_000_000,), generator=generator),  # 32 MB of int64
        "dense": torch.rand(1_000_000, 4, generator=generator),
    }
    save_file(written, str(path))
    tensors = load_tensors(path)
    assert file_mappings(path), "safetensors maps the file"
    checksum = {name: int(t.double().sum().item() * 1000) for name, t in tensors.items()}
    touched = _resident_kib(path)
    assert touched > 40_000  # every page read: ~48 MB resident

    assert release_file_pages(path) >= path.stat().st_size
    assert _resident_kib(path) < touched // 10

    for name, tensor in tensors.items():  # re-read from the page cache, not zeros
        assert torch.equal(tensor, written[name]), name
        assert int(tensor.double().sum().item() * 1000) == checksum[name]


def test_a_file_that_is_not_mapped_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "never_opened.safetensors"
    save_file({"x": torch.ones(10)}, str(path))
    heap = torch.arange(1_000_000)
    assert file_mappings(path) == []
    assert release_file_pages(path) == 0
    assert torch.equal(heap, torch.arange(1_000_000))
