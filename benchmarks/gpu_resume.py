"""Determinism and resume of `train_model` on the GPU, measured rather than asserted.

The CPU tests assert bit-identical weights for one seed and a mid-epoch kill that resumes to the
uninterrupted result; on CUDA some kernels (embedding backward's atomics) need not be
deterministic. This trains tests/training/helpers.py's tiny project with `train.device: cuda`
(AMP as `auto` picks it) and reports, for each claim, whether it held and the largest weight
difference: the same seed twice; the same with torch.use_deterministic_algorithms(True) (or the
op that refuses it); a run stopped mid epoch 3 (an exception from the loss) then resumed, against
the straight run. On a CPU it checks the same on CPU (the rehearsal)."""

from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: cuBLAS reads it

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

import torch
from gpu_record import record  # benchmarks/ is on sys.path: these run as scripts
from safetensors.torch import load_file

import inttower.training.train as train_module
from inttower.config import Params
from inttower.features.encoded import load_split
from inttower.pipeline.paths import Paths
from inttower.training.card import TrainSummary
from tests.training.helpers import tiny_params, write_tiny_project

PART = "determinism_resume"


class Stopped(RuntimeError):
    """Raised from the loss mid-epoch: stands for a killed process."""


def _weights(paths: Paths) -> dict[str, torch.Tensor]:
    return load_file(str(paths["model.weights"]))


def _max_difference(first: Paths, second: Paths) -> float:
    a, b = _weights(first), _weights(second)
    return max(float((a[name].double() - b[name].double()).abs().max()) for name in a)


def _identical(first: Paths, second: Paths) -> bool:
    a, b = _weights(first), _weights(second)
    return all(torch.equal(a[name], b[name]) for name in a)


def _train(params: Params, paths: Paths, resume: bool = False) -> dict[str, Any]:
    summary = train_model_quiet(params, paths, resume)
    return {
        "device": summary.device,
        "precision": summary.precision,
        "valid_auc": summary.valid_auc,
        "epochs_run": summary.epochs_run,
    }


def train_model_quiet(params: Params, paths: Paths, resume: bool) -> TrainSummary:
    summary = train_module.train_model(params, paths, resume=resume, progress=False)
    assert summary is not None  # one process: rank 0
    return summary


def compare(name: str, first: Paths, second: Paths) -> dict[str, Any]:
    return {
        "check": name,
        "bit_identical": _identical(first, second),
        "max_abs_weight_difference": _max_difference(first, second),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--events", type=int, default=3000)
    args = parser.parse_args()
    params = tiny_params(**{"train.device": args.device, "train.epochs": 4, "train.patience": 4})
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="inttower-gpu-resume-") as scratch:
        root = Path(scratch)
        runs = {
            n: write_tiny_project(root / n, n_events=args.events) for n in ("a", "b", "c", "d", "e")
        }
        first = _train(params, runs["a"])
        _train(params, runs["b"])
        results.append({**compare("same seed twice", runs["a"], runs["b"]), **first})
        record(PART, {"results": results})
        print(results[-1], flush=True)

        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            _train(params, runs["c"])
            _train(params, runs["d"])
            results.append(
                compare("same seed twice, deterministic algorithms", runs["c"], runs["d"])
            )
            results[-1]["deterministic_vs_default"] = _max_difference(runs["a"], runs["c"])
        except RuntimeError as error:  # an op with no deterministic CUDA kernel says which
            results.append({"check": "deterministic algorithms", "error": str(error)[:500]})
        finally:
            torch.use_deterministic_algorithms(before)
        record(PART, {"results": results})
        print(results[-1], flush=True)

        batches = math.ceil(
            len(load_split(runs["e"]["encoded"], "train")) / params.train.batch_size
        )
        stop_at = 2 * batches + batches // 2  # mid epoch 3
        real_loss, calls = train_module.objective_loss, 0

        def loss_then_stop(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == stop_at:
                raise Stopped(f"stopped at step {calls}")
            return real_loss(*args, **kwargs)

        train_module.objective_loss = loss_then_stop
        try:
            train_model_quiet(params, runs["e"], resume=False)
            stopped = "not stopped"
        except Stopped as error:
            stopped = str(error)
        finally:
            train_module.objective_loss = real_loss
        resumed = train_model_quiet(params, runs["e"], resume=True)
        row = compare("stopped mid epoch 3, resumed, vs straight", runs["a"], runs["e"])
        row.update(
            {
                "stopped": stopped,
                "resumed_from_epoch": resumed.timing.resumed_from_epoch,
                "valid_auc_straight": first["valid_auc"],
                "valid_auc_resumed": resumed.valid_auc,
            }
        )
        results.append(row)
        record(PART, {"results": results})
        print(results[-1], flush=True)


if __name__ == "__main__":
    main()
