"""The model card: what a trained model is made of (params, the encoded data's md5s, its
history), written by training; its lineage is checked by every stage that reads the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from inttower.config import Params
from inttower.errors import StageInputError
from inttower.features.encoded import encoded_hashes
from inttower.io import Summary, known_fields, read_json
from inttower.pipeline.paths import Paths

if TYPE_CHECKING:
    from inttower.training.checkpoint import TrainingState


def model_card(
    params: Params,
    hashes: dict[str, str],
    state: TrainingState,
    *,
    stopped_early: bool,
    n_parameters: int,
    n_train: int,
    n_valid: int,
    device: torch.device,
    world_size: int,
    precision: str,
) -> dict[str, Any]:
    """The card of the model kept at `state.best_epoch`: no timings (it is versioned, and equal
    for equal runs)."""
    best = state.history[state.best_epoch - 1]
    return {
        "model": params.model.name,
        "as_of": params.data.as_of,
        "params": params.model_dump(mode="json"),
        "data_md5": hashes,
        "best_epoch": state.best_epoch,
        "epochs_run": state.epoch,
        "stopped_early": stopped_early,
        "history": state.history,
        "valid": {"auc": best["valid_auc"], "logloss": best["valid_logloss"]},
        "n_parameters": n_parameters,
        "n_train": n_train,
        "n_valid": n_valid,
        "device": str(device),
        "world_size": world_size,
        "precision": precision,
        "torch_version": torch.__version__,
    }


def check_model_lineage(params: Params, paths: Paths) -> None:
    """Refuse a model whose card names other encoded data or other `model` params: what reads
    the model (evaluation, the serving export) describes the current inputs or nothing."""
    weights, card_path = paths["model.weights"], paths["model.card"]
    for required in (weights, card_path):
        if not required.exists():
            raise StageInputError(f"{required} not found: run the `train` stage first")
    card = read_json(card_path)
    current = encoded_hashes(paths["encoded"])
    stale = sorted(
        name for name, digest in card.get("data_md5", {}).items() if current.get(name) != digest
    )
    if stale:
        raise StageInputError(
            f"{card_path}: model was trained on other encoded data ({', '.join(stale)} changed); "
            "run the `train` stage again"
        )
    trained_with = card.get("params", {}).get("model")
    if trained_with != params.model.model_dump(mode="json"):
        raise StageInputError(
            f"{card_path}: model was trained with other `model` params; run the `train` stage again"
        )


@dataclass(frozen=True)
class TrainTimings:
    samples_per_second: float  # the whole split per epoch, every rank together
    train_seconds: float
    epoch_seconds: list[float]
    wall_seconds: float
    resumed_from_epoch: int | None


@dataclass(frozen=True)
class TrainSummary(Summary):
    """The model card's headline and this process's timings; what rank 0 hands back through a
    file (torchrun) or a Pipes message, so it round-trips through JSON."""

    best_epoch: int
    epochs_run: int
    stopped_early: bool
    n_parameters: int
    device: str
    world_size: int
    precision: str
    valid_auc: float | None  # None when valid holds one class
    valid_logloss: float | None
    model_path: str
    timing: TrainTimings

    def timings(self) -> dict[str, Any]:
        return asdict(self.timing)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TrainSummary:
        return cls(**{**known_fields(cls, raw), "timing": TrainTimings(**raw["timing"])})
