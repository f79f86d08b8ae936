"""Batches as slices of tensors loaded once: a seeded permutation per epoch, index_select per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from inttower.features.encoded import EncodedSplit

GROUP_KEY = "user_raw"  # RankNet compares items within a user; GAUC groups by the same key
ITEM_KEY = "item_raw"


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A well-mixed seed for one epoch, derived from the run seed alone so a resumed run
    draws exactly the permutation and dropout masks an uninterrupted run would; ranks of a
    distributed run after the first draw dropout masks of their own."""
    entropy = [seed, epoch] if rank == 0 else [seed, epoch, rank]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return int(state) & ((1 << 63) - 1)


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor  # float32, (B,)
    groups: torch.Tensor  # raw user ids, (B,)
    items: torch.Tensor  # raw item ids, (B,): CIR masks same-item negatives with them

    def __len__(self) -> int:
        return int(self.labels.shape[0])


class DeviceSplit:
    """One split's model inputs, labels and group keys, moved to the device once."""

    def __init__(self, split: EncodedSplit, device: torch.device) -> None:
        self.device = device
        self.inputs = {name: tensor.to(device) for name, tensor in split.inputs().items()}
        self.labels = split.labels.to(device=device, dtype=torch.float32)
        self.groups = split.tensors[GROUP_KEY].to(device)
        self.items = split.tensors[ITEM_KEY].to(device)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, index: torch.Tensor) -> Batch:
        """The rows an index tensor names, gathered with index_select."""
        return Batch(
            inputs={name: tensor.index_select(0, index) for name, tensor in self.inputs.items()},
            labels=self.labels.index_select(0, index),
            groups=self.groups.index_select(0, index),
            items=self.items.index_select(0, index),
        )

    def rows(self, start: int, stop: int) -> Batch:
        """A contiguous block of rows as views (no copy)."""
        return Batch(
            inputs={name: tensor[start:stop] for name, tensor in self.inputs.items()},
            labels=self.labels[start:stop],
            groups=self.groups[start:stop],
            items=self.items[start:stop],
        )

    def n_batches(self, batch_size: int) -> int:
        return max(1, -(-len(self) // batch_size))

    def shuffled(
        self,
        batch_size: int,
        seed: int,
        epoch: int,
        shard: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> Iterator[Batch]:
        """The epoch's batches in a permutation fixed by (seed, epoch). Batches are near-equal
        (sizes differ by at most one, none above batch_size), so no tiny tail batch starves the
        in-batch negatives of the contrastive loss. `shard` picks a distributed rank's rows of
        each global batch (the permutation is the same on every rank)."""
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = torch.randperm(len(self), generator=generator).to(self.device)
        for index in torch.tensor_split(order, self.n_batches(batch_size)):
            yield self.batch(index if shard is None else shard(index))

    def in_order(self, batch_size: int) -> Iterator[Batch]:
        """Batches in row order, for prediction."""
        for start in range(0, len(self), batch_size):
            yield self.rows(start, start + batch_size)


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module, data: DeviceSplit, batch_size: int = 8192
) -> torch.Tensor:
    """The model's logits for every row of a split, in row order, on the CPU: computed in fp32
    whatever precision trained the model (autocast is switched off even inside a caller's
    autocast block), so validation, evaluation and comparisons are honest."""
    was_training = model.training
    model.eval()
    try:
        parts = []
        with torch.autocast(data.device.type, enabled=False):
            for batch in data.in_order(batch_size):
                logits = model(batch.inputs).logits
                if logits.dtype != torch.float32:
                    raise TypeError(f"evaluation logits must be float32, got {logits.dtype}")
                parts.append(logits)
        return (torch.cat(parts) if parts else torch.zeros(0)).cpu()
    finally:
        model.train(was_training)
