"""ItemCache: item towers run once, and cached scores equal the full model's forward."""

from __future__ import annotations

import pytest
import torch

from inttower.errors import ConfigError
from inttower.evaluation.calibration import Calibration
from inttower.features.encoded import FieldSpec
from inttower.models import ItemCache, RankingModel, build_model

from . import random_batch, tiny_fields, tiny_params


def _catalogue_and_users() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    items = random_batch(_tower("item"), 11, generator)
    users = random_batch(_tower("user"), 5, generator)
    return items, users


def _tower(tower: str) -> list[FieldSpec]:
    return [spec for spec in tiny_fields() if spec.tower == tower]


def _full_forward(
    model: RankingModel, users: dict, items: dict, user_rows, item_rows
) -> torch.Tensor:
    pairs = {name: tensor[user_rows] for name, tensor in users.items()}
    pairs |= {name: tensor[item_rows] for name, tensor in items.items()}
    model.eval()
    with torch.no_grad():
        return model(pairs).logits


@pytest.mark.parametrize(
    ("name", "tower_bias"), [("inttower", True), ("inttower", False), ("dssm", False)]
)
def test_cached_scores_equal_the_full_forward(name: str, tower_bias: bool) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_fields(), tiny_params(name, tower_bias=tower_bias))
    if tower_bias:  # the bias heads start at zero: make them count
        with torch.no_grad():
            model.user_bias.weight.normal_()
            model.item_bias.weight.normal_()
    items, users = _catalogue_and_users()
    cache = ItemCache.build(model, items, batch_size=4)  # several item batches
    assert len(cache) == 11
    assert (cache.item_bias is not None) == tower_bias

    one_each = torch.tensor([3, 0, 10, 3, 7])
    assert torch.allclose(
        cache.score(users, one_each),
        _full_forward(model, users, items, torch.arange(5), one_each),
        atol=1e-5,
    )

    every_item = cache.score(users, batch_size=2)
    user_rows = torch.arange(5).repeat_interleave(11)
    item_rows = torch.arange(11).repeat(5)
    assert every_item.shape == (5, 11)
    assert torch.allclose(
        every_item.flatten(), _full_forward(model, users, items, user_rows, item_rows), atol=1e-5
    )

    candidates = torch.tensor([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
    assert torch.allclose(
        cache.score(users, candidates), every_item.gather(1, candidates), atol=1e-5
    )


def test_cache_uses_eval_mode_and_restores_training_mode() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_fields(), tiny_params("inttower", dropout=0.5))
    items, users = _catalogue_and_users()
    model.train()

    first = ItemCache.build(model, items).score(users)
    second = ItemCache.build(model, items).score(users)

    assert model.training
    assert torch.equal(first, second)  # no dropout noise in cached scores


def test_single_tower_model_cannot_be_cached() -> None:
    model = build_model(tiny_fields(), tiny_params("dnn"))
    items, _ = _catalogue_and_users()
    with pytest.raises(ConfigError, match="single-tower"):
        ItemCache.build(model, items)


def test_cached_probabilities_are_the_calibrated_ones_evaluation_reports() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_fields(), tiny_params("inttower", tower_bias=True))
    items, users = _catalogue_and_users()
    cache = ItemCache.build(model, items)
    calibration = Calibration("platt", scale=0.7, bias=0.3, fitted_on=100)
    probabilities = cache.probabilities(users, calibration)
    expected = calibration.probabilities(cache.score(users).numpy())
    assert probabilities.dtype == torch.float64 and probabilities.shape == (5, 11)
    assert torch.allclose(probabilities, torch.from_numpy(expected), atol=1e-12)
