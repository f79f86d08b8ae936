"""Tiny fields, random batches and a planted-signal problem shared by the model tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from inttower.config import ModelParams
from inttower.features.encoded import FieldSpec
from inttower.models import RankingModel, bce_loss

N_TASTES = 4


def tiny_fields() -> list[FieldSpec]:
    """Every field kind in both towers: sparse, sequence (padded) and dense."""
    return [
        FieldSpec("user_id", "sparse", "user", vocab_size=60),
        FieldSpec("taste", "sparse", "user", vocab_size=N_TASTES + 2),
        FieldSpec("history", "sequence", "user", vocab_size=40, length=5),
        FieldSpec("user_activity", "dense", "user"),
        FieldSpec("item_id", "sparse", "item", vocab_size=40),
        FieldSpec("genre", "sparse", "item", vocab_size=N_TASTES + 2),
        FieldSpec("item_popularity", "dense", "item"),
    ]


def tiny_params(name: str = "inttower", **overrides: object) -> ModelParams:
    """A small but complete configuration: fast on CPU, same code paths as the official one."""
    values: dict[str, object] = {
        "name": name,
        "embedding_dim": 8,
        "hidden_units": [32, 16],
        "dropout": 0.1,
        "heads": 4,
        "head_dim": 8,
    }
    return ModelParams(**(values | overrides))


def random_batch(
    fields: list[FieldSpec], rows: int, generator: torch.Generator
) -> dict[str, Tensor]:
    """Inputs with the encoded-split dtypes: int64 ids (0 = padding), float32 dense values."""
    batch = {}
    for spec in fields:
        if spec.kind == "dense":
            batch[spec.name] = torch.randn(rows, generator=generator)
        else:
            shape = (rows, spec.length) if spec.kind == "sequence" else (rows,)
            batch[spec.name] = torch.randint(0, spec.vocab_size, shape, generator=generator)
    return batch


def planted_problem(rows: int, seed: int) -> tuple[dict[str, Tensor], Tensor]:
    """Label is 1 exactly when the user's taste matches the item's genre (¼ of pairs), 5% flipped."""
    generator = torch.Generator().manual_seed(seed)
    fields = tiny_fields()
    batch = random_batch(fields, rows, generator)
    users = torch.randint(2, 60, (rows,), generator=generator)
    items = torch.randint(2, 40, (rows,), generator=generator)
    user_taste = torch.arange(60) % N_TASTES
    item_genre = torch.arange(40) % N_TASTES
    batch["user_id"], batch["item_id"] = users, items
    batch["taste"] = user_taste[users] + 2
    batch["genre"] = item_genre[items] + 2
    labels = (user_taste[users] == item_genre[items]).float()
    flip = torch.rand(rows, generator=generator) < 0.05
    return batch, torch.where(flip, 1 - labels, labels)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run tiny models on one thread: two OpenMP threads spinning on a shared, busy CPU make
    each step tens of times slower, and these tests gain nothing from the second."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_and_auc(model: RankingModel, steps: int = 300, batch_size: int = 256) -> float:
    """Train on the planted problem with Adam and return AUC on fresh pairs."""
    with one_thread():
        return _train_and_auc(model, steps, batch_size)


def _train_and_auc(model: RankingModel, steps: int, batch_size: int) -> float:
    train_inputs, train_labels = planted_problem(4096, seed=1)
    test_inputs, test_labels = planted_problem(2048, seed=2)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        start = (step * batch_size) % 4096
        batch = {name: tensor[start : start + batch_size] for name, tensor in train_inputs.items()}
        loss = bce_loss(model(batch).logits, train_labels[start : start + batch_size])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        logits = model(test_inputs).logits
    return float(roc_auc_score(test_labels.numpy(), logits.numpy()))
