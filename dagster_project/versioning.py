"""Version a retrain with DVC: `dvc commit -f` records every stage's outputs in dvc.lock, then
`dvc exp save` keeps the workspace as an experiment named by the run's start, pushed when a git
or DVC remote is set. The dvc command lines themselves are in inttower_dvc.commands, shared with
`inttower retrain`."""

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_project.assets import FOLLOW_UPSTREAM, OWNERS, asset_key, lineage_code_versions
from dagster_project.metadata import four_decimals, md_table
from dagster_project.resources import RunContext
from dagster_project.retraining import CHAMPION_ASSET
from inttower.config import Params
from inttower.pipeline.registry import STAGE_LIST
from inttower_dvc.commands import (
    experiment_files,
    experiment_name,
    locked_hashes,
    save_experiment,
    why_not_versionable,
)

VERSIONED_ASSET = "dvc_versioned_artifacts"


def build_versioning_asset(params: Params) -> dg.AssetsDefinition:
    """The DVC step after the last stage; its code version follows this module and the whole
    stage lineage, so a params edit marks it stale together with the stages."""
    last = STAGE_LIST[-1].name
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(lineage_code_versions(params)[last].encode())

    @dg.asset(
        key=VERSIONED_ASSET,
        deps=[asset_key(last), dg.AssetKey(CHAMPION_ASSET)],
        description="dvc commit of every stage's outputs, then `dvc exp save` of the workspace "
        "(dvc.lock, reports, the champion record) as an experiment named by the run's start, "
        "pushed when a remote is set: each retrain a DVC experiment, the user's branch untouched",
        group_name="versioning",
        kinds={"dvc"},
        owners=OWNERS,
        code_version=digest.hexdigest()[:16],
        automation_condition=FOLLOW_UPSTREAM,
    )
    def dvc_versioned_artifacts(
        context: dg.AssetExecutionContext, run: dg.ResourceParam[RunContext]
    ) -> dg.MaterializeResult:
        return version_artifacts(context, run)

    return dvc_versioned_artifacts


def version_artifacts(context: dg.AssetExecutionContext, run: RunContext) -> dg.MaterializeResult:
    """`dvc commit --force` and `dvc exp save` (pushed when a remote is set). Refuses (a
    failed step) when dvc.lock would pair these outputs with params or code they were not built
    from: the run's params differ from the file, or the file or the code changed mid-run."""
    root = Path(run.storage.root)
    paths = run.paths
    reason = why_not_versionable(root, paths.data, Path(run.source), {})
    if reason:
        # not this project's DVC data folder: nothing could be recorded, nothing can lie
        context.log.warning("DVC versioning skipped: %s", reason)
        return dg.MaterializeResult(
            metadata=four_decimals({"status": "skipped", "reason": reason, **run.metadata()})
        )
    refusal = run.params_drift() or (
        f"this run overrode params {list(run.changed_keys)}; dvc.lock would not match them"
        if run.overridden
        else None
    )
    if refusal:
        raise dg.Failure(
            description=f"DVC versioning refused: {refusal}; nothing was committed",
            metadata=four_decimals({"status": "refused", "reason": refusal, **run.metadata()}),
        )
    experiment = experiment_name(run.started_at)  # the name the champion decision recorded
    context.log.info("dvc commit -f and dvc exp save %s in %s", experiment, root.resolve())
    saved = save_experiment(root, experiment, experiment_files(root, paths))
    hashes = locked_hashes(root)
    pushed = saved["git_remote"] or saved["dvc_remote"]
    if saved["experiment"] is None:
        context.log.warning("committed, no experiment: %s", saved["skipped"])
    metadata: dict[str, Any] = {
        "status": "pushed" if pushed else "saved",
        "experiment": saved["experiment"] or f"none: {saved['skipped']}",
        "git_remote": saved["git_remote"] or "none",
        "dvc_remote": saved["dvc_remote"] or "none",
        "dvc_lock": dg.MetadataValue.md(
            md_table([{"output": path, "md5": digest} for path, digest in hashes.items()])
        ),
        "dvc_lock_data": hashes,
        **run.metadata(),
        "show": "dvc exp show",
        "restore": f"inttower champion --restore {experiment}" if saved["experiment"] else "n/a",
    }
    return dg.MaterializeResult(metadata=four_decimals(metadata))


def versioning_definitions(params: Params) -> dg.Definitions:
    """The DVC versioning asset, kept apart from the stage assets it follows."""
    return dg.Definitions(assets=[build_versioning_asset(params)])
