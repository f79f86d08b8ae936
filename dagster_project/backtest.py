"""The backtest in Dagster: an asset partitioned by the dataset's own weeks, filled by a job.

Its partitions are dynamic: each ingest registers the Mondays of the ingested timeline (with a
week of history before each), so a backfill offers the ~30 weeks of ml-100k, not every week
since 1995. The asset is reported by `backtest_job`, one window per run, rather than
materialized from the asset graph: "Materialize all" and `dg launch --assets '*'` then run the
pipeline and never ask for partitions, while the backtest keeps its lineage, its partition
status and its backfills (from the job's Partitions tab).
"""

from datetime import UTC, datetime

import dagster as dg

from dagster_project.assets import OWNERS, SOURCE_FILES, asset_key
from dagster_project.logs import forward_library_logs
from dagster_project.metadata import four_decimals, md_table
from dagster_project.partitions import BACKTEST_WINDOWS
from dagster_project.resources import RunContext
from inttower.lifecycle.backtest import backtest_window

BACKTEST = dg.AssetKey("backtest")
WEEK = 7 * 86_400
BACKFILL_TAG = "dagster/backfill"

backtest_asset = dg.AssetSpec(
    key=BACKTEST,
    partitions_def=BACKTEST_WINDOWS,
    # what it reads: the raw files (each cutoff is its own pipeline run, from ingest on) and the
    # ingested timeline, whose weeks are its partitions
    deps=[dg.AssetKey(SOURCE_FILES), asset_key("ingest")],
    description="What retraining buys, week by week: for each partition (a Monday T, 00:00 UTC, "
    "registered by the last ingest), a model retrained as of T, the model frozen as of the "
    "backfill's first week and the no-model baseline, tested on [T, T + 7d). Filled by "
    "backtest_job (one week a run; a backfill from its Partitions tab); `inttower backtest` is "
    "the same computation from the CLI",
    group_name="evaluation",
    kinds={"python"},
    owners=OWNERS,
)


def _cut(key: str) -> int:
    return int(datetime.fromisoformat(key).replace(tzinfo=UTC).timestamp())


def _frozen_key(context: dg.OpExecutionContext, key: str) -> str:
    """The backfill's first week (the CLI's T_1), or the run's own week outside a backfill."""
    backfill_id = context.run.tags.get(BACKFILL_TAG)
    backfill = context.instance.get_backfill(backfill_id) if backfill_id else None
    names = getattr(backfill, "partition_names", None) or [key]
    return min(names)


@dg.op(
    description="One backtest window (the run's partition): retrained, frozen and baseline AUC",
)
def backtest_week(context: dg.OpExecutionContext, run: dg.ResourceParam[RunContext]) -> None:
    key = context.partition_key
    frozen = _frozen_key(context, key)
    with forward_library_logs(context.log), run.storage.mirror_env():
        row = backtest_window(
            run.params, run.paths, _cut(key), _cut(frozen), WEEK, "7d", label=f"week {key}"
        )
    scores = {
        "retrained": row["retrained"],
        "frozen": row["frozen"],
        "baseline": row["baseline"],
    }
    context.log_event(
        dg.AssetMaterialization(
            asset_key=BACKTEST,
            partition=key,
            metadata=four_decimals(
                {
                    "as_of": row["as_of"],
                    "frozen_as_of": f"{frozen}T00:00:00Z",
                    "test_events": row["test_events"],
                    "train_events": row["train_events"],
                    "retrained_auc": row["retrained"]["auc"],
                    "retrained_logloss": row["retrained"]["logloss"],
                    "frozen_auc": row["frozen"]["auc"],
                    "frozen_logloss": row["frozen"]["logloss"],
                    "baseline_auc": row["baseline"]["auc"],
                    "scores": dg.MetadataValue.md(
                        md_table([{"model": name, **values} for name, values in scores.items()])
                    ),
                    **run.metadata(),
                }
            ),
        )
    )


@dg.job(
    name="backtest_job",
    partitions_def=BACKTEST_WINDOWS,
    description="Fills the backtest asset, one week a run: launch one week from the launchpad, "
    "or a range as a backfill from the Partitions tab (its first week is the frozen model's)",
    tags={"inttower/kind": "backtest"},
)
def backtest_job() -> None:
    backtest_week()


def backtest_definitions() -> dg.Definitions:
    """The backtest asset (reported, not materialized from the graph) and the job that fills it."""
    return dg.Definitions(assets=[backtest_asset], jobs=[backtest_job])
