"""Model names in params.yaml (`model.name`) mapped to the classes that build them."""

from __future__ import annotations

from collections.abc import Callable

from inttower.config import ModelParams
from inttower.errors import ConfigError
from inttower.features.encoded import FieldSpec
from inttower.models.baselines import DCNV2, DNN, DSSM
from inttower.models.towers import IntTower, RankingModel

MODELS: dict[str, Callable[[list[FieldSpec], ModelParams], RankingModel]] = {
    "inttower": IntTower,
    "dssm": DSSM,
    "dnn": DNN,
    "dcnv2": DCNV2,
}


def build_model(fields: list[FieldSpec], params: ModelParams) -> RankingModel:
    """Build the model `params.name` names; seed torch before calling for reproducible weights."""
    try:
        constructor = MODELS[params.name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ConfigError("model.name", f"unknown model {params.name!r}; known: {known}") from None
    return constructor(fields, params)
