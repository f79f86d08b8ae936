"""Models: IntTower, the DSSM, DNN and DCN-V2 baselines, their losses, and an item-tower cache."""

from inttower.models.baselines import DCNV2, DNN, DSSM
from inttower.models.item_cache import ItemCache
from inttower.models.losses import bce_loss, info_nce, objective_loss, ranknet_loss
from inttower.models.registry import MODELS, build_model
from inttower.models.towers import (
    IntTower,
    ModelOutput,
    RankingModel,
    TowerOutput,
    TwoTowerModel,
)

__all__ = [
    "DCNV2",
    "DNN",
    "DSSM",
    "MODELS",
    "IntTower",
    "ItemCache",
    "ModelOutput",
    "RankingModel",
    "TowerOutput",
    "TwoTowerModel",
    "bce_loss",
    "build_model",
    "info_nce",
    "objective_loss",
    "ranknet_loss",
]
