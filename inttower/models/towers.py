"""The model interface every ranker implements, the two-tower base, and IntTower itself."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inttower.config import ModelParams
from inttower.features.encoded import FieldSpec
from inttower.models.layers import (
    TowerEncoder,
    known_rows,
    maxsim_all,
    maxsim_block,
    maxsim_candidates,
    maxsim_normaliser,
)


@dataclass
class ModelOutput:
    """What a forward pass returns: logits for the loss, tower representations for CIR."""

    logits: Tensor  # (B,) pre-sigmoid
    user_repr: Tensor | None  # (B, D) L2-normalised last user layer; None for single-tower
    item_repr: Tensor | None  # (B, D) L2-normalised last item layer


@dataclass
class TowerOutput:
    """One tower's result: what scoring needs (`vectors`) and the CIR representation."""

    vectors: Tensor  # IntTower: (B, [layers ·] heads, head_dim); DSSM: (B, D)
    repr: Tensor  # (B, D) L2-normalised last layer
    bias: Tensor | None = None  # (B,) this tower's additive logit term; None when it has none


class RankingModel(nn.Module):
    """Every model maps a batch of encoded fields to logits; the training loop knows only this."""

    def forward(self, inputs: dict[str, Tensor]) -> ModelOutput:
        raise NotImplementedError

    def embedding_l2(self) -> Tensor:
        """Σ‖W‖² over whole embedding tables, not only the rows a batch used: like the official
        regulariser, needs no batch, and costs little at MovieLens vocabulary sizes."""
        tables = [module.weight for module in self.modules() if isinstance(module, nn.Embedding)]
        if not tables:
            return next(self.parameters()).new_zeros(())
        return torch.stack([table.pow(2).sum() for table in tables]).sum()

    def n_parameters(self) -> int:
        """Trainable parameter count, for model cards and metadata."""
        return sum(parameter.numel() for parameter in self.parameters() if parameter.requires_grad)


class TwoTowerModel(RankingModel):
    """A user tower and an item tower that meet only in `score_*`, so items can be cached."""

    def user_tower(self, inputs: dict[str, Tensor]) -> TowerOutput:
        raise NotImplementedError

    def item_tower(self, inputs: dict[str, Tensor]) -> TowerOutput:
        raise NotImplementedError

    def score_candidates(self, user: Tensor, items: Tensor) -> Tensor:
        """Interaction logits of each user against its own candidates, tower biases excluded:
        user (U, …), items (U, C, …) -> (U, C)."""
        raise NotImplementedError

    def score_all(self, user: Tensor, items: Tensor) -> Tensor:
        """Interaction logits of every user against every item, tower biases excluded:
        user (U, …), items (N, …) -> (U, N)."""
        raise NotImplementedError

    def score_block(self, user: Tensor, items: Tensor) -> Tensor:
        """`score_all` without blocking over items (no Python loop over sizes), for a graph
        exported with a dynamic number of items: (U, …), (N, …) -> (U, N)."""
        return self.score_all(user, items)

    def forward(self, inputs: dict[str, Tensor]) -> ModelOutput:
        user = self.user_tower(inputs)
        item = self.item_tower(inputs)
        logits = self.score_candidates(user.vectors, item.vectors.unsqueeze(1)).squeeze(1)
        logits = add_tower_biases(logits, user.bias, item.bias)
        return ModelOutput(logits=logits, user_repr=user.repr, item_repr=item.repr)


def add_tower_biases(logits: Tensor, user_bias: Tensor | None, item_bias: Tensor | None) -> Tensor:
    """logits (U, …) plus a per-user term broadcast over candidates and a per-item term that
    already has the candidates' shape; either may be None."""
    if user_bias is not None:
        logits = logits + user_bias.view(-1, *([1] * (logits.dim() - 1)))
    if item_bias is not None:
        logits = logits + item_bias
    return logits


class IntTower(TwoTowerModel):
    """IntTower (Li et al., CIKM 2022): Light-SE towers, FE-Block MaxSim scoring, CIR reprs."""

    def __init__(self, fields: list[FieldSpec], params: ModelParams) -> None:
        super().__init__()
        hidden = list(params.hidden_units)
        self.heads = params.heads
        self.head_dim = params.head_dim
        self.user_encoder = TowerEncoder.two_tower(fields, "user", params, light_se=True)
        self.item_encoder = TowerEncoder.two_tower(fields, "item", params, light_se=True)
        # FE-Block: every user layer gets its own projection to heads; the item only its last.
        width = params.heads * params.head_dim
        self.user_heads = nn.ModuleList(nn.Linear(units, width) for units in hidden)
        self.item_heads = nn.Linear(hidden[-1], width)
        for projection in [*self.user_heads, self.item_heads]:
            nn.init.xavier_uniform_(projection.weight)
            nn.init.zeros_(projection.bias)
        # Stability: the raw sum Σ_l Σ_h max⟨u, v⟩ grows with layers, heads and √d, and a large
        # initial logit saturates the sigmoid (the official model's stalled seeds). Dividing by
        # L·H·√d makes the score a mean of scaled dot products, O(1) for any configuration; the
        # learnable scale (kept positive through its log, starting at 1) and bias then set the
        # logit range. At the official size initial logits sit near 0.2 with std ≈ 0.02.
        self.normaliser = maxsim_normaliser(len(hidden) * params.heads, params.head_dim)
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(()))
        # Tower biases: a MaxSim of head vectors represents "this user x this item" well but an
        # additive "this user likes most things" + "this item is liked by most" poorly, and on
        # ml-100k those main effects carry most of the signal (the user+item positive-rate
        # baseline alone scores AUC 0.81). A scalar head per tower on its last layer adds them:
        # logit = MaxSim + w_u·h_u + w_v·h_v + b. The item term is cached with the item heads,
        # the user term is computed once per request, so pre-ranking cost is unchanged.
        self.user_bias = nn.Linear(hidden[-1], 1, bias=False) if params.tower_bias else None
        self.item_bias = nn.Linear(hidden[-1], 1, bias=False) if params.tower_bias else None
        for head in (self.user_bias, self.item_bias):
            if head is not None:
                nn.init.zeros_(head.weight)
        # The id path: on dense data the towers fit the point-in-time features within two
        # epochs and then overfit, before the id embeddings inside them learn the user × item
        # signal an ids-only MF finds. A direct ⟨p_u, q_i⟩ gives that signal a linear path.
        # It travels inside the FE-Block vectors: q_i is appended to every item head and
        # √d·p_u to every user head, so for each user head the appended product is the same
        # for every item head, passes the max unchanged, and the normalised sum gains exactly
        # ⟨p_u, q_i⟩ (times the learnt scale). Item caching, ONNX export and serving are
        # unchanged: the vectors are only wider. Unknown ids (cold users, new items) get 0.
        self.id_dim = params.id_dim
        if self.id_dim:
            sizes = {field.name: field.vocab_size for field in fields}
            self.user_ids = nn.Embedding(sizes["user_id"], self.id_dim)
            self.item_ids = nn.Embedding(sizes["item_id"], self.id_dim)
            for table in (self.user_ids, self.item_ids):
                nn.init.normal_(table.weight, std=0.01)

    @property
    def n_layers(self) -> int:
        return len(self.user_heads)

    def user_tower(self, inputs: dict[str, Tensor]) -> TowerOutput:
        layers = self.user_encoder(inputs)
        heads = torch.cat(
            [projection(layer) for projection, layer in zip(self.user_heads, layers, strict=True)],
            dim=1,
        )
        vectors = heads.view(heads.shape[0], self.n_layers * self.heads, self.head_dim)
        if self.id_dim:
            ids = known_rows(self.user_ids, inputs["user_id"]) * math.sqrt(self.head_dim)
            vectors = torch.cat([vectors, ids.unsqueeze(1).expand(-1, vectors.shape[1], -1)], 2)
        return TowerOutput(
            vectors=vectors,
            repr=F.normalize(layers[-1], dim=1),
            bias=_scalar_head(self.user_bias, layers[-1]),
        )

    def item_tower(self, inputs: dict[str, Tensor]) -> TowerOutput:
        layers = self.item_encoder(inputs)
        heads = self.item_heads(layers[-1])
        vectors = heads.view(heads.shape[0], self.heads, self.head_dim)
        if self.id_dim:
            ids = known_rows(self.item_ids, inputs["item_id"])
            vectors = torch.cat([vectors, ids.unsqueeze(1).expand(-1, self.heads, -1)], 2)
        return TowerOutput(
            vectors=vectors,
            repr=F.normalize(layers[-1], dim=1),
            bias=_scalar_head(self.item_bias, layers[-1]),
        )

    def score_candidates(self, user: Tensor, items: Tensor) -> Tensor:
        return self._logit(maxsim_candidates(user, items))

    def score_all(self, user: Tensor, items: Tensor) -> Tensor:
        return self._logit(maxsim_all(user, items))

    def score_block(self, user: Tensor, items: Tensor) -> Tensor:
        return self._logit(maxsim_block(user, items))

    def _logit(self, maxsim_sum: Tensor) -> Tensor:
        return maxsim_sum * (self.normaliser * self.log_scale.exp()) + self.bias


def _scalar_head(head: nn.Linear | None, last_layer: Tensor) -> Tensor | None:
    return None if head is None else head(last_layer).squeeze(1)
