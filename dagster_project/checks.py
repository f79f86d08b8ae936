"""Asset checks, one property each. Blocking ones stop the chain: bad data never reaches training,
and a model below the quality gate is never versioned in DVC."""

from typing import Any

import dagster as dg
import polars as pl
from safetensors import safe_open

from dagster_project.assets import asset_key
from dagster_project.metadata import four_decimals, md_table
from dagster_project.resources import RunContext
from inttower.data.schema import validate_tables
from inttower.errors import ValidationFailed
from inttower.evaluation.report import EvaluateSummary
from inttower.features.encoders import UNKNOWN
from inttower.io import read_json, read_parquet
from inttower.lifecycle.promotion import describe_checks, quality_checks
from inttower.pipeline.stages.validate import load_ingested

SAMPLE_ROWS = 10


def _result(*, metadata: dict[str, Any], **fields: Any) -> dg.AssetCheckResult:
    """A check result whose floats read as the UI shows every number: four decimals."""
    return dg.AssetCheckResult(metadata=four_decimals(metadata), **fields)


@dg.asset_check(
    asset=asset_key("ingest"),
    name="schema_valid",
    blocking=True,
    description="pandera schemas and referential integrity hold on the ingested tables; "
    "failing rows are named by source file and line",
)
def schema_valid(run: dg.ResourceParam[RunContext]) -> dg.AssetCheckResult:
    try:
        with run.storage.mirror_env():  # failing rows are named where the mirror is
            summary = validate_tables(load_ingested(run.paths))
    except ValidationFailed as failed:
        return _result(
            passed=False,
            description=f"{failed.table} ({failed.source}) failed validation",
            metadata={
                "table": failed.table,
                "source": failed.source,
                "failure_count": int(sum(int(row["count"]) for row in failed.failures)),
                "failures": dg.MetadataValue.md(md_table(failed.failures)),
                "failing_rows": dg.MetadataValue.md(f"```\n{failed.sample}\n```"),
            },
        )
    return _result(
        passed=True,
        metadata={"failure_count": 0, "summary": dg.MetadataValue.json(summary.to_json())},
    )


@dg.asset_check(
    asset=asset_key("split"),
    name="split_is_chronological",
    blocking=True,
    description="no valid or test event is earlier than the last event of the split before it "
    "(temporal protocol); the paper's random split is reported as a warning, by choice",
)
def split_is_chronological(run: dg.ResourceParam[RunContext]) -> dg.AssetCheckResult:
    chosen = run.params
    events = read_parquet(run.paths["split.events"])
    ends = events.group_by("split").agg(last=pl.col("timestamp").max())
    last = dict(zip(ends["split"], ends["last"], strict=True))
    # an event is out of order when it is earlier than the last event of an earlier split
    limit = (
        pl.when(pl.col("split") == "valid")
        .then(pl.lit(last.get("train")))
        .when(pl.col("split") == "test")
        .then(pl.max_horizontal(pl.lit(last.get("train")), pl.lit(last.get("valid"))))
        .otherwise(None)
    )
    early = events.filter(pl.col("timestamp") < limit)
    ranges = (
        events.group_by("split")
        .agg(first=pl.col("timestamp").min(), last=pl.col("timestamp").max(), events=pl.len())
        .sort("first")
        .with_columns(
            pl.from_epoch(column, time_unit="s").dt.to_string("%Y-%m-%dT%H:%M:%SZ")
            for column in ("first", "last")
        )
    )
    metadata: dict[str, Any] = {
        "protocol": chosen.split.protocol,
        "events_out_of_order": early.height,
        "time_ranges": dg.MetadataValue.md(md_table(ranges.to_dicts())),
    }
    if early.height:
        metadata["out_of_order_sample"] = dg.MetadataValue.md(
            md_table(early.head(SAMPLE_ROWS).to_dicts())
        )
    if chosen.split.leaky:
        return _result(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="split.protocol is `paper`: a random split (LEAKY), chosen explicitly",
            metadata=metadata,
        )
    return _result(passed=early.height == 0, metadata=metadata)


@dg.asset_check(
    asset=asset_key("encode"),
    name="test_items_known",
    blocking=True,
    description="the share of test events whose item the train vocabulary does not know stays "
    "at most checks.max_unknown_item_share",
)
def test_items_known(run: dg.ResourceParam[RunContext]) -> dg.AssetCheckResult:
    limit = run.params.checks.max_unknown_item_share
    with safe_open(str(run.paths["encoded.test"]), framework="pt") as test:
        items = test.get_tensor("item_id")
        raw_items = test.get_tensor("item_raw")
        cold = test.get_tensor("cold_user")
    unknown = items == UNKNOWN
    share = float(unknown.float().mean()) if len(items) else 0.0
    counts = (
        pl.DataFrame({"item_id": raw_items[unknown].numpy()})
        .group_by("item_id")
        .agg(test_events=pl.len())
        .sort(["test_events", "item_id"], descending=[True, False])
    )
    return _result(
        passed=share <= limit,
        metadata={
            "unknown_item_share": share,
            "max_unknown_item_share": limit,
            "unknown_items": counts.height,
            "test_events": len(items),
            "cold_user_share": float(cold.float().mean()) if len(items) else 0.0,
            "most_frequent_unknown_items": dg.MetadataValue.md(
                md_table(counts.head(SAMPLE_ROWS).to_dicts())
            ),
        },
    )


@dg.asset_check(
    asset=asset_key("evaluate"),
    name="quality_gate",
    blocking=True,
    description="test AUC clears checks.min_test_auc and beats the evaluation's own baselines "
    "(point-in-time user + item rate logits, features-alone logistic regression, ids-only "
    "matrix factorisation) by their margins; a failing model is neither promoted nor versioned",
)
def quality_gate(run: dg.ResourceParam[RunContext]) -> dg.AssetCheckResult:
    chosen = run.params
    evaluation = EvaluateSummary.from_json(read_json(run.paths["metrics"]))
    results = quality_checks(evaluation, chosen.checks)
    return _result(
        passed=all(result["passed"] for result in results),
        description=f"{chosen.model.name}: {describe_checks(results)}",
        metadata={
            "model": chosen.model.name,
            "test_auc": evaluation.test.auc,
            "bars": dg.MetadataValue.md(md_table(results)),
            "failed": ", ".join(r["check"] for r in results if not r["passed"]) or "none",
            "no_model_baselines": dg.MetadataValue.json(evaluation.metrics.get("baselines") or {}),
        },
    )


def check_definitions() -> dg.Definitions:
    """Every asset check, one property each."""
    return dg.Definitions(
        asset_checks=[schema_valid, split_is_chronological, test_items_known, quality_gate]
    )
