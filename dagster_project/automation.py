"""The retrain job, its schedule (cron and timezone from params.yaml), and the sensor that lets
downstream assets follow a re-ingest (declarative automation)."""

from __future__ import annotations

import dagster as dg

from inttower.config import Params

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.all(),
    description="Every stage from ingest to evaluation with its checks, then DVC versioning.",
)


def retrain_schedule(params: Params) -> dg.ScheduleDefinition:
    """Stopped by default: a retrain rewrites data/ and dvc.lock, so a person switches it on."""
    return dg.ScheduleDefinition(
        name="retrain_schedule",
        job=retrain_job,
        cron_schedule=params.schedule.cron,
        execution_timezone=params.schedule.timezone,
        description=f"retrain_job at `{params.schedule.cron}` ({params.schedule.timezone}), "
        "from params.yaml `schedule`",
        default_status=dg.DefaultScheduleStatus.STOPPED,
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
        jobs=[retrain_job],
        schedules=[retrain_schedule(params)],
        sensors=[follow_upstream_sensor],
    )
