"""One asset per registry stage: each calls `STAGES[name].run(params, paths)` and reports.

The asset graph is derived from `inttower.pipeline.registry` (names, edges, params, code), the same
registry that renders dvc.yaml, so the two front ends cannot drift apart.
"""

import hashlib
import time
from functools import cache
from typing import Any

import dagster as dg

from dagster_project.logs import forward_library_logs
from dagster_project.metadata import (
    data_version,
    four_decimals,
    hashes_metadata,
    stage_metadata,
)
from dagster_project.partitions import register_windows
from dagster_project.pipes import pipes_launcher
from dagster_project.resources import RunContext
from inttower.config import Params
from inttower.pipeline.registry import STAGE_LIST, STAGES, Stage, run_stage
from inttower.training.distributed import world_size
from inttower_dvc.hashes import output_hashes

# Assets are nouns: the artifact each stage leaves behind, named in the stage registry.
ASSET_NAMES: dict[str, str] = {stage.name: stage.noun for stage in STAGE_LIST}
OWNERS = ["team:inttower"]
# The raw files, an observable source asset (dagster_project/retraining.py): the first stage's dep.
SOURCE_FILES = "movielens_files"

# Follow upstream re-materializations, but never past a failed blocking check.
FOLLOW_UPSTREAM = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("follow upstream: after an upstream change, once its blocking checks passed")


def asset_key(stage_name: str) -> dg.AssetKey:
    """The asset key of a registry stage; a stage without a noun fails definitions loading."""
    if stage_name not in ASSET_NAMES:
        raise KeyError(f"stage {stage_name!r} has no asset name in dagster_project.assets")
    return dg.AssetKey(ASSET_NAMES[stage_name])


def stage_for(key: dg.AssetKey) -> str:
    """The registry stage behind an asset key (the inverse of `asset_key`)."""
    by_asset = {name: stage for stage, name in ASSET_NAMES.items()}
    return by_asset[key.to_user_string()]


def lineage_code_versions(params: Params) -> dict[str, str]:
    """Each stage's code version chained with its upstream ones: Dagster marks only an asset whose
    *own* version changed as stale, so chaining makes a params edit mark everything downstream."""

    @cache
    def chained(name: str) -> str:
        digest = hashlib.sha256(STAGES[name].code_version(params).encode())
        for upstream in STAGES[name].upstream:
            digest.update(chained(upstream).encode())
        return digest.hexdigest()[:16]

    return {stage.name: chained(stage.name) for stage in STAGE_LIST}


def build_stage_asset(stage: Stage, code_version: str) -> dg.AssetsDefinition:
    """An asset for one stage, versioned by its code, its params and everything upstream."""

    @dg.asset(
        key=asset_key(stage.name),
        deps=[asset_key(name) for name in stage.upstream] or [dg.AssetKey(SOURCE_FILES)],
        description=stage.description,
        group_name=stage.group,
        kinds=set(stage.kinds),
        owners=OWNERS,
        code_version=code_version,
        automation_condition=FOLLOW_UPSTREAM if stage.upstream else None,
        tags={"dvc_stage": stage.name},
        metadata={
            "dvc_stage": stage.name,
            "command": f"inttower {stage.name}",
            "params_keys": list(stage.params),
            "code": list(stage.code),
        },
    )
    def _stage_asset(
        context: dg.AssetExecutionContext, run: dg.ResourceParam[RunContext]
    ) -> dg.MaterializeResult:
        paths = run.paths
        context.log.info(
            "stage %s: data %s, reports %s, params snapshot %s, overrides %s",
            stage.name,
            paths.data.resolve(),
            paths.reports.resolve(),
            run.snapshot_id,
            run.overrides or "none",
        )
        started = time.perf_counter()
        options: dict[str, Any] = {}
        reported: dict[str, Any] = {}
        if stage.name == "train" and world_size(run.params) > 1:  # torchrun, through Pipes
            options["launcher"], reported = pipes_launcher(context)
        with forward_library_logs(context.log), run.storage.mirror_env():
            summary = run_stage(stage, run.params, paths, front_end="dagster", **options)
        seconds = time.perf_counter() - started
        if stage.name == "ingest":  # the backtest's partitions are the ingested weeks
            windows = register_windows(context.instance, paths)
            context.log.info("backtest partitions: %d weeks registered", len(windows))
        hashes = output_hashes(stage, paths)
        metadata: dict[str, Any] = {
            **reported,
            **stage_metadata(stage, summary, paths),
            **hashes_metadata(hashes),
            "params": dg.MetadataValue.json(
                {key: _plain(run.params.section(key)) for key in stage.params}
            ),
            **run.metadata(),
            "stage_code_version": stage.code_version(run.params),
            # differs from the definition's code_version when an override touches this lineage
            "effective_code_version": lineage_code_versions(run.params)[stage.name],
            "data_dir": str(paths.data),
            "seconds": round(seconds, 3),
        }
        return dg.MaterializeResult(
            metadata=four_decimals(metadata), data_version=data_version(hashes)
        )

    return _stage_asset


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def pipeline_definitions(params: Params) -> dg.Definitions:
    """Every registry stage as an asset, in registry order."""
    versions = lineage_code_versions(params)
    return dg.Definitions(
        assets=[build_stage_asset(stage, versions[stage.name]) for stage in STAGE_LIST]
    )
