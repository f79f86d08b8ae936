"""The model card's lineage, checked by every stage that reads a trained model."""

from __future__ import annotations

from inttower.config import Params
from inttower.errors import StageInputError
from inttower.features.encoded import encoded_hashes
from inttower.io import read_json
from inttower.pipeline.paths import Paths


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
