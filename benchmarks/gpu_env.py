"""The GPU proof's first part: which torch, CUDA, GPU and packages the figures that follow came from.

Also imports every third-party module the later parts reach, so a missing wheel shows up here
first, named, instead of as a traceback halfway through a timed part."""

from __future__ import annotations

import importlib
import platform
import sys

from gpu_record import record  # benchmarks/ is on sys.path: these run as scripts

# third-party modules imported on the proof's code paths (inttower + tests + benchmarks)
MODULES = [
    "torch", "numpy", "polars", "pandera", "pydantic", "pydantic_core", "pandas", "pyarrow",
    "sklearn", "scipy", "safetensors", "yaml", "tqdm", "matplotlib", "onnx", "onnxruntime",
    "typeguard", "typing_extensions", "psutil", "pytest", "dagster",
]  # fmt: skip


def main() -> None:
    facts: dict[str, object] = {"python": sys.version.split()[0], "machine": platform.machine()}
    versions: dict[str, str] = {}
    for name in MODULES:
        try:
            module = importlib.import_module(name)
            versions[name] = str(getattr(module, "__version__", "?"))
        except Exception as error:  # a missing module is a fact to report, not a crash
            versions[name] = f"MISSING ({type(error).__name__}: {error})"
    facts["versions"] = versions

    import onnxruntime
    import torch

    facts["torch"] = torch.__version__
    facts["torch_cuda"] = torch.version.cuda
    facts["cuda_available"] = torch.cuda.is_available()
    facts["onnxruntime_providers"] = onnxruntime.get_available_providers()
    facts["cpu_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "cudnn": torch.backends.cudnn.version(),
        }
    for key, value in facts.items():
        print(f"{key}: {value}")
    record("env", facts)


if __name__ == "__main__":
    main()
