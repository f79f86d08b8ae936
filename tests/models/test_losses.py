"""BCE, CIR (in-batch InfoNCE with margin), RankNet in matrix form, and the combined objective."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from inttower.errors import ConfigError
from inttower.models import bce_loss, build_model, info_nce, objective_loss, ranknet_loss

from . import random_batch, tiny_fields, tiny_params


def test_bce_is_the_mean_binary_cross_entropy() -> None:
    logits = torch.tensor([2.0, -1.0, 0.0])
    labels = torch.tensor([1, 0, 1])
    expected = (
        -(math.log(1 / (1 + math.exp(-2))) + math.log(1 - 1 / (1 + math.exp(1))) + math.log(0.5))
        / 3
    )
    assert bce_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def _three_positives() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[list[float]]]:
    """Users e1, e2, e3 and items with known cosines to each; a negative row is interleaved."""
    users = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0.6, 0.8, 0], [0, 0, 1.0]])
    items = torch.tensor([[0.6, 0.8, 0], [0, 0, 1.0], [0.8, 0, 0.6], [0, 1.0, 0]])
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0])  # rows 0, 2, 3 are the positive pairs
    # cosine[i][j] = ⟨positive user i, positive item j⟩ for positives (rows 0, 2, 3)
    cosine = [[0.6, 0.8, 0.0], [1.0, 0.48, 0.8], [0.0, 0.6, 0.0]]
    return users, items, labels, cosine


def _hand_info_nce(cosine: list[list[float]], temperature: float, margin: float) -> float:
    total = 0.0
    for row in range(3):
        logits = [
            (cosine[row][column] - (margin if column == row else 0.0)) / temperature
            for column in range(3)
        ]
        total += -logits[row] + math.log(sum(math.exp(value) for value in logits))
    return total / 3


def test_info_nce_matches_a_hand_computation_over_positive_pairs_only() -> None:
    users, items, labels, cosine = _three_positives()
    loss = info_nce(users, items, labels, temperature=0.5, margin=0.0)
    assert loss.item() == pytest.approx(_hand_info_nce(cosine, 0.5, 0.0), rel=1e-5)


def test_info_nce_margin_lowers_the_positive_and_raises_the_loss() -> None:
    users, items, labels, cosine = _three_positives()
    plain = info_nce(users, items, labels, temperature=0.5, margin=0.0)
    with_margin = info_nce(users, items, labels, temperature=0.5, margin=0.2)
    assert with_margin.item() == pytest.approx(_hand_info_nce(cosine, 0.5, 0.2), rel=1e-5)
    assert with_margin > plain


def test_info_nce_is_zero_with_fewer_than_two_positives() -> None:
    users = F.normalize(torch.randn(4, 3), dim=1)
    assert info_nce(users, users, torch.tensor([0.0, 1, 0, 0]), 0.1, 0.0).item() == 0.0
    assert info_nce(users, users, torch.zeros(4), 0.1, 0.0).item() == 0.0


def _naive_masked_info_nce(
    users: torch.Tensor,
    items: torch.Tensor,
    labels: torch.Tensor,
    item_ids: torch.Tensor,
    user_ids: torch.Tensor | None,
    temperature: float,
) -> float:
    """Row by row: each positive pair against the other positive pairs' items, skipping every
    column that holds the row's own item (or, when given, its own user)."""
    rows = [index for index in range(len(labels)) if labels[index] > 0.5]
    total = 0.0
    for i in rows:
        logits = []
        for j in rows:
            same_item = j != i and int(item_ids[j]) == int(item_ids[i])
            same_user = user_ids is not None and j != i and int(user_ids[j]) == int(user_ids[i])
            if not (same_item or same_user):
                logits.append((j == i, float(users[i] @ items[j]) / temperature))
        positive = next(value for is_diagonal, value in logits if is_diagonal)
        total += -positive + math.log(sum(math.exp(value) for _, value in logits))
    return total / len(rows)


@pytest.mark.parametrize("mask_users", [False, True])
def test_cir_never_counts_the_rows_own_item_as_a_negative(mask_users: bool) -> None:
    generator = torch.Generator().manual_seed(3)
    users = F.normalize(torch.randn(24, 8, generator=generator), dim=1)
    items = F.normalize(torch.randn(24, 8, generator=generator), dim=1)
    labels = (torch.rand(24, generator=generator) < 0.75).float()
    item_ids = torch.randint(0, 5, (24,), generator=generator)  # many repeats, as in real batches
    user_ids = torch.randint(0, 6, (24,), generator=generator)
    chosen_users = user_ids if mask_users else None
    loss = info_nce(users, items, labels, 0.2, 0.0, items=item_ids, users=chosen_users)
    expected = _naive_masked_info_nce(users, items, labels, item_ids, chosen_users, 0.2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    unmasked = info_nce(users, items, labels, 0.2, 0.0)
    assert loss.item() != pytest.approx(unmasked.item(), rel=1e-3)  # the mask does something
    assert torch.isfinite(loss)


def test_cir_with_unique_items_is_the_unmasked_loss() -> None:
    users, items, labels, cosine = _three_positives()
    loss = info_nce(users, items, labels, 0.5, 0.0, items=torch.tensor([7, 8, 9, 10]))
    assert loss.item() == pytest.approx(_hand_info_nce(cosine, 0.5, 0.0), rel=1e-5)


def _naive_ranknet(logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor) -> float:
    total, pairs = 0.0, 0
    for i in range(len(logits)):
        for j in range(len(logits)):
            if i == j or groups[i] != groups[j] or labels[i] == labels[j]:
                continue
            target = 1.0 if labels[i] > labels[j] else 0.0
            probability = 1 / (1 + math.exp(-(logits[i] - logits[j]).item()))
            total += -(target * math.log(probability) + (1 - target) * math.log(1 - probability))
            pairs += 1
    return total / pairs


def test_ranknet_matrix_form_equals_a_naive_double_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, generator=generator)
    labels = torch.randint(0, 2, (12,), generator=generator).float()
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3])
    loss = ranknet_loss(logits, labels, groups)
    assert loss.item() == pytest.approx(_naive_ranknet(logits, labels, groups), rel=1e-5)


def test_ranknet_gradient_is_the_lambda_sum() -> None:
    logits = torch.tensor([0.3, -0.2, 1.0, 0.1], requires_grad=True)
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    groups = torch.tensor([0, 0, 0, 1])  # item 3 is alone: no pairs, no gradient
    ranknet_loss(logits, labels, groups).backward()

    scores = logits.detach()
    lambdas = torch.zeros(4)
    valid_pairs = 0
    for i in range(4):
        for j in range(4):
            if groups[i] == groups[j] and labels[i] != labels[j]:
                target = float(labels[i] > labels[j])
                lambdas[i] += torch.sigmoid(scores[i] - scores[j]) - target
                valid_pairs += 1
    # each unordered pair is counted in both orders, each contributing the same λ term
    assert torch.allclose(logits.grad, 2 * lambdas / valid_pairs, atol=1e-6)
    assert logits.grad[3] == 0


def test_ranknet_without_valid_pairs_is_zero_and_differentiable() -> None:
    logits = torch.randn(3, requires_grad=True)
    loss = ranknet_loss(logits, torch.ones(3), torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(3))


def test_objective_adds_weighted_cir_and_embedding_l2() -> None:
    torch.manual_seed(0)
    params = tiny_params(cir_weight=0.3, cir_temperature=0.2, cir_margin=0.1, l2_embedding=1e-3)
    model = build_model(tiny_fields(), params)
    batch = random_batch(tiny_fields(), 16, torch.Generator().manual_seed(0))
    labels = torch.tensor([1.0, 0.0] * 8)
    output = model(batch)

    parts = objective_loss(model, output, labels, None, params, "bce")

    bce = bce_loss(output.logits, labels)
    cir = info_nce(output.user_repr, output.item_repr, labels, 0.2, 0.1)
    expected = bce + 0.3 * cir + 1e-3 * model.embedding_l2()
    assert set(parts) == {"loss", "bce", "cir", "l2"}
    assert torch.allclose(parts["loss"], expected)
    assert parts["cir"] > 0 and parts["loss"].requires_grad


def test_objective_skips_cir_without_weight_or_tower_reprs() -> None:
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0])
    batch = random_batch(tiny_fields(), 4, torch.Generator().manual_seed(0))
    for params in (tiny_params(cir_weight=0.0), tiny_params("dnn", cir_weight=0.5)):
        model = build_model(tiny_fields(), params)
        parts = objective_loss(model, model(batch), labels, None, params, "bce")
        assert parts["cir"].item() == 0.0


def test_objective_ranknet_needs_groups_and_unknown_objectives_fail() -> None:
    params = tiny_params()
    model = build_model(tiny_fields(), params)
    batch = random_batch(tiny_fields(), 4, torch.Generator().manual_seed(0))
    output = model(batch)
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])

    parts = objective_loss(model, output, labels, torch.tensor([0, 0, 1, 1]), params, "ranknet")
    assert "ranknet" in parts and parts["ranknet"] > 0
    with pytest.raises(ConfigError, match=r"train\.objective"):
        objective_loss(model, output, labels, None, params, "ranknet")
    with pytest.raises(ConfigError, match=r"train\.objective"):
        objective_loss(model, output, labels, None, params, "hinge")
