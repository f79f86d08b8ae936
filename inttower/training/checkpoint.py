"""Per-epoch checkpoints without pickle: tensors in safetensors, everything else in JSON.

Each epoch writes `epoch-NNNN.safetensors` (model, optimiser moments, best weights, RNG states)
and then `latest.json` (epoch, history, early-stopping state, optimiser hyper-parameters) that
names it. Both writes are atomic and the JSON comes last, so a run killed at any instant leaves
either the previous complete checkpoint or the new one, never a torn one.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from inttower.errors import InttowerError
from inttower.io import atomic_path, load_tensors, read_json, write_json

FORMAT_VERSION = 1
LATEST = "latest.json"

logger = logging.getLogger("inttower.training")


@dataclass
class TrainingState:
    """Where a run stands after its last completed epoch; everything early stopping needs."""

    epoch: int = 0  # last completed epoch (1-based); 0 before the first
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_auc: float | None = None
    epochs_without_gain: int = 0
    finished: bool = False
    train_seconds: float = 0.0  # time in optimiser steps, summed over every (resumed) process
    samples_seen: int = 0


def _cpu_copy(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied weights, views)
    return {
        name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in tensors.items()
    }


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's weights, detached from the live parameters."""
    return _cpu_copy(model.state_dict())


def save_checkpoint(
    directory: Path,
    fingerprint: str,
    state: TrainingState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    best_state: dict[str, torch.Tensor],
) -> Path:
    """Write the checkpoint of the epoch just finished and drop older ones."""
    directory = Path(directory)
    tensors_name = f"epoch-{state.epoch:04d}.safetensors"
    tensors: dict[str, torch.Tensor] = {}
    tensors.update({f"model/{k}": v for k, v in model_state(model).items()})
    tensors.update({f"best/{k}": v for k, v in _cpu_copy(best_state).items()})

    optimizer_dict = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in optimizer_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().to("cpu", copy=True)
            else:
                scalars.setdefault(str(index), {})[key] = value

    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for device_index, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{device_index}"] = rng

    with atomic_path(directory / tensors_name) as temporary:
        save_file(tensors, str(temporary))
    write_json(
        {
            "format": FORMAT_VERSION,
            "fingerprint": fingerprint,
            "tensors": tensors_name,
            "state": asdict(state),
            "optimizer": {"param_groups": optimizer_dict["param_groups"], "scalars": scalars},
            "scaler": scaler.state_dict(),
        },
        directory / LATEST,
    )
    _remove_stale(directory, keep=tensors_name)
    return directory / LATEST


def load_checkpoint(
    directory: Path,
    fingerprint: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> tuple[TrainingState, dict[str, torch.Tensor]] | None:
    """Restore model, optimiser, scaler and RNG from the last checkpoint and return the run state
    and best weights; None (start afresh) when there is none or it belongs to other params/data."""
    latest = Path(directory) / LATEST
    if not latest.exists():
        return None
    meta = read_json(latest)
    if meta.get("format") != FORMAT_VERSION or meta.get("fingerprint") != fingerprint:
        logger.warning("checkpoint in %s is from other params or data; starting afresh", directory)
        return None
    try:
        tensors = load_tensors(Path(directory) / meta["tensors"])
    except (OSError, InttowerError) as exc:  # missing or torn: not resumable, start afresh
        logger.warning("checkpoint %s unreadable (%s); starting afresh", meta["tensors"], exc)
        return None

    model.load_state_dict(_section(tensors, "model/"))
    optimizer.load_state_dict(_optimizer_dict(meta["optimizer"], _section(tensors, "optimizer/")))
    if meta["scaler"]:
        scaler.load_state_dict(meta["scaler"])
    torch.set_rng_state(tensors["rng/torch"])
    cuda_states = _section(tensors, "rng/cuda/")
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda_states[str(i)] for i in range(len(cuda_states))])
    return TrainingState(**meta["state"]), _section(tensors, "best/")


def clear_checkpoints(directory: Path) -> None:
    """Remove every checkpoint, so a fresh run can never be mistaken for a resumable one."""
    directory = Path(directory)
    (directory / LATEST).unlink(missing_ok=True)
    _remove_stale(directory, keep=None)


def _remove_stale(directory: Path, keep: str | None) -> None:
    for path in [*directory.glob("epoch-*.safetensors"), *directory.glob(".*.part")]:
        if path.name != keep:
            path.unlink(missing_ok=True)


def _section(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}


def _optimizer_dict(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    # JSON turned tuples such as Adam's betas into lists
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}
