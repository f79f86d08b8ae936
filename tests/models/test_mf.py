"""The ids-only MF baseline learns a planted user × item signal, deterministically, and scores
unknown ids with the terms it has."""

from __future__ import annotations

import torch

from inttower.evaluation.metrics import auc
from inttower.models.mf import IdsSplit, MFParams, fit_ids_mf

UNKNOWN = 1


def _planted(n: int, seed: int) -> IdsSplit:
    """Users and items in two clusters each: a user likes the items of its own cluster."""
    generator = torch.Generator().manual_seed(seed)
    users = torch.randint(2, 42, (n,), generator=generator)
    items = torch.randint(2, 32, (n,), generator=generator)
    likes = (users % 2) == (items % 2)
    noise = torch.rand(n, generator=generator) < 0.1
    return IdsSplit(users, items, (likes ^ noise).to(torch.uint8))


def test_it_learns_the_interaction_that_no_main_effect_explains() -> None:
    model = fit_ids_mf(_planted(20_000, 0), _planted(4_000, 1), 42, 32, seed=3)
    test = _planted(4_000, 2)
    score = auc(test.labels.numpy(), model.logits(test.users, test.items))
    assert score > 0.85  # the noise-free ceiling is 0.9; main effects alone give 0.5


def test_the_same_seed_gives_the_same_weights_and_another_seed_others() -> None:
    recipe = MFParams(max_epochs=2)
    train, valid = _planted(5_000, 0), _planted(1_000, 1)
    first, again, other = (
        fit_ids_mf(train, valid, 42, 32, seed=seed, recipe=recipe) for seed in (5, 5, 6)
    )
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    assert not torch.equal(first.users.weight, other.users.weight)


def test_an_unknown_user_scores_with_the_item_terms_only() -> None:
    model = fit_ids_mf(_planted(5_000, 0), _planted(1_000, 1), 42, 32, seed=3)
    items = torch.tensor([2, 3])
    unknown = model.logits(torch.tensor([UNKNOWN, UNKNOWN]), items)
    expected = (model.bias + model.item_bias(items).squeeze(1)).detach().double().numpy()
    assert torch.allclose(torch.from_numpy(unknown), torch.from_numpy(expected), atol=1e-6)
