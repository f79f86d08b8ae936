"""The retrain schedule comes from params.yaml and asks for retrain_job; the job covers every
asset and its checks."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.assets import ASSET_NAMES, SOURCE_FILES
from dagster_project.definitions import build_definitions
from dagster_project.resources import ParamsResource, StorageResource
from dagster_project.retraining import CHAMPION_ASSET
from dagster_project.versioning import VERSIONED_ASSET
from inttower.config import load_params
from inttower.lifecycle.champion import lineage

from .conftest import Retrain
from .helpers import write_params


def test_schedule_reads_cron_and_timezone_from_params_and_requests_retrain_job(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    params_file = write_params(
        tmp_path / "params.yaml",
        {"schedule.cron": "30 4 * * 2", "schedule.timezone": "Europe/Paris"},
    )
    defs = build_definitions(params_file)
    schedule = defs.resolve_schedule_def("retrain_schedule")
    assert schedule.cron_schedule == "30 4 * * 2"
    assert schedule.execution_timezone == "Europe/Paris"
    assert schedule.job_name == "retrain_job"
    storage = StorageResource(
        root=str(tmp_path), data_dir=str(tmp_path / "data"), mirror=str(movielens_mirror)
    )
    instance = dg.DagsterInstance.local_temp(str(tmp_path))  # a ref, as a daemon's

    def tick() -> dg.RunRequest | dg.SkipReason:
        # closed on exit: the instance it opens from the ref would otherwise stay the
        # process's current one after this test, and outlive its own storage
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 1, 6, 3, 30, tzinfo=UTC),  # 04:30 in Paris
            resources={"params": ParamsResource(path=str(params_file)), "storage": storage},
        ) as context:
            data = schedule.evaluate_tick(context)
        return (data.run_requests or [data.skip_message])[0]

    # no champion: a retrain is requested, and the raw files are observed with their version
    request = tick()
    assert isinstance(request, dg.RunRequest), request
    assert request.job_name in (None, "retrain_job")  # None: the schedule's own job
    paths = storage.paths()
    current = lineage(load_params(params_file), paths)
    assert request.tags["inttower/lineage_data"] == current["data"]
    observed = instance.get_latest_data_version_record(dg.AssetKey(SOURCE_FILES))
    assert observed is not None
    # a champion made of the same data, code and params: the tick skips, and says why
    paths.reports.mkdir(parents=True)
    record = {"id": "model-abc", "promoted_at": "2026-01-01T00:00:00+00:00", "lineage": current}
    paths.champion_record.write_text(json.dumps(record))
    skipped = tick()
    assert isinstance(skipped, str) and "equal those of champion model-abc" in skipped
    log = [json.loads(line) for line in paths.run_log.read_text().splitlines()]
    assert log[-1]["decision"] == "skipped" and log[-1]["front_end"] == "dagster schedule"


def test_retrain_job_covers_every_asset_and_check() -> None:
    job = build_definitions().resolve_job_def("retrain_job")
    keys = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert keys == {*ASSET_NAMES.values(), VERSIONED_ASSET, CHAMPION_ASSET}
    # each check is its own step in the job, named <asset>_<check>
    steps = {node.name for node in job.nodes}
    assert {
        "raw_movielens_schema_valid",
        "labelled_split_split_is_chronological",
        "encoded_splits_test_items_known",
        "model_evaluation_quality_gate",
    } <= steps


def test_nothing_retrains_until_a_person_switches_it_on() -> None:
    defs = build_definitions()
    assert defs.resolve_sensor_def("follow_upstream").default_status == (
        dg.DefaultSensorStatus.STOPPED
    )
    assert defs.resolve_schedule_def("retrain_schedule").default_status == (
        dg.DefaultScheduleStatus.STOPPED
    )


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")  # raised inside Dagster's own tester
def test_downstream_assets_follow_a_re_ingest(retrain: Retrain) -> None:
    assert retrain.result.success
    defs, instance = retrain.defs, retrain.instance
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert settled.total_requested == 0  # everything is up to date after the retrain

    reingest = defs.resolve_job_def("retrain_job").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey("raw_movielens")]
    )
    assert reingest.success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
    requested = {
        key
        for key in (*ASSET_NAMES.values(), VERSIONED_ASSET, CHAMPION_ASSET)
        if after.get_num_requested(dg.AssetKey(key))
    }
    # the whole chain below the raw data, in one tick; raw data is only ingested on purpose
    unprompted = {"movielens_source", "raw_movielens"}
    assert requested == set(ASSET_NAMES.values()) - unprompted | {VERSIONED_ASSET, CHAMPION_ASSET}


@pytest.mark.slow
def test_a_tick_after_the_retrain_skips_and_says_why(retrain: Retrain, tmp_path: Path) -> None:
    """The retrain promoted its model; nothing changed since: the next tick trains nothing."""
    assert retrain.result.success
    schedule = retrain.defs.resolve_schedule_def("retrain_schedule")
    storage = StorageResource(
        root=str(retrain.project),
        data_dir=str(retrain.project / "data"),
        mirror=os.environ["MOVIELENS_MIRROR"],
    )
    params = ParamsResource(path=str(retrain.project / "params.yaml"))
    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    with dg.build_schedule_context(
        instance=instance, resources={"params": params, "storage": storage}
    ) as context:
        data = schedule.evaluate_tick(context)
    assert not data.run_requests
    champion = json.loads((retrain.project / "reports/champion.json").read_text())
    assert f"equal those of champion {champion['id']}" in (data.skip_message or "")
