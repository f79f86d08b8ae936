"""Version a retrain with DVC: `dvc commit -f` records every stage's outputs in dvc.lock, then
`dvc push` uploads them when a default remote is configured. DVC calls live here, not in inttower."""

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_project.assets import FOLLOW_UPSTREAM, OWNERS, asset_key, lineage_code_versions
from dagster_project.metadata import md_table
from dagster_project.resources import RunContext
from inttower.config import Params
from inttower.dvc_cli import default_remote, dvc, locked_hashes, why_not_versionable
from inttower.pipeline import STAGE_LIST

VERSIONED_ASSET = "dvc_versioned_artifacts"


def build_versioning_asset(params: Params) -> dg.AssetsDefinition:
    """The DVC step after the last stage; its code version follows this module and the whole
    stage lineage, so a params edit marks it stale together with the stages."""
    last = STAGE_LIST[-1].name
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(lineage_code_versions(params)[last].encode())

    @dg.asset(
        key=VERSIONED_ASSET,
        deps=[asset_key(last)],
        description="dvc commit of every stage's outputs (and dvc push when a remote is set), "
        "so each retrain leaves a DVC-versioned model and metrics",
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
    """`dvc commit --force`, then `dvc push` to the default remote if one is set. Refuses (a
    failed step) when dvc.lock would pair these outputs with params or code they were not built
    from: the run's params differ from the file, or the file or the code changed mid-run."""
    root = Path(run.storage.root)
    paths = run.paths
    reason = why_not_versionable(root, paths.data, Path(run.source), {})
    if reason:
        # not this project's DVC data folder: nothing could be recorded, nothing can lie
        context.log.warning("DVC versioning skipped: %s", reason)
        return dg.MaterializeResult(
            metadata={"status": "skipped", "reason": reason, **run.metadata()}
        )
    refusal = run.params_drift() or (
        f"this run overrode params {list(run.changed_keys)}; dvc.lock would not match them"
        if run.overridden
        else None
    )
    if refusal:
        raise dg.Failure(
            description=f"DVC versioning refused: {refusal}; nothing was committed",
            metadata={"status": "refused", "reason": refusal, **run.metadata()},
        )
    context.log.info("dvc commit -f in %s", root.resolve())
    dvc(root, "commit", "--force")
    hashes = locked_hashes(root)
    remote = default_remote(root)
    if remote:
        context.log.info("dvc push to remote %s", remote)
        dvc(root, "push")
    else:
        context.log.info("no default DVC remote: committed to the local cache only")
    metadata: dict[str, Any] = {
        "status": "pushed" if remote else "committed",
        "remote": remote or "none",
        "dvc_lock": dg.MetadataValue.md(
            md_table([{"output": path, "md5": digest} for path, digest in hashes.items()])
        ),
        "dvc_lock_data": hashes,
        **run.metadata(),
        # dvc.lock and the cache-less reports are what a clone needs from git to `dvc pull`
        "share_with_git": "git add dvc.lock reports/ && git commit -m 'retrain'",
    }
    return dg.MaterializeResult(metadata=metadata)


def versioning_definitions(params: Params) -> dg.Definitions:
    """The DVC versioning asset, kept apart from the stage assets it follows."""
    return dg.Definitions(assets=[build_versioning_asset(params)])
