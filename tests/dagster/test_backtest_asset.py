"""The backtest in Dagster: partitions are the ingested timeline's weeks, registered at ingest;
the asset is filled by its job one week a run, with the CLI's numbers, and never joins `'*'`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from dagster_project.assets import asset_key
from dagster_project.backtest import BACKTEST
from dagster_project.definitions import build_definitions
from dagster_project.partitions import BACKTEST_WINDOWS, register_windows, window_keys
from dagster_project.resources import StorageResource
from inttower.config import load_params
from inttower.lifecycle.backtest import backtest_at
from inttower.pipeline.paths import Paths

from .helpers import SMALL_PARAMS, write_params

WEEKS = ["1998-04-06", "1998-04-13"]  # Mondays at the end of ml-100k


def _ingested(tmp_path: Path, stamps: list[int]) -> Paths:
    paths = Paths(data=tmp_path / "data", reports=tmp_path / "reports")
    target = paths["ingested.interactions"]
    target.parent.mkdir(parents=True)
    pl.DataFrame({"timestamp": stamps}).write_parquet(target)
    return paths


def _at(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


def test_the_weeks_are_the_mondays_with_a_week_of_history_and_events_after(
    tmp_path: Path,
) -> None:
    # Saturday 1997-09-20 to Wednesday 1998-04-22: ml-100k's own range
    paths = _ingested(tmp_path, [_at("1997-09-20T03:05:10"), _at("1998-04-22T23:10:38")])
    keys = window_keys(paths)
    assert keys[0] == "1997-09-29" and keys[-1] == "1998-04-20" and len(keys) == 30
    assert all(datetime.fromisoformat(key).weekday() == 0 for key in keys)


def test_registering_replaces_weeks_outside_the_new_timeline(tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(BACKTEST_WINDOWS.name, ["1995-01-02"])
    paths = _ingested(tmp_path, [_at("1998-03-01"), _at("1998-03-25")])
    assert register_windows(instance, paths) == ["1998-03-09", "1998-03-16", "1998-03-23"]
    assert instance.get_dynamic_partitions(BACKTEST_WINDOWS.name) == [
        "1998-03-09",
        "1998-03-16",
        "1998-03-23",
    ]


def test_star_and_the_retrain_job_leave_the_backtest_out() -> None:
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    assert BACKTEST in graph.get_all_asset_keys()
    assert BACKTEST not in graph.materializable_asset_keys  # so '*' never asks for partitions
    star = dg.AssetSelection.from_coercible(["*"]).resolve(graph)
    assert all(graph.get(key).partitions_def is None for key in star)
    assert asset_key("ingest") in graph.get(BACKTEST).parent_keys  # its lineage
    job = defs.resolve_job_def("retrain_job")
    assert BACKTEST not in job.asset_layer.selected_asset_keys
    assert defs.resolve_job_def("backtest_job").partitions_def == BACKTEST_WINDOWS


@pytest.mark.slow
def test_a_week_of_the_backtest_job_is_the_clis_computation(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    params_file = write_params(tmp_path / "params.yaml", SMALL_PARAMS)
    storage = StorageResource(
        root=str(tmp_path), data_dir=str(tmp_path / "data"), mirror=str(movielens_mirror)
    )
    defs = build_definitions(params_file, storage)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(BACKTEST_WINDOWS.name, WEEKS)
    result = defs.resolve_job_def("backtest_job").execute_in_process(
        instance=instance, partition_key=WEEKS[-1]
    )
    assert result.success
    [event] = result.asset_materializations_for_node("backtest_week")
    assert event.partition == WEEKS[-1]
    metadata = {key: value.value for key, value in event.metadata.items()}
    assert metadata["as_of"] == f"{WEEKS[-1]}T00:00:00Z"
    assert metadata["frozen_as_of"] == metadata["as_of"]  # outside a backfill: its own week
    # the same window from the CLI's computation (its run is reused): the same numbers, to the
    # metadata's four decimals
    paths = Paths(data=tmp_path / "data", reports=tmp_path / "side-reports")
    with storage.mirror_env():
        report = backtest_at(load_params(params_file), paths, [_at(WEEKS[-1])], 7 * 86_400, "7d")
    [window] = report["windows"]
    assert metadata["test_events"] == window["test_events"]
    assert metadata["retrained_auc"] == round(window["retrained"]["auc"], 4)
    assert metadata["baseline_auc"] == round(window["baseline"]["auc"], 4)
    assert json.loads((tmp_path / "side-reports/backtest.json").read_text())["windows"]
