"""Field embeddings, Light-SE, the MLP and the FE-Block MaxSim on tiny hand-checkable cases."""

from __future__ import annotations

import pytest
import torch

from inttower.errors import StageInputError
from inttower.features.encoded import FieldSpec
from inttower.models import layers
from inttower.models.layers import (
    MLP,
    UNKNOWN_INDEX,
    FieldEmbedding,
    LightSE,
    TowerEncoder,
    maxsim_all,
    maxsim_candidates,
)

from . import random_batch, tiny_fields


def test_field_embedding_stacks_embedded_fields_and_dense_block() -> None:
    user_fields = [spec for spec in tiny_fields() if spec.tower == "user"]
    embedding = FieldEmbedding(user_fields, dim=6)
    batch = random_batch(user_fields, 5, torch.Generator().manual_seed(0))

    embedded, dense = embedding(batch)

    assert embedded.shape == (5, 3, 6)  # user_id, taste, history
    assert dense.shape == (5, 1)
    assert torch.equal(dense[:, 0], batch["user_activity"])


def test_padding_row_is_zero_and_unknown_row_is_not() -> None:
    embedding = FieldEmbedding([FieldSpec("item_id", "sparse", "item", vocab_size=10)], dim=4)
    table = embedding.tables["item_id"].weight
    assert torch.count_nonzero(table[0]) == 0
    assert torch.count_nonzero(table[1]) == 4


def test_sequence_mean_pools_over_real_positions_only() -> None:
    spec = FieldSpec("history", "sequence", "user", vocab_size=10, length=4)
    embedding = FieldEmbedding([spec], dim=3)
    table = embedding.tables["history"].weight.detach()
    history = torch.tensor([[0, 0, 4, 7], [0, 0, 0, 5], [0, 0, 0, 0]])

    pooled, _ = embedding({"history": history})

    assert torch.allclose(pooled[0, 0], (table[4] + table[7]) / 2)
    assert torch.allclose(pooled[1, 0], table[5])
    assert torch.equal(pooled[2, 0], torch.zeros(3))  # no history: zeros, not NaN


def test_light_se_weights_sum_to_one_over_fields_and_add_a_residual() -> None:
    torch.manual_seed(0)
    light_se = LightSE(n_fields=5)
    embeddings = torch.randn(7, 5, 4)

    weights = light_se.weights(embeddings)
    output = light_se(embeddings)

    assert weights.shape == (7, 5)
    assert torch.allclose(weights.sum(dim=1), torch.ones(7))
    assert torch.allclose(output, embeddings * (1 + weights.unsqueeze(2)))


@pytest.mark.parametrize("hidden_units", [[8], [16, 8], [32, 16, 8, 4]])
def test_mlp_has_one_output_per_configured_layer(hidden_units: list[int]) -> None:
    mlp = MLP(in_dim=10, hidden_units=hidden_units, dropout=0.0)
    outputs = mlp(torch.randn(3, 10))
    assert [output.shape[1] for output in outputs] == hidden_units
    assert all((output >= 0).all() for output in outputs)  # ReLU on every layer


def test_mlp_linear_output_takes_either_sign() -> None:
    torch.manual_seed(0)
    mlp = MLP(in_dim=10, hidden_units=[16, 8], dropout=0.0, linear_output=True)
    last = mlp(torch.randn(64, 10))[-1]
    assert (last < 0).any() and (last > 0).any()


def test_tower_without_fields_names_the_tower() -> None:
    item_only = [FieldSpec("item_id", "sparse", "item", vocab_size=5)]
    with pytest.raises(StageInputError, match="user-tower"):
        TowerEncoder(item_only, "user", 4, [8], 0.0, light_se=True, linear_output=True)


def test_maxsim_equals_a_naive_loop() -> None:
    torch.manual_seed(0)
    users = torch.randn(3, 4, 5)  # 3 users, 4 user heads (layers × heads), dim 5
    items = torch.randn(3, 2, 6, 5)  # 2 candidates per user, 6 item heads each

    fast = maxsim_candidates(users, items)

    naive = torch.zeros(3, 2)
    for user in range(3):
        for candidate in range(2):
            for query in range(4):
                best = max(
                    float(users[user, query] @ items[user, candidate, head]) for head in range(6)
                )
                naive[user, candidate] += best
    assert torch.allclose(fast, naive, atol=1e-5)


def test_maxsim_all_scores_every_user_against_every_item() -> None:
    torch.manual_seed(0)
    users = torch.randn(3, 4, 5)
    catalogue = torch.randn(7, 6, 5)

    every_pair = maxsim_all(users, catalogue)
    per_user = maxsim_candidates(users, catalogue.unsqueeze(0).expand(3, -1, -1, -1))

    assert every_pair.shape == (3, 7)
    assert torch.allclose(every_pair, per_user, atol=1e-5)


def test_maxsim_blocks_large_catalogues_without_changing_scores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    users = torch.randn(3, 4, 5)
    catalogue = torch.randn(7, 6, 5)
    whole = maxsim_all(users, catalogue)
    candidates = catalogue.unsqueeze(0).expand(3, -1, -1, -1)
    whole_candidates = maxsim_candidates(users, candidates)

    monkeypatch.setattr(layers, "MAXSIM_BLOCK", 3 * 4 * 6 * 2)  # two items per block

    assert torch.allclose(maxsim_all(users, catalogue), whole)
    assert torch.allclose(maxsim_candidates(users, candidates), whole_candidates)


def test_sequence_pooling_ignores_padding_even_if_row_zero_changed() -> None:
    spec = FieldSpec("history", "sequence", "user", vocab_size=10, length=3)
    embedding = FieldEmbedding([spec], dim=2)
    with torch.no_grad():
        embedding.tables["history"].weight[0] = 100.0
    table = embedding.tables["history"].weight.detach()

    pooled, _ = embedding({"history": torch.tensor([[0, 3, 4], [0, 0, 0]])})

    assert torch.allclose(pooled[0, 0], (table[3] + table[4]) / 2)
    assert torch.equal(pooled[1, 0], torch.zeros(2))


def test_id_dropout_replaces_ids_with_unknown_only_in_training() -> None:
    fields = [
        FieldSpec("user_id", "sparse", "user", vocab_size=50),
        FieldSpec("gender", "sparse", "user", vocab_size=50),
    ]
    embedding = FieldEmbedding(fields, 4, id_dropout=0.5)
    with torch.no_grad():
        for table in embedding.tables.values():
            table.weight.copy_(torch.arange(50, dtype=torch.float32).unsqueeze(1).expand(50, 4))
    ids = torch.arange(2, 50).repeat(20)
    inputs = {"user_id": ids, "gender": ids}

    torch.manual_seed(0)
    embedded, _ = embedding(inputs)
    looked_up = embedded[:, :, 0]
    dropped = looked_up[:, 0] == UNKNOWN_INDEX
    assert 0.4 < dropped.float().mean() < 0.6  # ids become "unknown" at the configured rate
    assert torch.equal(looked_up[~dropped, 0], ids[~dropped].float())
    assert torch.equal(looked_up[:, 1], ids.float())  # non-id fields are never dropped

    embedding.eval()
    embedded, _ = embedding(inputs)
    assert torch.equal(embedded[:, 0, 0], ids.float())  # evaluation sees every id


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_keeps_one_minus_p_and_is_unbiased(p: float) -> None:
    dropout = layers.Dropout(p).train()
    torch.manual_seed(0)
    features = torch.ones(400, 1000)
    dropped = dropout(features)

    kept = dropped != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    assert abs(dropped.mean().item() - 1.0) < 0.01  # inverted: the expectation is unchanged
    assert torch.unique(dropped[kept]).numel() == 1  # every kept value is scaled alike


def test_dropout_mask_follows_the_seed_and_is_off_in_eval() -> None:
    dropout = layers.Dropout(0.3).train()
    features = torch.randn(64, 300)
    torch.manual_seed(7)
    first = dropout(features)
    torch.manual_seed(7)
    assert torch.equal(first, dropout(features))
    assert not torch.equal(first, dropout(features))
    assert torch.equal(dropout.eval()(features), features)


def test_keep_mask_never_divides_by_zero_near_p_one() -> None:
    keep, scale = layers.keep_mask(torch.Size([10]), 0.999999)
    assert keep.dtype == torch.bool and scale == layers.DROPOUT_LEVELS
