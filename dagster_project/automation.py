"""The retrain job, its schedule (cron and timezone from params.yaml), and the sensor that lets
downstream assets follow a re-ingest (declarative automation)."""

from __future__ import annotations

import dagster as dg

from dagster_project.assets import asset_key
from dagster_project.retraining import build_retrain_schedule
from inttower.config import Params
from inttower.pipeline.registry import STAGE_LIST

# The main job: what the README's `make run` launches and the Jobs page names. Materializing
# from the asset graph runs Dagster's implicit asset job instead (shown as __ASSET_JOB).
pipeline_job = dg.define_asset_job(
    "inttower_pipeline",
    selection=dg.AssetSelection.assets(*(asset_key(stage.name) for stage in STAGE_LIST)),
    description="Every stage from ingest to the serving bundle, with the blocking checks.",
)

retrain_job = dg.define_asset_job(
    "retrain_job",
    # every materializable asset: the backtest is reported by its own job, so it is not one
    selection=dg.AssetSelection.all(),
    description="Every stage from ingest to the serving bundle with its checks, the champion "
    "decision, then DVC versioning.",
)


# Stopped by default, as the schedule: switched on, a re-ingest of the raw data would retrain
# and version on its own; nothing retrains, commits or pushes until a person turns it on.
follow_upstream_sensor = dg.AutomationConditionSensorDefinition(
    "follow_upstream",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Re-materializes assets whose upstream changed (eager), never past a failed "
    "blocking check",
)


def automation_definitions(params: Params) -> dg.Definitions:
    """The job, its schedule and the automation sensor, as one group of definitions."""
    return dg.Definitions(
        jobs=[pipeline_job, retrain_job],
        schedules=[build_retrain_schedule(params, retrain_job)],
        sensors=[follow_upstream_sensor],
    )
