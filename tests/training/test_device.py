from __future__ import annotations

import logging

import pytest
import torch

from inttower.errors import InttowerError
from inttower.training import device as device_module
from inttower.training.device import DeviceError, Precision, native_bf16_flags, select_device


def test_cpu_is_always_available() -> None:
    assert select_device("cpu") == torch.device("cpu")


def test_cuda_without_a_gpu_is_an_error_not_a_cpu_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"train\.device") as caught:
        select_device("cuda")
    assert isinstance(caught.value, InttowerError)


def test_auto_picks_cpu_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")


def test_auto_picks_cuda_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")


def test_unknown_device_names_the_parameter() -> None:
    with pytest.raises(DeviceError, match=r"train\.device"):
        select_device("tpu")


def test_cpu_auto_is_bf16_only_where_the_cpu_has_it_natively() -> None:
    precision = Precision.for_device(torch.device("cpu"))
    assert precision.dtype == (torch.bfloat16 if native_bf16_flags() else None)
    assert not precision.needs_scaler
    assert not precision.make_scaler().is_enabled()


def test_cpu_autocasts_to_bf16_when_asked() -> None:
    cpu = torch.device("cpu")
    assert Precision.for_device(cpu, "fp32").dtype is None
    precision = Precision.for_device(cpu, "bf16")
    assert precision.dtype == torch.bfloat16 and precision.name == "bfloat16"
    assert not precision.make_scaler().is_enabled()  # bf16 has fp32's range: no loss scaling
    with precision.autocast():
        product = torch.ones(4, 4) @ torch.ones(4, 4)
    assert product.dtype == torch.bfloat16


def test_fp32_never_autocasts_even_on_cuda() -> None:
    assert Precision.for_device(torch.device("cuda"), "fp32").dtype is None


def test_unknown_precision_names_the_parameter() -> None:
    with pytest.raises(DeviceError, match=r"train\.precision"):
        Precision.for_device(torch.device("cpu"), "fp8")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_uses_mixed_precision() -> None:
    precision = Precision.for_device(select_device("cuda"))
    assert precision.dtype in (torch.bfloat16, torch.float16)
    assert precision.needs_scaler == (precision.dtype == torch.float16)
    with precision.autocast():
        product = torch.ones(4, 4, device="cuda") @ torch.ones(4, 4, device="cuda")
    assert product.dtype == precision.dtype


def test_bf16_on_a_cpu_without_native_bf16_warns_with_the_capability(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(device_module, "native_bf16_flags", lambda: [])
    with caplog.at_level(logging.WARNING, logger="inttower.training"):
        precision = Precision.for_device(torch.device("cpu"), "bf16")
    assert precision.name == "bfloat16"  # asked for, so used (and the card says so)
    (record,) = caplog.records
    message = record.getMessage()
    assert "without native bfloat16" in message
    assert torch.backends.cpu.get_cpu_capability() in message and "17x slower" in message


def test_bf16_on_a_cpu_with_native_bf16_is_quiet(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(device_module, "native_bf16_flags", lambda: ["amx_bf16"])
    with caplog.at_level(logging.WARNING, logger="inttower.training"):
        Precision.for_device(torch.device("cpu"), "bf16")
        Precision.for_device(torch.device("cpu"), "auto")
    assert not caplog.records


def test_auto_follows_the_cpus_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_module, "native_bf16_flags", lambda: [])
    assert Precision.for_device(cpu, "auto").dtype is None
    monkeypatch.setattr(device_module, "native_bf16_flags", lambda: ["amx_bf16"])
    assert Precision.for_device(cpu, "auto").dtype == torch.bfloat16
