"""The weekly-partitioned backtest asset: a backfill of a range is one run of the CLI's
computation, and writes the same report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.definitions import build_definitions
from dagster_project.resources import StorageResource
from inttower.backtest import backtest_at
from inttower.config import load_params
from inttower.paths import Paths

from .helpers import SMALL_PARAMS, write_params

WEEKS = ["1998-03-30", "1998-04-06", "1998-04-13"]  # Mondays at the end of ml-100k


def test_the_backtest_is_partitioned_by_monday_weeks_and_kept_out_of_retrain_job() -> None:
    defs = build_definitions()
    asset = defs.resolve_assets_def("backtest")
    keys = asset.partitions_def.get_partition_keys()
    assert keys[0] == "1995-01-02" and "1998-03-30" in keys
    job = defs.resolve_job_def("retrain_job")
    assert dg.AssetKey("backtest") not in job.asset_layer.selected_asset_keys


@pytest.mark.slow
def test_a_backfill_of_three_weeks_is_the_clis_computation(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    params_file = write_params(tmp_path / "params.yaml", SMALL_PARAMS)
    storage = StorageResource(
        root=str(tmp_path), data_dir=str(tmp_path / "data"), mirror=str(movielens_mirror)
    )
    defs = build_definitions(params_file, storage)
    job = defs.resolve_implicit_job_def_def_for_assets([dg.AssetKey("backtest")])
    assert job is not None
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey("backtest")],
        tags={
            "dagster/asset_partition_range_start": WEEKS[0],
            "dagster/asset_partition_range_end": WEEKS[-1],
        },
    )
    assert result.success
    report = json.loads((tmp_path / "reports/backtest.json").read_text())
    assert [window["as_of"][:10] for window in report["windows"]] == WEEKS
    assert (tmp_path / "reports/plots/backtest.png").exists()
    # the same computation, called as the CLI does: the same numbers (its runs are reused)
    cuts = [int(datetime.fromisoformat(week).replace(tzinfo=UTC).timestamp()) for week in WEEKS]
    paths = Paths(data=tmp_path / "data", reports=tmp_path / "side-reports")
    with storage.mirror_env():
        again = backtest_at(load_params(params_file), paths, cuts, 7 * 86_400, "7d")
    assert again["windows"] == report["windows"]
