from __future__ import annotations

import json
from pathlib import Path

import torch

from inttower.training.checkpoint import (
    LATEST,
    TrainingState,
    clear_checkpoints,
    load_checkpoint,
    model_state,
    save_checkpoint,
)


def _trained_pair() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        optimizer.step()
    return model, optimizer


def _fresh_pair() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    return model, torch.optim.Adam(model.parameters(), lr=0.5)


def _save(directory: Path, epoch: int = 2, fingerprint: str = "run-a") -> tuple:
    torch.manual_seed(0)
    model, optimizer = _trained_pair()
    state = TrainingState(epoch=epoch, best_epoch=1, best_auc=0.7, epochs_without_gain=1)
    state.history = [{"epoch": e, "loss": 0.5, "valid_auc": 0.7} for e in range(1, epoch + 1)]
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    best = {name: tensor + 1 for name, tensor in model.state_dict().items()}
    save_checkpoint(directory, fingerprint, state, model, optimizer, scaler, best)
    return model, optimizer, state, best


def test_a_checkpoint_restores_model_optimiser_rng_and_run_state(tmp_path: Path) -> None:
    model, optimizer, state, best = _save(tmp_path)
    rng_after_save = torch.get_rng_state()
    torch.manual_seed(123)  # move the generator on; loading must bring it back

    restored_model, restored_optimizer = _fresh_pair()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loaded = load_checkpoint(tmp_path, "run-a", restored_model, restored_optimizer, scaler)
    assert loaded is not None
    loaded_state, loaded_best = loaded

    assert loaded_state == state
    for name, tensor in model.state_dict().items():
        assert torch.equal(restored_model.state_dict()[name], tensor)
        assert torch.equal(loaded_best[name], best[name])
    saved, restored = optimizer.state_dict(), restored_optimizer.state_dict()
    assert restored["param_groups"] == saved["param_groups"]
    for index, moments in saved["state"].items():
        for key, value in moments.items():
            assert torch.equal(restored["state"][index][key], value), (index, key)
    assert torch.equal(torch.get_rng_state(), rng_after_save)


def test_the_checkpoint_holds_no_pickle_only_safetensors_and_json(tmp_path: Path) -> None:
    _save(tmp_path, epoch=3)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["epoch-0003.safetensors", LATEST]
    meta = json.loads((tmp_path / LATEST).read_text())
    assert meta["tensors"] == "epoch-0003.safetensors"
    assert meta["state"]["epoch"] == 3


def test_a_newer_checkpoint_replaces_the_older_one(tmp_path: Path) -> None:
    _save(tmp_path, epoch=1)
    (tmp_path / ".epoch-0002.safetensors.abc.part").write_bytes(b"torn by a kill")
    _save(tmp_path, epoch=2)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["epoch-0002.safetensors", LATEST]


def test_a_checkpoint_of_other_params_is_not_resumed(tmp_path: Path) -> None:
    _save(tmp_path, fingerprint="run-a")
    model, optimizer = _fresh_pair()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    assert load_checkpoint(tmp_path, "run-b", model, optimizer, scaler) is None


def test_a_missing_tensor_file_means_start_afresh(tmp_path: Path) -> None:
    _save(tmp_path)
    next(tmp_path.glob("epoch-*.safetensors")).unlink()
    model, optimizer = _fresh_pair()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    assert load_checkpoint(tmp_path, "run-a", model, optimizer, scaler) is None


def test_clear_removes_every_checkpoint(tmp_path: Path) -> None:
    _save(tmp_path)
    clear_checkpoints(tmp_path)
    assert list(tmp_path.iterdir()) == []
    model, optimizer = _fresh_pair()
    assert load_checkpoint(tmp_path, "run-a", model, optimizer, torch.amp.GradScaler("cpu")) is None


def test_model_state_is_a_detached_copy() -> None:
    model, _ = _fresh_pair()
    copy = model_state(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(copy["0.weight"], model[0].weight)
