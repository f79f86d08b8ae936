"""The training asset with two processes: torchrun launched through Dagster Pipes, rank 0
reporting metadata and logs back (a real Dagster instance, real processes, real ml-100k)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.assets import asset_key
from dagster_project.definitions import build_definitions
from dagster_project.resources import StorageResource

from .helpers import SMALL_PARAMS, write_params

pytestmark = pytest.mark.slow
UP_TO_TRAIN = ("source", "ingest", "validate", "split", "features", "encoders", "encode", "train")


def test_the_training_asset_runs_torchrun_through_pipes(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    params_file = write_params(
        tmp_path / "params.yaml", {**SMALL_PARAMS, "train.nproc": 2, "train.epochs": 2}
    )
    storage = StorageResource(root=str(tmp_path), mirror=str(movielens_mirror))
    defs = build_definitions(params_file, storage)
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("inttower_pipeline").execute_in_process(
        instance=instance, asset_selection=[asset_key(name) for name in UP_TO_TRAIN]
    )
    assert result.success
    (event,) = result.asset_materializations_for_node("inttower_model")
    metadata = {key: value.value for key, value in event.metadata.items()}
    assert metadata["reported_by"] == "rank 0 (Dagster Pipes)"  # from the worker, via Pipes
    assert metadata["world_size"] == 2 and metadata["pipes_valid_auc"] > 0.5
    assert json.loads((tmp_path / "data/07_model/model_card.json").read_text())["world_size"] == 2
    # rank 0's epoch lines reached the run's logs through Pipes
    logs = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.user_message and "epoch 2/2" in entry.user_message
    ]
    assert logs, "rank 0's epoch log lines are in the Dagster run's logs"
