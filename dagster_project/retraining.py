"""Retraining as a decision, in Dagster: the raw files as an observable source asset, a schedule
that retrains only when something changed (a visible skip otherwise), and the champion asset
that decides whether the run's model replaces the one in use. The decision itself lives in
inttower (`inttower.lifecycle.champion`), shared with `inttower retrain`."""

import hashlib
import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_project.assets import (
    FOLLOW_UPSTREAM,
    OWNERS,
    SOURCE_FILES,
    asset_key,
    lineage_code_versions,
)
from dagster_project.logs import forward_library_logs
from dagster_project.metadata import four_decimals, md_table
from dagster_project.resources import ParamsResource, RunContext, StorageResource
from inttower.config import Params, load_params
from inttower.lifecycle.champion import decide, lineage
from inttower.lifecycle.retrain import plan, record_skip
from inttower.pipeline.registry import STAGE_LIST, hash_sources
from inttower_dvc.commands import experiment_name, why_no_experiment, why_not_versionable

CHAMPION_ASSET = "model_champion"
# what the decision runs beside the stages: a change to it makes the champion asset stale
DECISION_CODE = (
    "inttower/lifecycle/champion.py",
    "inttower/lifecycle/promotion.py",
    "dagster_project/retraining.py",
)
# Dagster's own tag for an observation's data version (dagster._core.definitions.data_version)
DATA_VERSION_TAG = "dagster/data_version"


with warnings.catch_warnings():  # beta in Dagster 1.13: the warning would greet every load
    warnings.simplefilter("ignore", dg.BetaWarning)

    @dg.observable_source_asset(
        key=SOURCE_FILES,
        group_name="ingestion",
        description="The raw MovieLens files (mirror, GroupLens archive or generator params); its "
        "data version is their fingerprint, observed on the retrain schedule's cadence",
        required_resource_keys={"params", "storage"},
        owners=OWNERS,
    )
    def movielens_files(context: dg.AssetExecutionContext) -> dg.ObserveResult:
        version, metadata = _observe(context.resources.params, context.resources.storage)
        return dg.ObserveResult(
            data_version=dg.DataVersion(version), metadata=four_decimals(metadata)
        )


def _observe(params: ParamsResource, storage: StorageResource) -> tuple[str, dict[str, Any]]:
    chosen = load_params(params.path)
    with storage.mirror_env():
        current = lineage(chosen, storage.paths())
    return current["data"], {
        "dataset": chosen.data.dataset,
        "lineage": dg.MetadataValue.json(current),
    }


def build_retrain_schedule(params: Params, job: Any) -> dg.ScheduleDefinition:
    """On each tick: observe the source, then retrain only if data, code or params changed
    since the champion (or the last rejected challenger); else a SkipReason that says why.
    Stopped by default: a retrain rewrites data/ and saves experiments."""

    @dg.schedule(
        name="retrain_schedule",
        job=job,
        cron_schedule=params.schedule.cron,
        execution_timezone=params.schedule.timezone,
        description=f"retrain_job at `{params.schedule.cron}` ({params.schedule.timezone}), "
        "from params.yaml `schedule`, only when something the model is made of changed",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        required_resource_keys={"params", "storage"},
    )
    def retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        chosen = load_params(context.resources.params.path)
        storage: StorageResource = context.resources.storage
        paths = storage.paths()
        with storage.mirror_env():
            current, reason = plan(chosen, paths)
        context.instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key=SOURCE_FILES,
                metadata={"lineage": dg.MetadataValue.json(current)},
                tags={DATA_VERSION_TAG: current["data"]},
            )
        )
        if reason:
            record_skip(paths, "dagster schedule", current, reason)
            return dg.SkipReason(f"nothing to retrain: {reason}")
        return dg.RunRequest(
            tags={
                "inttower/lineage_data": current["data"],
                "inttower/lineage_code": current["code"],
                "inttower/lineage_params": current["params"],
            }
        )

    return retrain_schedule


def experiment_for(run: RunContext) -> tuple[str | None, str | None]:
    """The experiment this run will be saved as, or None and why it will not be."""
    root = Path(run.storage.root)
    reason = why_not_versionable(root, run.paths.data, Path(run.source), {})
    if reason is None and run.overridden:
        reason = f"this run overrode params {list(run.changed_keys)}"
    reason = reason or why_no_experiment(root)
    return (None, reason) if reason else (experiment_name(run.started_at), None)


def build_champion_asset(params: Params) -> dg.AssetsDefinition:
    """The champion decision after the last stage; its code version follows the decision code,
    the checks and promotion params, and the whole stage lineage."""
    digest = hashlib.sha256(params.fingerprint(["checks", "promotion"]).encode())
    digest.update(lineage_code_versions(params)[STAGE_LIST[-1].name].encode())
    hash_sources(digest, DECISION_CODE)
    code_version = digest.hexdigest()[:16]

    @dg.asset(
        key=CHAMPION_ASSET,
        code_version=code_version,
        deps=[asset_key(STAGE_LIST[-1].name)],  # the serving bundle travels with the model
        description="Challenger vs champion on the same, freshest test window: the run's model is "
        "promoted only if it passed the blocking checks and is not worse than the champion by more "
        "than promotion.max_auc_drop / max_logloss_rise (/ max_ndcg_drop when set)",
        group_name="versioning",
        kinds={"python"},
        owners=OWNERS,
        automation_condition=FOLLOW_UPSTREAM,
    )
    def model_champion(
        context: dg.AssetExecutionContext, run: dg.ResourceParam[RunContext]
    ) -> dg.MaterializeResult:
        experiment, unversioned = experiment_for(run)
        with forward_library_logs(context.log), run.storage.mirror_env():
            current = lineage(run.params, run.paths)
            decision = decide(run.params, run.paths, current, experiment)
        context.log.info("champion decision: %s (%s)", decision.decision, decision.reason)
        challenger, champion = decision.challenger, decision.champion
        scores = [{"model": f"challenger {challenger.id}", **challenger.test}]
        if champion is not None:
            scores.append({"model": f"champion {champion['id']}", **champion["test"]})
        return dg.MaterializeResult(
            metadata=four_decimals(
                {
                    "decision": decision.decision,
                    "reason": decision.reason,
                    "challenger_id": challenger.id,
                    "challenger_test_auc": challenger.test["auc"],
                    "challenger_test_logloss": challenger.test["logloss"],
                    "champion_id": champion["id"] if champion else "none",
                    "champion_test_auc": champion["test"]["auc"] if champion else None,
                    "champion_test_logloss": champion["test"]["logloss"] if champion else None,
                    "scores_on_the_same_window": dg.MetadataValue.md(md_table(scores)),
                    "checks": dg.MetadataValue.md(md_table(challenger.checks)),
                    "experiment": experiment or f"none: {unversioned}",
                    "promotion_record": str(run.paths.promotion),
                    **run.metadata(),
                }
            )
        )

    return model_champion


def retraining_definitions(params: Params) -> dg.Definitions:
    """The observable source and the champion asset (the schedule is built with the job)."""
    return dg.Definitions(assets=[movielens_files, build_champion_asset(params)])
