"""What retraining buys: at cutoffs T_1 < … < T_N over the late part of the timeline, a model
retrained as of T_i is tested on [T_i, T_i+1); the model trained at T_1 ("frozen") and the
no-model baseline are scored on the same events. Answers how much retraining is worth, and how
often, before anyone switches a schedule on.

Each cutoff is an ordinary pipeline run with `data.as_of = T_i`, in its own folder under
`data/backtest/`, reused when it is complete and its lineage unchanged. Window events take their
features from one full-timeline run: under the temporal protocol features are point-in-time, so
an event's features are what serving would have computed at its own time.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from inttower.config import Params, format_instant
from inttower.errors import InttowerError
from inttower.evaluation.metrics import auc, finite_or_none
from inttower.io import read_json, read_parquet, write_json
from inttower.lifecycle.champion import bundle_sources, lineage, score_events
from inttower.pipeline.catalog import BACKTEST, BACKTEST_CHART, BACKTEST_WORK
from inttower.pipeline.paths import Paths
from inttower.pipeline.registry import STAGE_LIST, run_stage

log = logging.getLogger("inttower.lifecycle.backtest")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*")
DONE = "backtest_run.json"  # in each run folder: its lineage, written once the run completed


def parse_duration(text: str) -> int:
    """`7d`, `1w`, `12h`: seconds."""
    match = _DURATION.fullmatch(text)
    if not match or int(match.group(1)) == 0:
        raise InttowerError(
            f"--every {text!r}: expected a positive duration such as 7d, 1w or 12h "
            "(units s, m, h, d, w)"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def weekly_cutoffs(first: int, last: int) -> list[int]:
    """The Mondays (00:00 UTC) with at least a week of history before them and events after:
    the weekly windows a backtest of this timeline can test on."""
    monday = dt.datetime.fromtimestamp(first + 7 * 86_400, dt.UTC).date()
    monday += dt.timedelta(days=(7 - monday.weekday()) % 7)
    start = int(dt.datetime.combine(monday, dt.time(), dt.UTC).timestamp())
    return list(range(start, last + 1, 7 * 86_400))


def cutoffs(first: int, last: int, windows: int, every: int) -> list[int]:
    """T_1 … T_N, `every` apart, the last window ending just after the last event."""
    if windows < 1:
        raise InttowerError(f"--windows {windows}: expected at least 1")
    end = last + 1
    cuts = [end - (windows - index) * every for index in range(windows)]
    if cuts[0] <= first:
        span = (end - first) / 86_400
        raise InttowerError(
            f"--windows {windows} --every {every // 86_400}d: the first cutoff "
            f"{_instant(cuts[0])} is before the data starts ({_instant(first)}); the timeline "
            f"spans {span:.0f} days: fewer or shorter windows"
        )
    return cuts


def _instant(seconds: int) -> str:
    return format_instant(dt.datetime.fromtimestamp(seconds, dt.UTC))


def _at(params: Params, as_of: str | None) -> Params:
    raw = params.model_dump(mode="json")
    raw["data"]["as_of"] = as_of
    return Params.model_validate(raw)


def _complete_run(params: Params, paths: Paths, stages: list[str], label: str) -> None:
    """Run `stages` into `paths` unless a completed run with the same lineage is there."""
    current = lineage(params, paths)
    marker = paths.data / DONE
    if marker.exists() and read_json(marker) == {"lineage": current, "stages": stages}:
        log.info("backtest: %s reused (%s)", label, paths.data)
        return
    marker.unlink(missing_ok=True)
    for stage in STAGE_LIST:
        if stage.name in stages:
            log.info("backtest: %s: stage %s", label, stage.name)
            run_stage(stage, params, paths, front_end="backtest")
    write_json({"lineage": current, "stages": stages}, marker)


def run_backtest(params: Params, paths: Paths, windows: int, every: str) -> dict[str, Any]:
    """N windows `every` apart, the last ending at the last event; see `backtest_at`."""
    seconds = parse_duration(every)
    full = _full_timeline(params, paths)
    stamps = read_parquet(full["features.events"])["timestamp"]
    cuts = cutoffs(int(stamps.min()), int(stamps.max()), windows, seconds)  # type: ignore[arg-type]
    return backtest_at(params, paths, cuts, seconds, every, full)


def _full_timeline(params: Params, paths: Paths) -> Paths:
    """Every event's point-in-time features, from one run over the whole timeline."""
    if params.split.leaky:
        raise InttowerError("split.protocol: the backtest needs `temporal` (point-in-time) splits")
    if params.data.as_of is not None:
        raise InttowerError("data.as_of: the backtest chooses its own cutoffs; set it to null")
    full = Paths.for_data(paths.data / BACKTEST_WORK / "full")
    featured = [stage.name for stage in STAGE_LIST][: _index("features") + 1]
    _complete_run(params, full, featured, "full timeline")
    return full


class _Timeline:
    """Every event with its point-in-time features, and the user and item tables."""

    def __init__(self, events: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame) -> None:
        self.events, self.users, self.items = events, users, items

    @classmethod
    def read(cls, full: Paths) -> _Timeline:
        return cls(
            *(read_parquet(full[f"features.{name}"]) for name in ("events", "users", "items"))
        )


def backtest_window(
    params: Params,
    paths: Paths,
    cut: int,
    frozen_cut: int,
    seconds: int,
    every: str,
    timeline: _Timeline | None = None,
    label: str = "window",
    frozen_files: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """One window [cut, cut + seconds): the model retrained as of `cut`, the one frozen as of
    `frozen_cut` and the no-model baseline, scored on the window's events. Each cutoff's run is
    reused when complete, so a Dagster backfill of single windows costs what the CLI's range does.
    `frozen_files`: the frozen model's bundle when the caller already completed its run."""
    timeline = timeline or _Timeline.read(_full_timeline(params, paths))
    everything = [stage.name for stage in STAGE_LIST]
    files = {} if frozen_files is None else {frozen_cut: frozen_files}
    for at in dict.fromkeys((frozen_cut, cut)):  # the frozen model first: it is reused most
        if at in files:
            continue
        as_of = _instant(at)
        run_paths = _run_paths(paths, at)
        _complete_run(_at(params, as_of), run_paths, everything, f"{label} as of {as_of}")
        files[at] = bundle_sources(run_paths)
    as_of = _instant(cut)
    events = timeline.events
    window = events.filter((pl.col("timestamp") >= cut) & (pl.col("timestamp") < cut + seconds))
    if window.is_empty():
        raise InttowerError(f"{label} [{as_of}, +{every}): no events to test on")
    train = read_parquet(_run_paths(paths, cut)["split.events"]).filter(pl.col("split") == "train")
    train_users = train["user_id"].unique()
    labels = window["label"].to_numpy().astype(np.float64)
    # the no-model baseline: the point-in-time user + item rate logits (AUC ignores the prior
    # the evaluation subtracts)
    rates = [
        window[name].to_numpy().astype(np.float64) for name in ("user_pos_rate", "item_pos_rate")
    ]
    logits = sum(np.log(r) - np.log1p(-r) for r in (np.clip(x, 1e-7, 1 - 1e-7) for x in rates))
    users, items = timeline.users, timeline.items
    row = {
        "as_of": as_of,
        "test_events": window.height,
        "retrained": _scores(score_events(files[cut], window, users, items, train_users)),
        "frozen": _scores(score_events(files[frozen_cut], window, users, items, train_users)),
        "baseline": {"auc": finite_or_none(auc(labels, logits))},
        "train_events": train.height,
    }
    log.info(
        "backtest %s as of %s (%d events): retrained AUC %.4f, frozen %.4f, baseline %.4f",
        label,
        as_of,
        window.height,
        row["retrained"]["auc"],
        row["frozen"]["auc"],
        row["baseline"]["auc"],
    )
    return row


def backtest_at(
    params: Params,
    paths: Paths,
    cuts: list[int],
    seconds: int,
    every: str,
    full: Paths | None = None,
) -> dict[str, Any]:
    """Windows [T_i, T_i + seconds), one after another: retrained as of T_i, frozen (as of T_1)
    and the baseline on each; writes reports/backtest.json and the chart. The Dagster backtest
    job runs `backtest_window` per partition: the same rows, one window a run."""
    full = full or _full_timeline(params, paths)
    timeline = _Timeline.read(full)
    rows: list[dict[str, Any]] = []
    frozen: dict[str, Path] | None = None
    for index, cut in enumerate(cuts, start=1):
        rows.append(
            backtest_window(
                params,
                paths,
                cut,
                cuts[0],
                seconds,
                every,
                timeline,
                f"window {index}/{len(cuts)}",
                frozen,
            )
        )
        frozen = frozen or bundle_sources(_run_paths(paths, cuts[0]))
    report = {
        "dataset": params.data.dataset,
        "model": params.model.name,
        "every": every,
        "every_seconds": seconds,
        "windows": rows,
        "mean": {
            "retrained_auc": float(np.mean([row["retrained"]["auc"] for row in rows])),
            "frozen_auc": float(np.mean([row["frozen"]["auc"] for row in rows])),
            "baseline_auc": float(np.mean([row["baseline"]["auc"] for row in rows])),
        },
    }
    write_json(report, paths.reports / BACKTEST)
    write_chart(report, paths.reports / BACKTEST_CHART)
    return report


def _run_paths(paths: Paths, cut: int) -> Paths:
    """The folder of the pipeline run as of `cut` (one per cutoff, reused when complete)."""
    as_of = _instant(cut)
    return Paths.for_data(paths.data / BACKTEST_WORK / f"as_of={as_of.replace(':', '')}")


def _index(name: str) -> int:
    return [stage.name for stage in STAGE_LIST].index(name)


def _scores(scores: dict[str, Any]) -> dict[str, Any]:
    return {"auc": scores["auc"], "logloss": scores["logloss"]}


def write_chart(report: dict[str, Any], target: Path) -> Path:
    """AUC over time: retrained, frozen and baseline, one point per window (stable bytes)."""
    from inttower.evaluation.plots import png_figure

    rows = report["windows"]
    dates = [row["as_of"][:10] for row in rows]
    with png_figure(target, size=(7, 4)) as axes:
        for key, label, style in (
            ("retrained", "retrained at each cutoff", "o-"),
            ("frozen", f"frozen (trained as of {dates[0]})", "s--"),
            ("baseline", "no model: user + item rate logits", "^:"),
        ):
            axes.plot(range(len(rows)), [row[key]["auc"] for row in rows], style, label=label)
        axes.set_xticks(range(len(rows)), dates)  # positions, not dates: no category guessing
        axes.set(
            xlabel="window start (as of)",
            ylabel="test AUC on the window",
            title=f"Backtest: {report['model']} on {report['dataset']}, every {report['every']}",
        )
        axes.legend(frameon=False)
        axes.tick_params(axis="x", labelrotation=30)
    return target
