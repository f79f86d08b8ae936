from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import inttower
import inttower.training.train as train_module
from inttower.config import Params
from inttower.evaluation.metrics import auc
from inttower.features.encoded import load_fields, load_split, save_split
from inttower.io import file_md5
from inttower.models.registry import build_model
from inttower.pipeline.paths import Paths
from inttower.training.batching import DeviceSplit, predict_logits
from inttower.training.card import TrainSummary
from inttower.training.device import DeviceError, native_bf16_flags
from inttower.training.pages import file_mappings
from inttower.training.train import TrainingError, train_model
from tests.training.helpers import tiny_params, write_tiny_project

REPO_ROOT = Path(inttower.__file__).resolve().parents[1]
HISTORY_KEYS = {"epoch", "loss", "valid_auc", "valid_logloss"}


def _weights(paths: Paths) -> dict[str, torch.Tensor]:
    return load_file(str(paths["model.weights"]))


def _card(paths: Paths) -> dict:
    return json.loads((paths["model.card"]).read_text())


def test_training_writes_weights_card_and_history(tmp_path: Path) -> None:
    paths = write_tiny_project(tmp_path)
    params = tiny_params()
    summary = train_model(params, paths, progress=False)

    card = _card(paths)
    assert card["best_epoch"] == summary.best_epoch
    assert card["params"] == params.model_dump(mode="json")
    assert card["data_md5"]["train.safetensors"] == file_md5(paths["encoded.train"])
    assert set(card["data_md5"]) == {
        "train.safetensors", "valid.safetensors", "test.safetensors", "fields.json"
    }  # fmt: skip
    assert card["n_parameters"] == summary.n_parameters > 0
    # `auto` on a CPU: bf16 where it is native, fp32 elsewhere
    assert card["device"] == "cpu"
    assert card["precision"] == ("bfloat16" if native_bf16_flags() else "float32")
    assert card["torch_version"] == torch.__version__
    # what a torchrun rank or a Pipes worker hands back as JSON reads back the same
    assert TrainSummary.from_json(json.loads(json.dumps(summary.to_json()))) == summary
    timing = summary.timing  # facts of the process: in the run log, never in the card
    assert timing.samples_per_second > 0 and timing.wall_seconds > 0
    assert not {"samples_per_second", "wall_seconds", "resumed_from_epoch"} & set(card)
    assert 0.5 < card["valid"]["auc"] <= 1.0  # the biases in the tiny data are learnable
    history = json.loads(paths["train.history"].read_text())
    assert history == card["history"]
    assert [row["epoch"] for row in history] == list(range(1, summary.epochs_run + 1))
    assert all(set(row) == HISTORY_KEYS for row in history)
    assert set(_weights(paths)) == set(
        build_model(load_fields(paths["encoded"]), params.model).state_dict()
    )


def test_progress_is_logged_once_per_epoch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = write_tiny_project(tmp_path)
    with caplog.at_level(logging.INFO, logger="inttower.training"):
        train_model(tiny_params(**{"train.patience": 5}), paths, progress=False)
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epoch_lines) == 3
    assert "valid_auc=" in epoch_lines[0]


def test_same_seed_gives_bit_identical_weights(tmp_path: Path) -> None:
    first = write_tiny_project(tmp_path / "first")
    second = write_tiny_project(tmp_path / "second")
    train_model(tiny_params(), first, progress=False)
    train_model(tiny_params(), second, progress=False)
    for name, tensor in _weights(first).items():
        assert torch.equal(tensor, _weights(second)[name]), name
    other = write_tiny_project(tmp_path / "other")
    train_model(tiny_params(seed=8), other, progress=False)
    assert any(not torch.equal(t, _weights(other)[n]) for n, t in _weights(first).items())


def test_encoded_splits_are_read_memory_mapped_not_copied(tmp_path: Path) -> None:
    """safetensors maps the file (copy-on-write): a split's tensors are views of its pages, so
    training gathers each batch's rows from the OS's file cache, never from a heap copy."""
    paths = write_tiny_project(tmp_path / "mapped")
    split = load_split(paths["encoded"], "train")
    regions = file_mappings(paths.encoded_split("train"))
    assert regions, "the split file is mapped"
    for name, tensor in split.tensors.items():
        if tensor.numel():
            assert any(low <= tensor.data_ptr() < high for low, high in regions), name


def test_cpu_bf16_trains_deterministically_and_is_recorded(tmp_path: Path) -> None:
    default = write_tiny_project(tmp_path / "default")
    train_model(tiny_params(**{"train.precision": "fp32"}), default, progress=False)
    assert json.loads(default["model.card"].read_text())["precision"] == "float32"

    paths = write_tiny_project(tmp_path / "bf16")
    summary = train_model(tiny_params(**{"train.precision": "bf16"}), paths, progress=False)
    card = json.loads(paths["model.card"].read_text())
    assert card["precision"] == "bfloat16"
    assert summary.valid_auc > 0.5
    again = write_tiny_project(tmp_path / "bf16-again")
    train_model(tiny_params(**{"train.precision": "bf16"}), again, progress=False)
    for name, tensor in _weights(paths).items():  # deterministic on CPU in bf16 too
        assert torch.equal(tensor, _weights(again)[name]), name


def test_process_settings_are_put_back_after_training(tmp_path: Path) -> None:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    train_model(tiny_params(**{"train.epochs": 1}), write_tiny_project(tmp_path), progress=False)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def _valid_auc_of_saved_model(params: Params, paths: Paths) -> float:
    model = build_model(load_fields(paths["encoded"]), params.model)
    model.load_state_dict(_weights(paths))
    valid = DeviceSplit(load_split(paths["encoded"], "valid"), torch.device("cpu"))
    logits = predict_logits(model, valid)
    return auc(valid.labels, logits)


def test_early_stopping_keeps_the_best_epoch_not_the_last(tmp_path: Path) -> None:
    # validation labels are coin flips, so validation AUC wanders and soon stops improving
    paths = write_tiny_project(tmp_path, shuffle_valid_labels=True)
    params = tiny_params(**{"train.epochs": 30, "train.patience": 2})
    summary = train_model(params, paths, progress=False)

    history = _card(paths)["history"]
    aucs = [row["valid_auc"] for row in history]
    assert summary.stopped_early
    assert summary.epochs_run < 30
    assert summary.best_epoch == aucs.index(max(aucs)) + 1
    assert summary.epochs_run == summary.best_epoch + 2  # patience epochs without gain
    restored = _valid_auc_of_saved_model(params, paths)
    assert restored == pytest.approx(max(aucs), abs=1e-9)
    assert restored != pytest.approx(aucs[-1], abs=1e-9)


def test_cuda_requested_without_a_gpu_fails_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    paths = write_tiny_project(tmp_path)
    with pytest.raises(DeviceError, match="cuda"):
        train_model(tiny_params(**{"train.device": "cuda"}), paths, progress=False)
    assert not paths["model"].exists()


def test_a_diverging_loss_stops_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_loss = train_module.objective_loss

    def nan_loss(*args, **kwargs) -> dict[str, torch.Tensor]:
        losses = real_loss(*args, **kwargs)
        return {**losses, "loss": losses["loss"] * float("nan")}

    monkeypatch.setattr(train_module, "objective_loss", nan_loss)
    with pytest.raises(TrainingError, match=r"train\.lr"):
        train_model(tiny_params(), write_tiny_project(tmp_path), progress=False)


# The child trains and SIGKILLs itself in the middle of a chosen batch: a real, unannounced kill.
KILLED_CHILD = """
import json, os, signal, sys
from pathlib import Path
import inttower.training.train as train_module
from inttower.config import parse_params
from inttower.pipeline.paths import Paths

raw, data, reports, kill_at = json.loads(sys.argv[1])
real_loss = train_module.objective_loss
calls = 0

def loss_then_kill(*args, **kwargs):
    global calls
    calls += 1
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_loss(*args, **kwargs)

train_module.objective_loss = loss_then_kill
train_module.train_model(parse_params(raw), Paths(Path(data), Path(reports)), progress=False)
"""


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    params = tiny_params(**{"train.epochs": 4, "train.patience": 4})
    straight = write_tiny_project(tmp_path / "straight")
    expected = train_model(params, straight, progress=False)

    killed = write_tiny_project(tmp_path / "killed")
    batches_per_epoch = math.ceil(len(load_split(killed["encoded"], "train")) / 32)
    kill_at = 2 * batches_per_epoch + batches_per_epoch // 2  # mid epoch 3
    argument = [params.model_dump(mode="json"), str(killed.data), str(killed.reports), kill_at]
    child = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, json.dumps(argument)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert not killed["model.weights"].exists()
    checkpoint = json.loads((killed.checkpoints / "latest.json").read_text())
    assert checkpoint["state"]["epoch"] == 2

    resumed = train_model(params, killed, resume=True, progress=False)
    assert resumed.timing.resumed_from_epoch == 2
    assert (resumed.best_epoch, resumed.epochs_run) == (expected.best_epoch, expected.epochs_run)
    assert resumed.valid_auc == pytest.approx(expected.valid_auc, abs=1e-6)
    assert resumed.valid_logloss == pytest.approx(expected.valid_logloss, abs=1e-6)
    for got, want in zip(_card(killed)["history"], _card(straight)["history"], strict=True):
        for key in ("loss", "valid_auc", "valid_logloss"):
            assert got[key] == pytest.approx(want[key], abs=1e-6)
    for name, tensor in _weights(straight).items():
        torch.testing.assert_close(_weights(killed)[name], tensor, rtol=0, atol=1e-6)


def test_resuming_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    paths = write_tiny_project(tmp_path)
    params = tiny_params(**{"train.epochs": 2})
    first = train_model(params, paths, progress=False)
    weights, history = _weights(paths), _card(paths)["history"]
    again = train_model(params, paths, resume=True, progress=False)
    assert again.timing.resumed_from_epoch == 2
    assert again.epochs_run == first.epochs_run
    assert _card(paths)["history"] == history
    assert all(torch.equal(tensor, _weights(paths)[name]) for name, tensor in weights.items())


def test_resume_under_other_params_starts_afresh(tmp_path: Path) -> None:
    paths = write_tiny_project(tmp_path)
    train_model(tiny_params(**{"train.epochs": 2}), paths, progress=False)
    changed = train_model(
        tiny_params(**{"train.epochs": 2, "train.lr": 0.02}), paths, resume=True, progress=False
    )
    assert changed.timing.resumed_from_epoch is None


def test_without_resume_old_checkpoints_are_discarded(tmp_path: Path) -> None:
    paths = write_tiny_project(tmp_path)
    params = tiny_params(**{"train.epochs": 2})
    train_model(params, paths, progress=False)
    summary = train_model(params, paths, progress=False)
    assert summary.timing.resumed_from_epoch is None
    assert summary.epochs_run == 2


class _AtEpochEnd(logging.Handler):
    """Samples a memory figure each time the trainer logs an epoch."""

    def __init__(self, measure: Callable[[], int]) -> None:
        super().__init__()
        self.measure = measure
        self.samples: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("epoch "):
            self.samples.append(self.measure())


def _memory_per_epoch(params: Params, paths: Paths, measure: Callable[[], int]) -> list[int]:
    handler = _AtEpochEnd(measure)
    logger = logging.getLogger("inttower.training")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        train_model(params, paths, progress=False)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return handler.samples


def test_cpu_memory_stays_flat_across_epochs(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    paths = write_tiny_project(tmp_path, n_events=20_000)
    # fp32: bf16 autocast (`auto` on a CPU with native bf16) fills oneDNN's caches for ~15
    # epochs of this size (+36 MB), then stays flat; fp32 shows a leak from the first epochs
    epochs = {"train.epochs": 8, "train.patience": 8, "train.batch_size": 256}
    params = tiny_params(**epochs, **{"train.precision": "fp32"})
    rss = _memory_per_epoch(params, paths, lambda: psutil.Process().memory_info().rss)
    # a graph kept alive per batch grows this by ~4 MB an epoch; allocator noise is < 1 MB
    assert max(rss[1:]) - rss[1] < 4 << 20, [(r - rss[1]) >> 10 for r in rss]


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@gpu
def test_cuda_training_with_mixed_precision(tmp_path: Path) -> None:
    paths = write_tiny_project(tmp_path, n_events=3000)
    params = tiny_params(**{"train.device": "cuda", "train.epochs": 4, "train.patience": 4})
    summary = train_model(params, paths, progress=False)
    card = _card(paths)
    assert card["device"].startswith("cuda")
    assert card["precision"] in ("bfloat16", "float16")
    assert summary.valid_auc > 0.5
    assert all(math.isfinite(row["loss"]) for row in card["history"])


@pytest.mark.gpu
@gpu
def test_gpu_memory_stays_flat_across_epochs(tmp_path: Path) -> None:
    paths = write_tiny_project(tmp_path, n_events=3000)
    params = tiny_params(**{"train.device": "cuda", "train.epochs": 6, "train.patience": 6})
    allocated = _memory_per_epoch(params, paths, torch.cuda.memory_allocated)
    # epoch 1 creates Adam's moments; from then on nothing may accumulate
    assert len(allocated) == 6
    assert max(allocated[1:]) - min(allocated[1:]) < 1 << 20, allocated


def test_without_validation_rows_the_last_epoch_is_kept(tmp_path: Path) -> None:
    paths = write_tiny_project(tmp_path)
    valid = load_split(paths["encoded"], "valid")
    save_split(paths["encoded"], "valid", {name: t[:0] for name, t in valid.tensors.items()})
    summary = train_model(tiny_params(**{"train.patience": 1}), paths, progress=False)
    assert summary.epochs_run == summary.best_epoch == 3
    assert summary.valid_auc is None
    assert all(row["valid_auc"] is None for row in _card(paths)["history"])


def test_the_id_path_learns_at_its_own_rate_and_everything_else_at_lr() -> None:
    from tests.models import tiny_fields
    from tests.models import tiny_params as tiny_model

    params = Params.model_validate({"train": {"lr": 1e-3, "id_lr": 5e-2}})
    model = build_model(tiny_fields(), tiny_model(id_dim=4))
    others, ids = train_module.build_optimizer(model, params).param_groups
    assert ids["lr"] == 5e-2 and others["lr"] == 1e-3
    assert {id(p) for p in ids["params"]} == {id(model.user_ids.weight), id(model.item_ids.weight)}
    assert len(others["params"]) + 2 == len(list(model.parameters()))
    # without an id path: one group, as before
    plain = build_model(tiny_fields(), tiny_model())
    assert len(train_module.build_optimizer(plain, params).param_groups) == 1
