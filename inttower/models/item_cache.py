"""Serving-time scoring: run the item tower once per catalogue item, then only the user tower."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from inttower.errors import ConfigError
from inttower.evaluation.calibration import Calibration
from inttower.models.towers import RankingModel, TwoTowerModel, add_tower_biases


@dataclass
class ItemCache:
    """Each catalogue item's scoring vectors (IntTower: H head vectors; DSSM: unit vector) and,
    when the model has tower biases, each item's additive logit term."""

    model: TwoTowerModel
    items: Tensor  # (N, …): row n belongs to row n of the `item_inputs` given to build
    item_bias: Tensor | None = None  # (N,)

    @classmethod
    @torch.no_grad()
    def build(
        cls, model: RankingModel, item_inputs: dict[str, Tensor], batch_size: int = 4096
    ) -> ItemCache:
        """Run the item tower over the catalogue in eval mode, `batch_size` items at a time."""
        if not isinstance(model, TwoTowerModel):
            raise ConfigError(
                "model.name",
                f"{type(model).__name__} is single-tower: its items cannot be scored apart from "
                "users, so there is nothing to cache (use inttower or dssm)",
            )
        n_items = _rows(item_inputs)
        device = _device(model)
        with _eval_mode(model):
            towers = [
                model.item_tower(_slice(item_inputs, start, start + batch_size, device))
                for start in range(0, n_items, batch_size)
            ]
        biases = [tower.bias for tower in towers]
        item_bias = None if any(bias is None for bias in biases) else torch.cat(biases)
        return cls(
            model=model, items=torch.cat([tower.vectors for tower in towers]), item_bias=item_bias
        )

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @torch.no_grad()
    def score(
        self,
        user_inputs: dict[str, Tensor],
        candidates: Tensor | None = None,
        batch_size: int = 256,
    ) -> Tensor:
        """Logits of users against cached items, running only the user tower.

        candidates: None scores every cached item -> (U, N); (U,) one cache row per user -> (U,);
        (U, C) cache rows per user -> (U, C). Users go through `batch_size` at a time; inputs
        may live on the CPU, scores come back on the model's device.
        """
        n_users = _rows(user_inputs)
        if candidates is not None and candidates.shape[0] != n_users:
            raise ValueError(f"candidates has {candidates.shape[0]} rows for {n_users} users")
        single = candidates is not None and candidates.dim() == 1
        device = self.items.device
        logits = []
        with _eval_mode(self.model):
            for start in range(0, n_users, batch_size):
                batch = _slice(user_inputs, start, start + batch_size, device)
                user = self.model.user_tower(batch)
                if candidates is None:
                    scores = self.model.score_all(user.vectors, self.items)
                    item_bias = None if self.item_bias is None else self.item_bias.unsqueeze(0)
                else:
                    rows = candidates[start : start + batch_size].to(device)
                    rows = rows.unsqueeze(1) if single else rows
                    scores = self.model.score_candidates(user.vectors, self.items[rows])
                    item_bias = None if self.item_bias is None else self.item_bias[rows]
                logits.append(add_tower_biases(scores, user.bias, item_bias))
        scores = torch.cat(logits)
        return scores.squeeze(1) if single else scores

    def probabilities(
        self,
        user_inputs: dict[str, Tensor],
        calibration: Calibration,
        candidates: Tensor | None = None,
        batch_size: int = 256,
    ) -> Tensor:
        """Calibrated click probabilities (float64), as evaluation reports them: the logits of
        `score` through the calibration fit on validation when the model was trained."""
        logits = self.score(user_inputs, candidates, batch_size).double()
        return torch.sigmoid(calibration.scale * logits + calibration.bias)


def _rows(inputs: dict[str, Tensor]) -> int:
    return int(next(iter(inputs.values())).shape[0])


def _slice(
    inputs: dict[str, Tensor], start: int, stop: int, device: torch.device
) -> dict[str, Tensor]:
    return {name: tensor[start:stop].to(device) for name, tensor in inputs.items()}


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Switch a model to eval (no dropout) for a block, then restore whatever mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
