"""A retrain is a decision: train only when something the model is made of changed, score the
challenger and the champion on the same fresh test window, promote only a model that passes
the blocking checks and is not worse, and leave every retrain as an experiment of the front
end's versioning (a DVC experiment from the CLI and Dagster: `inttower_dvc`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from inttower.config import Params
from inttower.io import append_jsonl
from inttower.lifecycle.champion import decide, lineage, now, why_nothing_to_do
from inttower.pipeline.paths import Paths
from inttower.pipeline.registry import STAGE_LIST, run_stage

log = logging.getLogger("inttower.lifecycle.retrain")


def plan(params: Params, paths: Paths, force: bool = False) -> tuple[dict[str, str], str | None]:
    """The lineage a retrain would build, and why to skip it (None: retrain)."""
    current = lineage(params, paths)
    return current, None if force else why_nothing_to_do(params, paths, current)


def record_skip(paths: Paths, front_end: str, current: dict[str, str], reason: str) -> dict:
    """A skipped retrain, as the run log keeps it: visible, never a fake success."""
    skipped = {"decision": "skipped", "reason": reason, "decided_at": now(), "lineage": current}
    append_jsonl({"stage": "retrain", "front_end": front_end, **skipped}, paths.run_log)
    return skipped


class Versioning(Protocol):
    """Where a retrain is kept, supplied by the front end (`inttower_dvc.DvcVersioning` for a DVC
    project): the library decides what to keep and never runs a versioning tool itself."""

    def why_not(self, paths: Paths) -> str | None:
        """Why a retrain into `paths` cannot be kept as an experiment; None when it can."""
        ...

    def experiment_name(self, started: datetime) -> str: ...

    def save(self, experiment: str, paths: Paths) -> dict[str, Any]:
        """Keep the workspace (data, dvc.lock, reports) as `experiment`; what was kept where."""
        ...


def retrain(
    params: Params,
    paths: Paths,
    *,
    versioning: Versioning,
    front_end: str = "cli",
    force: bool = False,
) -> dict[str, Any]:
    """Skip, or run every stage, decide, and save the experiment; the caller holds the lock."""
    started = datetime.now(UTC)
    current, reason = plan(params, paths, force)
    if reason:
        log.info("retrain skipped: %s", reason)
        return record_skip(paths, front_end, current, reason)
    for stage in STAGE_LIST:
        log.info("retrain: stage %s", stage.name)
        run_stage(stage, params, paths, front_end=front_end)
    not_versioned = versioning.why_not(paths)
    experiment = None if not_versioned else versioning.experiment_name(started)
    decision = decide(params, paths, current, experiment)
    kept = {"skipped": not_versioned} if experiment is None else versioning.save(experiment, paths)
    decision = replace(decision, versioning=kept)
    append_jsonl(
        {
            "stage": "retrain",
            "front_end": front_end,
            "decision": decision.decision,
            "reason": decision.reason,
            "decided_at": decision.decided_at,
            "versioning": decision.versioning,
        },
        paths.run_log,
    )
    log.info("retrain: %s (%s)", decision.decision, decision.reason)
    return decision.to_json()
