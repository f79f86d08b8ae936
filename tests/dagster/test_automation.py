"""The retrain schedule comes from params.yaml and asks for retrain_job; the job covers every
asset and its checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.assets import ASSET_NAMES
from dagster_project.definitions import build_definitions
from dagster_project.versioning import VERSIONED_ASSET

from .conftest import Retrain
from .helpers import write_params


def test_schedule_reads_cron_and_timezone_from_params_and_requests_retrain_job(
    tmp_path: Path,
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
    tick = datetime(2026, 1, 6, 3, 30, tzinfo=UTC)  # Tuesday 04:30 in Paris
    data = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    (request,) = data.run_requests or []
    assert isinstance(request, dg.RunRequest)
    assert request.job_name in (None, "retrain_job")  # None: the schedule's own job


def test_retrain_job_covers_every_asset_and_check() -> None:
    job = build_definitions().resolve_job_def("retrain_job")
    keys = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert keys == {*ASSET_NAMES.values(), VERSIONED_ASSET}
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
        for key in (*ASSET_NAMES.values(), VERSIONED_ASSET)
        if after.get_num_requested(dg.AssetKey(key))
    }
    # the whole chain below the raw data, in one tick; raw data is only ingested on purpose
    unprompted = {"movielens_source", "raw_movielens"}
    assert requested == set(ASSET_NAMES.values()) - unprompted | {VERSIONED_ASSET}
