"""Resources: overrides become params (and are recorded), storage resolves like the CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
import torch

from dagster_project.assets import asset_key
from dagster_project.definitions import build_definitions
from dagster_project.resources import (
    ComputeResource,
    Device,
    ParamsResource,
    StorageResource,
    run_params,
)
from inttower.errors import ConfigError
from inttower.pipeline.paths import DATA_DIR_ENV, MIRROR_ENV

from .conftest import Retrain
from .helpers import write_params


def test_compute_and_run_config_overrides_become_params(tmp_path: Path) -> None:
    params_file = write_params(tmp_path / "params.yaml", {"train.device": "auto"})
    chosen = run_params(
        ParamsResource(path=str(params_file), overrides={"train.epochs": 2}),
        ComputeResource(device=Device.cpu, threads=3),
    )
    assert chosen.params.train.device == "cpu"
    assert chosen.params.train.threads == 3
    assert chosen.params.train.epochs == 2
    assert chosen.overrides == {"train.epochs": 2, "train.device": "cpu", "train.threads": 3}


def test_unset_compute_fields_keep_the_params_file(tmp_path: Path) -> None:
    params_file = write_params(tmp_path / "params.yaml", {"train.threads": 5})
    chosen = run_params(ParamsResource(path=str(params_file)), ComputeResource())
    assert chosen.params.train.threads == 5 and chosen.overrides == {}


def test_a_wrong_override_fails_with_its_dotted_key(tmp_path: Path) -> None:
    params_file = write_params(tmp_path / "params.yaml", {})
    with pytest.raises(ConfigError, match=r"train\.device"):
        ParamsResource(path=str(params_file), overrides={"train.device": "tpu"}).load()


def test_storage_defaults_follow_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    paths = StorageResource(root=str(tmp_path)).paths()
    assert (paths.data, paths.reports) == (tmp_path / "data", tmp_path / "reports")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    assert StorageResource(root=str(tmp_path)).paths().data == tmp_path / "elsewhere"


def test_the_mirror_is_set_only_while_a_stage_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, "/before")
    with StorageResource(mirror="/mirror").mirror_env():
        assert os.environ[MIRROR_ENV] == "/mirror"
    assert os.environ[MIRROR_ENV] == "/before"


def _train_on_a_copy(retrain: Retrain, tmp_path: Path, device: Device) -> dg.ExecuteInProcessResult:
    """Retrain and evaluate on a copy of the retrained project's data with the given device."""
    shutil.copytree(retrain.project / "data", tmp_path / "data")
    storage = StorageResource(root=str(tmp_path), data_dir=str(tmp_path / "data"))
    defs = build_definitions(retrain.project / "params.yaml", storage)
    return defs.resolve_job_def("retrain_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[asset_key("train"), asset_key("evaluate")],
        run_config={"resources": {"compute": {"config": {"device": device.name}}}},
        raise_on_error=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a CPU-only machine")
def test_asking_for_cuda_without_a_gpu_fails_the_training_step(
    retrain: Retrain, tmp_path: Path
) -> None:
    result = _train_on_a_copy(retrain, tmp_path, Device.cuda)
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    assert failure.step_key == "inttower_model"
    assert "'cuda' requested but no CUDA device" in str(failure.step_failure_data.error)


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_compute_resource_puts_training_on_the_gpu(retrain: Retrain, tmp_path: Path) -> None:
    result = _train_on_a_copy(retrain, tmp_path, Device.cuda)
    assert result.success
    (event,) = result.asset_materializations_for_node("inttower_model")
    assert str(event.metadata["device"].value).startswith("cuda")
