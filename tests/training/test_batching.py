from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inttower.features.encoded import load_split
from inttower.training.batching import DeviceSplit, epoch_seed, predict_logits
from tests.training.helpers import write_tiny_project


def _train_split(tmp_path: Path) -> DeviceSplit:
    paths = write_tiny_project(tmp_path, n_events=300)
    return DeviceSplit(load_split(paths["encoded"], "train"), torch.device("cpu"))


def _order(data: DeviceSplit, batch_size: int, seed: int, epoch: int) -> list[int]:
    return [
        int(row)
        for batch in data.shuffled(batch_size, seed, epoch)
        for row in batch.inputs["row"].tolist()
    ]


def test_each_epoch_visits_every_row_once_in_batches_no_larger_than_asked(tmp_path: Path) -> None:
    data = _train_split(tmp_path)
    data.inputs["row"] = torch.arange(len(data))  # a tag column to see which rows came out
    batches = list(data.shuffled(batch_size=32, seed=1, epoch=1))
    sizes = [len(batch) for batch in batches]
    assert max(sizes) <= 32
    assert max(sizes) - min(sizes) <= 1  # no starved tail batch
    assert sorted(_order(data, 32, seed=1, epoch=1)) == list(range(len(data)))
    assert all(batch.labels.dtype == torch.float32 for batch in batches)


def test_the_permutation_depends_only_on_seed_and_epoch(tmp_path: Path) -> None:
    data = _train_split(tmp_path)
    data.inputs["row"] = torch.arange(len(data))
    assert _order(data, 32, seed=1, epoch=2) == _order(data, 32, seed=1, epoch=2)
    assert _order(data, 32, seed=1, epoch=2) != _order(data, 32, seed=1, epoch=3)
    assert _order(data, 32, seed=1, epoch=2) != _order(data, 32, seed=2, epoch=2)
    assert epoch_seed(1, 2) != epoch_seed(2, 1)


def test_batches_keep_labels_and_groups_aligned_with_inputs(tmp_path: Path) -> None:
    data = _train_split(tmp_path)
    data.inputs["row"] = torch.arange(len(data))
    for batch in data.shuffled(batch_size=16, seed=3, epoch=1):
        rows = batch.inputs["row"]
        assert torch.equal(batch.labels, data.labels[rows])
        assert torch.equal(batch.groups, data.groups[rows])
        assert torch.equal(batch.inputs["history"], data.inputs["history"][rows])


class _RowEcho(torch.nn.Module):
    """Logit = the row's user_pos_rate: shows predictions come back in row order."""

    def forward(self, inputs: dict[str, torch.Tensor]):
        return type("Out", (), {"logits": inputs["user_pos_rate"] * 1.0})()


def test_predictions_come_back_in_row_order_whatever_the_batch_size(tmp_path: Path) -> None:
    data = _train_split(tmp_path)
    logits = predict_logits(_RowEcho(), data, batch_size=7)
    assert torch.equal(logits, data.inputs["user_pos_rate"])


def test_prediction_is_fp32_even_inside_a_callers_bf16_autocast(tmp_path: Path) -> None:
    """Evaluation never inherits a training precision: the same logits as a plain fp32 pass."""
    data = _train_split(tmp_path)
    torch.manual_seed(0)
    layer = torch.nn.Linear(1, 1)

    class Linear(torch.nn.Module):
        def forward(self, inputs: dict[str, torch.Tensor]):
            logits = layer(inputs["user_pos_rate"].float().unsqueeze(1) * 3.7 + 0.1).squeeze(1)
            return type("Out", (), {"logits": logits})()

    with torch.no_grad():
        fp32 = Linear()(data.inputs).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            bf16 = Linear()(data.inputs).logits
        logits = predict_logits(Linear(), data, batch_size=64)
    assert bf16.dtype == torch.bfloat16 and not torch.equal(bf16.float(), fp32)  # it would differ
    assert logits.dtype == torch.float32 and torch.equal(logits, fp32)


def test_a_model_that_emits_half_logits_is_refused(tmp_path: Path) -> None:
    class Half(torch.nn.Module):
        def forward(self, inputs: dict[str, torch.Tensor]):
            return type("Out", (), {"logits": inputs["user_pos_rate"].half()})()

    with pytest.raises(TypeError, match="float32"):
        predict_logits(Half(), _train_split(tmp_path))
