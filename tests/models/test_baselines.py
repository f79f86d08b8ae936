"""DSSM (learned cosine scale), the single-tower DNN and DCN-V2."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from inttower.models import DCNV2, DNN, DSSM, build_model
from inttower.models.baselines import DSSM_INITIAL_SCALE, CrossLayer

from . import planted_problem, random_batch, tiny_fields, tiny_params, train_and_auc


def test_dssm_logit_is_learned_scale_times_cosine_plus_bias() -> None:
    torch.manual_seed(0)
    model = DSSM(tiny_fields(), tiny_params("dssm")).eval()
    batch = random_batch(tiny_fields(), 6, torch.Generator().manual_seed(0))

    with torch.no_grad():
        output = model(batch)
        user = F.normalize(model.user_encoder(batch)[-1], dim=1)
        item = F.normalize(model.item_encoder(batch)[-1], dim=1)
    cosine = (user * item).sum(dim=1)

    assert torch.allclose(output.logits, DSSM_INITIAL_SCALE * cosine, atol=1e-4)  # bias 0
    assert torch.allclose(output.user_repr, user) and torch.allclose(output.item_repr, item)
    assert model.log_scale.requires_grad and model.bias.requires_grad


def test_dssm_is_not_confined_to_the_official_sigmoid_cosine_range() -> None:
    # sigmoid(cos) lives in 0.27–0.73; a learned scale lets confident pairs leave that band.
    torch.manual_seed(0)
    model = build_model(tiny_fields(), tiny_params("dssm"))
    assert train_and_auc(model) > 0.8
    inputs, _ = planted_problem(1024, seed=3)
    with torch.no_grad():
        probabilities = torch.sigmoid(model(inputs).logits)
    assert probabilities.min() < 0.1 and probabilities.max() > 0.9
    assert math.exp(model.log_scale.item()) != pytest.approx(DSSM_INITIAL_SCALE)  # s was learned


def test_dnn_sees_every_field_and_has_no_tower_reprs() -> None:
    model = DNN(tiny_fields(), tiny_params("dnn"))
    batch = random_batch(tiny_fields(), 5, torch.Generator().manual_seed(0))

    output = model(batch)

    assert output.logits.shape == (5,)
    assert output.user_repr is None and output.item_repr is None
    assert set(model.embedding.tables) == {"user_id", "taste", "history", "item_id", "genre"}
    assert model.embedding.n_dense == 2


def test_dnn_learns_a_planted_signal() -> None:
    torch.manual_seed(0)
    assert train_and_auc(build_model(tiny_fields(), tiny_params("dnn"))) > 0.8


def test_a_cross_layer_is_x0_times_a_linear_map_of_x_plus_x() -> None:
    layer = CrossLayer(2)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
        layer.linear.bias.copy_(torch.tensor([0.5, 1.0]))
    x0 = torch.tensor([[2.0, 3.0]])
    x = torch.tensor([[1.0, -1.0]])
    # W x + b = [1·1 + 2·(−1) + 0.5, 0·1 − 1·(−1) + 1] = [−0.5, 2]; x0 ⊙ that + x = [0, 5]
    assert torch.allclose(layer(x0, x), torch.tensor([[0.0, 5.0]]))


def test_dcnv2_crosses_every_field_and_learns_a_planted_signal() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_fields(), tiny_params("dcnv2"))
    assert isinstance(model, DCNV2) and len(model.cross) == 3
    output = model(random_batch(tiny_fields(), 5, torch.Generator().manual_seed(0)))
    assert output.logits.shape == (5,) and output.user_repr is None
    assert train_and_auc(model) > 0.8
