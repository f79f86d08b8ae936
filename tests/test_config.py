"""params.yaml: one typed schema; a wrong key or value fails at start-up with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from inttower.config import load_params
from inttower.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_committed_params_load_with_the_contract_keys() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.data.dataset == "ml-100k"
    assert params.model.name == "inttower"
    assert params.train.device in {"auto", "cpu", "cuda"}
    assert params.split.train + params.split.valid + params.split.test == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("train:\n  lr: -1\n", "train.lr"),
        ("train:\n  epoch: 3\n", "train.epoch"),
        ("split:\n  train: 0.9\n  valid: 0.1\n  test: 0.1\n", "split"),
        ("model:\n  name: transformer\n", "model.name"),
        ("data:\n  dataset: ml-5k\n", "data.dataset"),
        ("features:\n  recent_windows: [5, 5]\n", "features.recent_windows"),
        ("features:\n  recent_windows: [0]\n", "features.recent_windows"),
    ],
)
def test_bad_params_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert error.value.key == key
    assert key in str(error.value)


def test_overrides_use_dotted_keys(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.1\n")
    params = load_params(path, {"train.lr": 0.01, "model.hidden_units": [8, 4]})
    assert params.train.lr == 0.01
    assert params.model.hidden_units == [8, 4]


def test_fingerprint_changes_only_with_the_named_keys() -> None:
    params = load_params(ROOT / "params.yaml")
    changed = params.model_copy(update={"train": params.train.model_copy(update={"lr": 0.5})})
    assert params.fingerprint(["split"]) == changed.fingerprint(["split"])
    assert params.fingerprint(["train"]) != changed.fingerprint(["train"])
