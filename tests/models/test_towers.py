"""IntTower: shapes, FE-Block wiring, stability at the official size, determinism, learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from inttower.config import ModelParams
from inttower.errors import ConfigError
from inttower.models import DNN, DSSM, IntTower, ModelOutput, build_model, objective_loss
from inttower.models.layers import maxsim_candidates

from . import one_thread, random_batch, tiny_fields, tiny_params, train_and_auc


def test_forward_returns_logits_and_unit_reprs() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_fields(), tiny_params())
    batch = random_batch(tiny_fields(), 9, torch.Generator().manual_seed(0))

    output = model(batch)

    assert isinstance(output, ModelOutput)
    assert output.logits.shape == (9,)
    assert output.user_repr.shape == output.item_repr.shape == (9, 16)  # last hidden layer
    assert torch.allclose(output.user_repr.norm(dim=1), torch.ones(9), atol=1e-5)
    assert torch.allclose(output.item_repr.norm(dim=1), torch.ones(9), atol=1e-5)


@pytest.mark.parametrize("hidden_units", [[16], [32, 16], [32, 32, 16, 8]])
def test_every_user_layer_feeds_the_fe_block(hidden_units: list[int]) -> None:
    model = IntTower(tiny_fields(), tiny_params(hidden_units=hidden_units, heads=3, head_dim=5))
    batch = random_batch(tiny_fields(), 4, torch.Generator().manual_seed(0))

    user = model.user_tower(batch)
    item = model.item_tower(batch)

    assert model.n_layers == len(hidden_units)
    assert user.vectors.shape == (4, len(hidden_units) * 3, 5)
    assert item.vectors.shape == (4, 3, 5)


def test_logit_is_the_scaled_maxsim_over_user_layers_and_heads() -> None:
    torch.manual_seed(0)
    params = tiny_params(hidden_units=[16, 8], heads=3, head_dim=4, tower_bias=False)
    model = IntTower(tiny_fields(), params).eval()
    with torch.no_grad():
        model.log_scale.fill_(math.log(2.0))
        model.bias.fill_(-0.5)
    batch = random_batch(tiny_fields(), 6, torch.Generator().manual_seed(0))

    with torch.no_grad():
        logits = model(batch).logits
        user = model.user_tower(batch).vectors
        item = model.item_tower(batch).vectors
    raw = maxsim_candidates(user, item.unsqueeze(1)).squeeze(1)

    expected = 2.0 * raw / (2 * 3 * math.sqrt(4)) - 0.5  # L·H·√d normaliser
    assert torch.allclose(logits, expected, atol=1e-5)


def test_tower_biases_add_a_user_and_an_item_term_to_the_maxsim_logit() -> None:
    torch.manual_seed(0)
    model = IntTower(tiny_fields(), tiny_params(hidden_units=[16, 8], heads=3, head_dim=4)).eval()
    with torch.no_grad():
        model.user_bias.weight.normal_()
        model.item_bias.weight.normal_()
    batch = random_batch(tiny_fields(), 6, torch.Generator().manual_seed(0))

    with torch.no_grad():
        logits = model(batch).logits
        user = model.user_tower(batch)
        item = model.item_tower(batch)
        interaction = model.score_candidates(user.vectors, item.vectors.unsqueeze(1)).squeeze(1)

    assert user.bias.shape == item.bias.shape == (6,)
    assert user.bias.abs().sum() > 0 and item.bias.abs().sum() > 0
    assert torch.allclose(logits, interaction + user.bias + item.bias, atol=1e-5)


def test_without_tower_biases_there_are_no_bias_heads() -> None:
    model = IntTower(tiny_fields(), tiny_params(tower_bias=False))
    batch = random_batch(tiny_fields(), 3, torch.Generator().manual_seed(0))
    assert model.user_bias is None and model.item_bias is None
    assert model.user_tower(batch).bias is None and model.item_tower(batch).bias is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_initial_logits_are_moderate_at_the_official_size(seed: int) -> None:
    # The official model's saturated first-epoch logits stall half its seeds at AUC ≈ 0.52.
    torch.manual_seed(seed)
    model = build_model(tiny_fields(), ModelParams())  # embedding 32, 300-300-128, 32 × 64 heads
    batch = random_batch(tiny_fields(), 256, torch.Generator().manual_seed(100 + seed))

    for mode in (True, False):
        model.train(mode)
        with torch.no_grad(), one_thread():
            output = model(batch)
            user = model.user_tower(batch).vectors
            item = model.item_tower(batch).vectors
        probabilities = torch.sigmoid(output.logits)
        assert torch.isfinite(output.logits).all()
        assert output.logits.std() < 3 and output.logits.abs().mean() < 3
        assert ((probabilities > 0.02) & (probabilities < 0.98)).all()
        # Not saturated inside either: the user heads choose among many item heads, not one.
        choices = torch.bmm(user, item.transpose(1, 2)).argmax(dim=2)
        assert choices.unique().numel() > item.shape[1] // 2


def test_same_seed_same_weights_and_no_hidden_reseeding() -> None:
    def weights_after(seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        torch.manual_seed(seed)
        model = build_model(tiny_fields(), tiny_params())
        return model.state_dict(), torch.rand(3)  # the global stream continues after the build

    first, after_first = weights_after(7)
    again, after_again = weights_after(7)
    other, after_other = weights_after(8)

    assert all(torch.equal(first[name], again[name]) for name in first)
    assert torch.equal(after_first, after_again)
    assert not torch.equal(first["item_heads.weight"], other["item_heads.weight"])
    assert not torch.equal(after_first, after_other)  # a constructor that reseeds would match


def test_embedding_l2_covers_whole_tables_and_parameters_are_counted() -> None:
    model = build_model(tiny_fields(), tiny_params())
    tables = [module.weight for module in model.modules() if isinstance(module, torch.nn.Embedding)]

    assert len(tables) == 5  # user_id, taste, history, item_id, genre
    assert torch.allclose(model.embedding_l2(), sum(table.pow(2).sum() for table in tables))
    assert model.n_parameters() == sum(p.numel() for p in model.parameters())


def test_registry_builds_each_named_model() -> None:
    fields = tiny_fields()
    assert isinstance(build_model(fields, tiny_params("inttower")), IntTower)
    assert isinstance(build_model(fields, tiny_params("dssm")), DSSM)
    assert isinstance(build_model(fields, tiny_params("dnn")), DNN)
    unvalidated = ModelParams.model_construct(name="colbert")
    with pytest.raises(ConfigError, match=r"model\.name"):
        build_model(fields, unvalidated)


def test_cir_reprs_carry_gradient_to_both_towers() -> None:
    model = build_model(tiny_fields(), tiny_params())
    output = model(random_batch(tiny_fields(), 8, torch.Generator().manual_seed(0)))
    F.mse_loss(output.user_repr, output.item_repr).backward()
    assert model.user_encoder.mlp.layers[0][0].weight.grad.abs().sum() > 0
    assert model.item_encoder.mlp.layers[0][0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inttower_learns_a_planted_signal_for_every_seed(seed: int) -> None:
    torch.manual_seed(seed)
    model = build_model(tiny_fields(), tiny_params())
    assert train_and_auc(model) > 0.8


@pytest.mark.parametrize("name", ["inttower", "dssm", "dnn", "dcnv2"])
def test_models_train_under_mixed_precision_autocast(name: str) -> None:
    # The training loop runs CUDA steps under autocast; bf16 on CPU exercises the same dtype rules.
    torch.manual_seed(0)
    params = tiny_params(name, cir_weight=0.2)
    model = build_model(tiny_fields(), params)
    batch = random_batch(tiny_fields(), 16, torch.Generator().manual_seed(0))
    labels = torch.tensor([1.0, 0.0] * 8)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        parts = objective_loss(model, model(batch), labels, None, params, "bce")
    parts["loss"].backward()

    assert torch.isfinite(parts["loss"])
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_the_id_path_adds_exactly_the_id_dot_product_and_nothing_for_unknown_ids() -> None:
    torch.manual_seed(0)
    model = IntTower(tiny_fields(), tiny_params(id_dim=3)).eval()
    batch = random_batch(tiny_fields(), 8, torch.Generator().manual_seed(1))
    batch["user_id"][:2] = 1  # unknown users: no id term
    batch["item_id"][2] = 0  # padding: no id term either
    with torch.no_grad():
        model.user_ids.weight.normal_()
        model.item_ids.weight.normal_()
        with_ids = model(batch).logits
        user, item = batch["user_id"], batch["item_id"]
        dot = (model.user_ids(user) * model.item_ids(item)).sum(1) * model.log_scale.exp()
        model.user_ids.weight.zero_()
        without = model(batch).logits
    known = (user > 1) & (item > 1)
    assert torch.allclose(with_ids - without, torch.where(known, dot, 0.0), atol=1e-4)
    # the vectors only widen: what the item cache and the ONNX scorer hold
    assert model.user_tower(batch).vectors.shape[-1] == model.head_dim + 3
    assert model.item_tower(batch).vectors.shape[-1] == model.head_dim + 3


def test_the_id_path_scores_cached_items_as_the_forward_pass_does() -> None:
    torch.manual_seed(0)
    model = IntTower(tiny_fields(), tiny_params(id_dim=3)).eval()
    batch = random_batch(tiny_fields(), 5, torch.Generator().manual_seed(2))
    with torch.no_grad():
        model.user_ids.weight.normal_()
        model.item_ids.weight.normal_()
        forward = model(batch).logits
        user, item = model.user_tower(batch), model.item_tower(batch)
        every = model.score_all(user.vectors, item.vectors) + user.bias[:, None] + item.bias
    assert torch.allclose(every.diagonal(), forward, atol=1e-5)
