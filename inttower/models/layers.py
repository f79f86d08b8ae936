"""Building blocks shared by every model: field embeddings, Light-SE, the MLP and FE-Block MaxSim."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from inttower.config import ModelParams
from inttower.errors import StageInputError
from inttower.features.encoded import FieldSpec, Tower

# Embedding rows start small but not tiny: the official N(0, 1e-4) init leaves the towers' first
# layers with almost no signal, which is one reason half its seeds stall near AUC 0.52.
EMBEDDING_INIT_STD = 0.05
# The encoders' index for a value unseen in train (0 is padding).
UNKNOWN_INDEX = 1


def is_id_field(spec: FieldSpec) -> bool:
    """Identity fields (`user_id`, `item_id`): the ones a cold user or item has no row in."""
    return spec.kind == "sparse" and spec.name.endswith("_id")


class FieldEmbedding(nn.Module):
    """One embedding table per sparse/sequence field; returns (B, F, k) plus the dense block (B, D).

    `id_dropout`: in training, each id-field value becomes the unknown index with this probability.
    """

    def __init__(self, fields: list[FieldSpec], dim: int, id_dropout: float = 0.0) -> None:
        super().__init__()
        self.id_dropout = id_dropout
        self.embedded = [spec for spec in fields if spec.kind in ("sparse", "sequence")]
        self.dense = [spec for spec in fields if spec.kind == "dense"]
        self.dim = dim
        self.tables = nn.ModuleDict(
            {
                spec.name: nn.Embedding(max(spec.vocab_size, 2), dim, padding_idx=0)
                for spec in self.embedded
            }
        )
        for table in self.tables.values():
            nn.init.normal_(table.weight, std=EMBEDDING_INIT_STD)
            with torch.no_grad():
                table.weight[0].zero_()

    @property
    def n_embedded(self) -> int:
        return len(self.embedded)

    @property
    def n_dense(self) -> int:
        return len(self.dense)

    def forward(self, inputs: dict[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
        """Embed every field: sequences are mean-pooled over non-padding positions."""
        embeddings = None
        if self.embedded:
            pooled = [self._lookup(spec, inputs[spec.name]) for spec in self.embedded]
            embeddings = torch.stack(pooled, dim=1)
        dense = None
        if self.dense:
            dense = torch.stack([inputs[spec.name].float() for spec in self.dense], dim=1)
        return embeddings, dense

    def _lookup(self, spec: FieldSpec, index: Tensor) -> Tensor:
        if self.training and self.id_dropout > 0 and is_id_field(spec):
            # Most test events of a chronological split come from users unseen in train, whose
            # id is the unknown index; a model that never saw that index in training leans on
            # ids it will not have. Dropping ids teaches the unknown row and the fallback
            # features (demographics, history, rates) that cold users are scored with.
            dropped = torch.rand(index.shape, device=index.device) < self.id_dropout
            index = torch.where(dropped & (index != 0), UNKNOWN_INDEX, index)
        vectors = self.tables[spec.name](index)
        if spec.kind != "sequence":
            return vectors
        # Masked explicitly rather than trusting row 0 to stay zero; dividing by the real length
        # (at least 1) makes an all-padding history pool to zeros instead of NaN.
        real = (index != 0).to(vectors.dtype)
        lengths = real.sum(dim=1, keepdim=True).clamp(min=1)
        return torch.bmm(real.unsqueeze(1), vectors).squeeze(1) / lengths


class LightSE(nn.Module):
    """Light-SE: reweight a tower's field embeddings by a softmax over fields, with a residual."""

    def __init__(self, n_fields: int) -> None:
        super().__init__()
        self.excite = nn.Linear(n_fields, n_fields)

    def weights(self, embeddings: Tensor) -> Tensor:
        """(B, F, k) -> (B, F) field weights that sum to one over fields."""
        squeezed = embeddings.mean(dim=2)
        return torch.softmax(self.excite(squeezed), dim=1)

    def forward(self, embeddings: Tensor) -> Tensor:
        return embeddings + embeddings * self.weights(embeddings).unsqueeze(2)


# Dropout masks on CPU: 16 random bits per element, so p is rounded to a multiple of 1/65536.
DROPOUT_LEVELS = 1 << 16


def keep_mask(shape: torch.Size, p: float) -> tuple[Tensor, float]:
    """A boolean keep-mask with P(keep) = 1 − p (p rounded to 1/65536), and 1/P(keep).

    CPU's generator costs per draw: four int16 lanes from each 64-bit draw make the mask 2.7×
    cheaper than one float draw per element (1.6 vs 4.5 ms at (2010, 300) here), and
    `torch.rand` ≥ p was itself ~2× cheaper than `bernoulli_`.
    """
    n = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)
    dropped = min(round(p * DROPOUT_LEVELS), DROPOUT_LEVELS - 1)
    keep = words.view(torch.int16)[:n].view(shape) >= dropped - DROPOUT_LEVELS // 2
    return keep, DROPOUT_LEVELS / (DROPOUT_LEVELS - dropped)


class Dropout(nn.Dropout):
    """Inverted dropout with `keep_mask`'s cheaper CPU mask; torch's own elsewhere."""

    def forward(self, features: Tensor) -> Tensor:
        if not self.training or self.p == 0 or features.device.type != "cpu":
            return super().forward(features)
        keep, scale = keep_mask(features.shape, self.p)
        return features * keep.to(features.dtype).mul_(scale)


class MLP(nn.Module):
    """Linear → LayerNorm → ReLU → Dropout per layer, returning every layer's output.

    With `linear_output` the last layer is a plain Linear: its outputs take either sign, so the
    cosines and dot products built on them start centred near zero instead of all positive.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_units: list[int],
        dropout: float,
        linear_output: bool = False,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        width = in_dim
        for position, units in enumerate(hidden_units):
            last = position == len(hidden_units) - 1
            linear = nn.Linear(width, units)
            nn.init.zeros_(linear.bias)
            if last and linear_output:
                nn.init.xavier_uniform_(linear.weight)
                self.layers.append(linear)
            else:
                # Kaiming suits the ReLU that follows; the LayerNorm keeps each layer's scale
                # independent of how large the embeddings or dense features happen to be.
                nn.init.kaiming_uniform_(linear.weight, nonlinearity="relu")
                self.layers.append(
                    nn.Sequential(linear, nn.LayerNorm(units), nn.ReLU(), Dropout(dropout))
                )
            width = units
        self.out_dim = width

    def forward(self, features: Tensor) -> list[Tensor]:
        outputs = []
        for layer in self.layers:
            features = layer(features)
            outputs.append(features)
        return outputs


class TowerEncoder(nn.Module):
    """One tower's fields → embeddings → optional Light-SE → flatten + dense → MLP layer outputs."""

    def __init__(
        self,
        fields: list[FieldSpec],
        tower: Tower,
        embedding_dim: int,
        hidden_units: list[int],
        dropout: float,
        light_se: bool,
        linear_output: bool,
        id_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        own = [spec for spec in fields if spec.tower == tower]
        if not own:
            raise StageInputError(f"no {tower}-tower fields in fields.json: a tower needs input")
        self.embedding = FieldEmbedding(own, embedding_dim, id_dropout)
        n_embedded = self.embedding.n_embedded
        self.light_se = LightSE(n_embedded) if light_se and n_embedded > 0 else None
        in_dim = n_embedded * embedding_dim + self.embedding.n_dense
        self.mlp = MLP(in_dim, hidden_units, dropout, linear_output=linear_output)

    @classmethod
    def two_tower(
        cls, fields: list[FieldSpec], tower: Tower, params: ModelParams, light_se: bool
    ) -> TowerEncoder:
        """A tower as the two-tower models build it: sizes from params, a linear last layer."""
        return cls(
            fields,
            tower,
            params.embedding_dim,
            list(params.hidden_units),
            params.dropout,
            light_se=light_se,
            linear_output=True,
            id_dropout=params.id_dropout,
        )

    def forward(self, inputs: dict[str, Tensor]) -> list[Tensor]:
        embeddings, dense = self.embedding(inputs)
        parts = []
        if embeddings is not None:
            if self.light_se is not None:
                embeddings = self.light_se(embeddings)
            parts.append(embeddings.flatten(start_dim=1))
        if dense is not None:
            parts.append(dense)
        return self.mlp(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])


def known_rows(table: nn.Embedding, ids: Tensor) -> Tensor:
    """Embedding rows of known ids, (N, dim); zeros for padding and unknown (0, 1), whose rows
    are then never trained: a cold user or a new item gets no id term at all."""
    ids = ids.view(-1)
    return table(ids) * (ids > UNKNOWN_INDEX).unsqueeze(1).to(table.weight.dtype)


# Largest similarity block materialised at once when scoring many items: 2^19 floats (2 MiB)
# stay in cache for the max that follows; 2^25 (128 MiB) measured 2.5× slower at 10k items.
MAXSIM_BLOCK = 1 << 19


def maxsim_candidates(user_heads: Tensor, item_heads: Tensor) -> Tensor:
    """FE-Block Σ_q max_h ⟨u_q, v_h⟩ of each user against its own candidates.

    (U, Q, d) users and (U, C, H, d) items -> (U, C), as batched matmuls and a max.
    """
    n_users, n_candidates, n_heads, head_dim = item_heads.shape
    step = _block(n_users * user_heads.shape[1] * n_heads, n_candidates)
    scores = []
    for start in range(0, n_candidates, step):
        block = item_heads[:, start : start + step]
        flat = block.reshape(n_users, block.shape[1] * n_heads, head_dim)
        similarity = torch.bmm(user_heads, flat.transpose(1, 2))  # (U, Q, C·H)
        similarity = similarity.view(n_users, user_heads.shape[1], block.shape[1], n_heads)
        # max (with indices) rather than amax: its backward scatters into the argmax, where
        # amax's backward builds equality masks and tie counts, slower on CPU at official size.
        scores.append(similarity.max(dim=3).values.sum(dim=1))
    return scores[0] if len(scores) == 1 else torch.cat(scores, dim=1)


def maxsim_all(user_heads: Tensor, item_heads: Tensor) -> Tensor:
    """FE-Block score of every user against every item: (U, Q, d), (N, H, d) -> (U, N)."""
    n_users, n_queries, _ = user_heads.shape
    n_items, n_heads, _ = item_heads.shape
    step = _block(n_users * n_queries * n_heads, n_items)
    blocks = [
        maxsim_block(user_heads, item_heads[start : start + step])
        for start in range(0, n_items, step)
    ]
    return torch.cat(blocks, dim=1)


def maxsim_block(user_heads: Tensor, item_heads: Tensor) -> Tensor:
    """`maxsim_all` in one piece, shape-agnostic (no Python loop over sizes): what the serving
    graph exports, the caller choosing how many items a call takes."""
    n_users, n_queries, head_dim = user_heads.shape
    n_items, n_heads, _ = item_heads.shape
    # The items are the GEMM's long side (N·H rows) and the users' heads its short one: with
    # K = head_dim small, this orientation runs near the machine's sgemm peak, where
    # (U·Q) × (N·H) ran at half of it; the max then reduces H contiguous rows of U·Q.
    queries = user_heads.reshape(n_users * n_queries, head_dim)
    similarity = item_heads.reshape(n_items * n_heads, head_dim) @ queries.T  # (N·H, U·Q)
    similarity = similarity.view(n_items, n_heads, n_users, n_queries)
    return similarity.amax(dim=1).sum(dim=2).T


def _block(cost_per_item: int, n_items: int) -> int:
    """How many items fit in one MAXSIM_BLOCK-sized similarity tensor (at least one)."""
    return min(n_items, max(1, MAXSIM_BLOCK // max(cost_per_item, 1)))


def maxsim_normaliser(n_user_heads: int, head_dim: int) -> float:
    """1/(Q·√d): turns the MaxSim sum into a mean of scaled dot products, O(1) for any config."""
    return 1.0 / (n_user_heads * math.sqrt(head_dim))
