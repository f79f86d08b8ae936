"""The ids-only baseline: a biased matrix factorisation on user and item ids, nothing else.

logit = b + b_u + b_i + ⟨p_u, q_i⟩, trained with BCE on train, early-stopped on valid AUC. It is
the simplest model that learns collaborative signal, so every evaluation reports it beside the
no-model and features-alone baselines: wherever users have histories, a model that loses to it
has not learnt what the ids hold. Ids unknown to train (cold users, new items) score with the
terms they have: the unknown index's vector and bias are held at zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from inttower.evaluation.metrics import auc
from inttower.models.layers import known_rows

log = logging.getLogger("inttower.models.mf")


@dataclass(frozen=True)
class MFParams:
    """The baseline's fixed recipe: small, fast, the same on every dataset."""

    dim: int = 16
    lr: float = 3e-3
    batch_size: int = 4096
    max_epochs: int = 60
    patience: int = 3
    init_std: float = 0.01


class BiasedMF(nn.Module):
    """b + b_u + b_i + ⟨p_u, q_i⟩ over encoded ids (0 = padding, 1 = unknown: both held at 0)."""

    def __init__(self, n_users: int, n_items: int, dim: int, init_std: float) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, dim)
        self.items = nn.Embedding(n_items, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.bias = nn.Parameter(torch.zeros(()))
        for table in (self.users, self.items):
            nn.init.normal_(table.weight, std=init_std)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        dot = (known_rows(self.users, users) * known_rows(self.items, items)).sum(1)
        return (
            self.bias
            + self._biases(self.user_bias, users)
            + self._biases(self.item_bias, items)
            + dot
        )

    @torch.no_grad()
    def score_all(self, users: Tensor, items: Tensor) -> Tensor:
        """Logits of every user against every item: (U,), (N,) ids -> (U, N)."""
        self.eval()
        dots = known_rows(self.users, users) @ known_rows(self.items, items).T
        user_bias = self._biases(self.user_bias, users).unsqueeze(1)
        return self.bias + user_bias + self._biases(self.item_bias, items).unsqueeze(0) + dots

    @staticmethod
    def _biases(table: nn.Embedding, ids: Tensor) -> Tensor:
        return known_rows(table, ids).squeeze(1)

    @torch.no_grad()
    def logits(self, users: Tensor, items: Tensor, batch_size: int = 65_536) -> np.ndarray:
        self.eval()
        parts = [
            self(users[start : start + batch_size], items[start : start + batch_size])
            for start in range(0, len(users), batch_size)
        ]
        return torch.cat(parts).numpy().astype(np.float64) if parts else np.zeros(0)


@dataclass(frozen=True)
class IdsSplit:
    """One split's encoded ids and labels."""

    users: Tensor
    items: Tensor
    labels: Tensor


def fit_ids_mf(
    train: IdsSplit,
    valid: IdsSplit,
    n_users: int,
    n_items: int,
    seed: int,
    recipe: MFParams = MFParams(),
) -> BiasedMF:
    """Train on train, keep the epoch with the best valid AUC (stop after `patience` without
    gain). CPU, fp32, its own generator: the same seed gives the same weights byte for byte."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BiasedMF(n_users, n_items, recipe.dim, recipe.init_std)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    labels = train.labels.float()
    valid_labels = valid.labels.numpy()
    best_auc, best_state, stale, epochs = -np.inf, None, 0, 0
    while epochs < recipe.max_epochs and stale < recipe.patience:
        epochs += 1
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), recipe.batch_size):
            rows = order[start : start + recipe.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(train.users[rows], train.items[rows]), labels[rows])
            loss.backward()
            optimizer.step()
        valid_auc = auc(valid_labels, model.logits(valid.users, valid.items))
        if valid_auc > best_auc:
            best_auc, stale = valid_auc, 0
            best_state = {key: value.clone() for key, value in model.state_dict().items()}
        else:
            stale += 1
    log.info("ids-only MF: best valid AUC %.4f, stopped after epoch %d", best_auc, epochs)
    if best_state is not None:
        model.load_state_dict(best_state)
    return model
