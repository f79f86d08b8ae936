"""A retrain is a decision: train only when something the model is made of changed, score the
challenger and the champion on the same fresh test window, promote only a model that passes
the blocking checks and is not worse, and leave every retrain as a DVC experiment."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inttower.champion import decide, lineage, now, why_nothing_to_do
from inttower.config import Params
from inttower.dvc_cli import (
    experiment_name,
    save_experiment,
    why_no_experiment,
    why_not_versionable,
)
from inttower.io import append_jsonl
from inttower.paths import Paths
from inttower.pipeline import STAGE_LIST, run_stage

log = logging.getLogger("inttower.retrain")


def plan(params: Params, paths: Paths, force: bool = False) -> tuple[dict[str, str], str | None]:
    """The lineage a retrain would build, and why to skip it (None: retrain)."""
    current = lineage(params, paths)
    return current, None if force else why_nothing_to_do(params, paths, current)


def record_skip(paths: Paths, front_end: str, current: dict[str, str], reason: str) -> dict:
    """A skipped retrain, as the run log keeps it: visible, never a fake success."""
    skipped = {"decision": "skipped", "reason": reason, "decided_at": now(), "lineage": current}
    append_jsonl({"stage": "retrain", "front_end": front_end, **skipped}, paths.run_log)
    return skipped


def experiment_files(root: Path, paths: Paths) -> list[Path]:
    """What an experiment must carry even where git does not track it yet: dvc.lock and the
    reports (metrics for `dvc exp show`; the champion record, its history and the decision)."""
    return [root / "dvc.lock", paths.reports]


def retrain(
    params: Params,
    paths: Paths,
    *,
    root: Path,
    params_file: Path,
    overrides: dict[str, Any],
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
    not_versioned = why_not_versionable(root, paths.data, params_file, overrides) or (
        why_no_experiment(root)
    )
    experiment = None if not_versioned else experiment_name(started)
    decision = decide(params, paths, current, experiment)
    if experiment is None:
        decision["versioning"] = {"skipped": not_versioned}
    else:
        decision["versioning"] = save_experiment(root, experiment, experiment_files(root, paths))
    append_jsonl(
        {"stage": "retrain", "front_end": front_end,
         **{key: decision[key] for key in ("decision", "reason", "decided_at", "versioning")}},
        paths.run_log,
    )  # fmt: skip
    log.info("retrain: %s (%s)", decision["decision"], decision["reason"])
    return decision
