"""Training objectives: BCE, RankNet over same-user pairs, CIR (in-batch InfoNCE), embedding L2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from inttower.config import ModelParams
from inttower.errors import ConfigError
from inttower.models.towers import ModelOutput, RankingModel

OBJECTIVES = ("bce", "ranknet")


def bce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean binary cross-entropy on logits (numerically stable, no sigmoid first)."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def info_nce(
    user_repr: Tensor,
    item_repr: Tensor,
    labels: Tensor,
    temperature: float,
    margin: float,
    items: Tensor | None = None,
    users: Tensor | None = None,
) -> Tensor:
    """CIR: in-batch InfoNCE over positive pairs; row i's positive is item i, other items negatives.

    The margin is subtracted from the positive's cosine before dividing by τ, so the positive must
    beat the negatives by at least that much. With raw `items` ids, an off-diagonal column holding
    the row's own item is no negative (a third of ml-100k's positive pairs would otherwise push a
    user away from the very item they liked) and is masked out; `users` does the same for columns
    of the row's own user. Zero when the batch holds fewer than two positives.
    """
    positive = labels > 0.5
    if int(positive.sum()) < 2:
        return user_repr.new_zeros(())
    cosine = user_repr[positive] @ item_repr[positive].T
    eye = torch.eye(cosine.shape[0], device=cosine.device, dtype=torch.bool)
    cosine = cosine - margin * eye.to(cosine.dtype)
    same = torch.zeros_like(eye)
    for ids in (items, users):
        if ids is not None:
            chosen = ids[positive]
            same |= chosen.unsqueeze(1) == chosen.unsqueeze(0)
    cosine = cosine.masked_fill(same & ~eye, float("-inf"))  # the diagonal stays the positive
    target = torch.arange(cosine.shape[0], device=cosine.device)
    return F.cross_entropy(cosine / temperature, target)


def ranknet_loss(logits: Tensor, labels: Tensor, groups: Tensor) -> Tensor:
    """RankNet over every same-group pair with different labels, from one score per item.

    S_ij = s_i − s_j and t_ij = 1[y_i>y_j] + ½·1[y_i=y_j]; the mean of BCE(S_ij, t_ij) over valid
    ordered pairs has gradient λ_i = Σ_j σ(S_ij) − t_ij per item, as one matrix operation.
    """
    labels = labels.to(logits.dtype)
    difference = logits.unsqueeze(1) - logits.unsqueeze(0)
    target = (labels.unsqueeze(1) > labels.unsqueeze(0)).to(logits.dtype)
    target = target + 0.5 * (labels.unsqueeze(1) == labels.unsqueeze(0)).to(logits.dtype)
    valid = (groups.unsqueeze(1) == groups.unsqueeze(0)) & (
        labels.unsqueeze(1) != labels.unsqueeze(0)
    )  # y_i ≠ y_j already excludes i = j
    if not bool(valid.any()):
        return logits.sum() * 0.0
    pair_loss = F.binary_cross_entropy_with_logits(difference, target, reduction="none")
    return pair_loss[valid].mean()


def objective_loss(
    model: RankingModel,
    output: ModelOutput,
    labels: Tensor,
    groups: Tensor | None,
    params: ModelParams,
    objective: str,
    items: Tensor | None = None,
) -> dict[str, Tensor]:
    """Total = main (bce|ranknet) + cir_weight·CIR + l2_embedding·L2; parts are detached for logs.

    CIR is skipped (reported as 0) when cir_weight is 0 or the model has no tower reprs; the L2
    term is skipped when l2_embedding is 0. `groups` (raw user ids) is needed for ranknet and for
    `cir_mask_same_user`; `items` (raw item ids) masks same-item negatives out of CIR.
    """
    if objective == "bce":
        main = bce_loss(output.logits, labels)
    elif objective == "ranknet":
        if groups is None:
            raise ConfigError("train.objective", "ranknet needs the user id of every sample")
        main = ranknet_loss(output.logits, labels, groups)
    else:
        raise ConfigError("train.objective", f"unknown objective {objective!r}; use bce|ranknet")
    zero = output.logits.new_zeros(())
    cir = zero
    if params.cir_weight > 0 and output.user_repr is not None and output.item_repr is not None:
        cir = info_nce(
            output.user_repr,
            output.item_repr,
            labels,
            params.cir_temperature,
            params.cir_margin,
            items=items,
            users=groups if params.cir_mask_same_user else None,
        )
    l2 = model.embedding_l2() if params.l2_embedding > 0 else zero
    total = main + params.cir_weight * cir + params.l2_embedding * l2
    return {"loss": total, objective: main.detach(), "cir": cir.detach(), "l2": l2.detach()}
