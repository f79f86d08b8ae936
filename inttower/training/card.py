"""The model card: what a trained model is made of (params, the encoded data's md5s, its
history), written by training; its lineage is checked by every stage that reads the model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from inttower.config import Params
from inttower.errors import StageInputError
from inttower.features.encoded import encoded_hashes
from inttower.io import read_json
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
