"""Materialization metadata: what a user looks for on each asset, read from the stage's outputs.

Only reporting lives here: every number comes from a stage summary or a file the stage wrote.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from inttower.data.schema import ValidationSummary
from inttower.evaluation.report import EvaluateSummary
from inttower.io import read_json
from inttower.pipeline.catalog import TABLES
from inttower.pipeline.paths import Paths
from inttower.pipeline.registry import Stage, StageSummary
from inttower.pipeline.stages.encode import EncodeSummary
from inttower.pipeline.stages.encoders import EncodersSummary
from inttower.pipeline.stages.features import FeaturesSummary
from inttower.pipeline.stages.ingest import IngestSummary
from inttower.pipeline.stages.split import SplitSummary
from inttower.serving.export import ExportSummary
from inttower.training.card import TrainSummary

PREVIEW_ROWS = 5
DIGITS = 4  # headline numbers: 0.8283, not 0.8282775093510584


def data_version(hashes: Mapping[str, str | None]) -> dg.DataVersion:
    """One version for the asset: changes exactly when an output's bytes do, so a re-run that
    rewrites identical files leaves downstream assets fresh."""
    blob = json.dumps(dict(sorted(hashes.items()))).encode()
    return dg.DataVersion(hashlib.sha256(blob).hexdigest()[:16])


# --- formatting ------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return str(_four(value))
    text = str(value)
    if isinstance(value, list | tuple) and len(text) > 40:
        text = text[:37] + "…"
    return text.replace("|", "\\|").replace("\n", " ")


def four_decimals(value: Any) -> Any:
    """Every float in a metadata mapping (JSON values and nested lists included) to DIGITS
    decimals: the UI shows 0.8263, never 0.8263186595280587. Applied to every result we report."""
    if isinstance(value, dg.JsonMetadataValue):  # before tuple: metadata values are records
        return dg.MetadataValue.json(four_decimals(value.data))
    if isinstance(value, dg.FloatMetadataValue) and value.value is not None:
        return dg.MetadataValue.float(_four(value.value))
    if isinstance(value, dg.MetadataValue):
        return value
    if isinstance(value, float):
        return _four(value)
    if isinstance(value, Mapping):
        return {key: four_decimals(item) for key, item in value.items()}
    if type(value) in (list, tuple):  # not records (TableSchema …), which are tuples too
        return [four_decimals(item) for item in value]
    return value


def _four(value: float) -> float:
    """Four decimals; a value too small for them (a weight decay of 1e-6) keeps four digits."""
    if value != 0 and abs(value) < 10**-DIGITS:
        return float(f"{value:.{DIGITS}g}")
    return round(value, DIGITS)


def headline(value: Any) -> Any:
    """A number as the UI shows it at a glance: floats to DIGITS decimals, the rest unchanged."""
    return round(float(value), DIGITS) if isinstance(value, float) else value


def png_md(path: Path, title: str) -> dg.MetadataValue:
    """A PNG the stage wrote, inline in the asset's metadata (a markdown data-URI image)."""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def md_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A markdown table the Dagster UI renders; columns default to the first row's keys."""
    if not rows:
        return "_(no rows)_"
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(name)) for name in columns) + " |" for row in rows]
    return "\n".join(lines)


def frame_md(frame: pl.DataFrame) -> dg.MetadataValue:
    """A small frame (a preview, a curve) as a markdown table."""
    return dg.MetadataValue.md(md_table(frame.to_dicts(), frame.columns))


def column_schema(path: Path) -> dg.TableSchema:
    """A parquet file's columns as Dagster's table schema (shown in the asset's Columns tab)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=name, type=str(dtype))
            for name, dtype in pl.read_parquet_schema(path).items()
        ]
    )


def _rows(path: Path) -> int:
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())


def iso_time(seconds: int | float | None) -> str | None:
    """Unix seconds as UTC ISO time: what a reader compares split boundaries with."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(int(seconds), tz=UTC).isoformat(timespec="seconds")


def _tables_metadata(layer: str, paths: Paths) -> dict[str, Any]:
    """Row counts, schema and a preview of the three canonical tables in one layer."""
    metadata: dict[str, Any] = {}
    schema_rows = []
    for name in TABLES:
        path = paths.table(layer, name)
        metadata[f"rows/{name}"] = _rows(path)
        metadata[f"preview/{name}"] = frame_md(pl.read_parquet(path, n_rows=PREVIEW_ROWS))
        schema_rows += [
            {"table": name, "column": column, "dtype": str(dtype)}
            for column, dtype in pl.read_parquet_schema(path).items()
        ]
    interactions = paths.table(layer, "interactions")
    metadata["dagster/row_count"] = metadata["rows/interactions"]
    metadata["dagster/column_schema"] = column_schema(interactions)
    metadata["schema"] = dg.MetadataValue.md(md_table(schema_rows))
    return metadata


# --- per stage ------------------------------------------------------------------------------


def _ingest(summary: IngestSummary, paths: Paths) -> dict[str, Any]:
    sources = read_json(paths["ingested.sources"])
    return {
        "dataset": summary.dataset,
        "sources": dg.MetadataValue.json(sources),
        **_tables_metadata("ingested", paths),
    }


def _validate(summary: ValidationSummary, paths: Paths) -> dict[str, Any]:
    ratings = (
        pl.read_parquet(paths["validated.interactions"], columns=["rating"])
        .group_by("rating")
        .agg(events=pl.len())
        .sort("rating")
        .with_columns(share=pl.col("events") / pl.col("events").sum())
    )
    return {
        "validation": dg.MetadataValue.json(summary.to_json()),
        "rating_distribution": frame_md(ratings),
        **_tables_metadata("validated", paths),
    }


def _split(summary: SplitSummary, paths: Paths) -> dict[str, Any]:
    rows = [
        {
            "split": name,
            "events": block.events,
            "positive_rate": block.positive_rate,
            "users": block.users,
            "items": block.items,
            "first_event": iso_time(block.first_timestamp),
            "last_event": iso_time(block.last_timestamp),
        }
        for name, block in summary.splits.items()
    ]
    events = paths["split.events"]
    return {
        "protocol": summary.protocol,
        "leaky": summary.leaky,
        "splits": dg.MetadataValue.md(md_table(rows)),
        **{f"label_balance/{row['split']}": headline(float(row["positive_rate"])) for row in rows},
        "dagster/row_count": _rows(events),
        "dagster/column_schema": column_schema(events),
        "preview": frame_md(pl.read_parquet(events, n_rows=PREVIEW_ROWS)),
    }


def _features(summary: FeaturesSummary, paths: Paths) -> dict[str, Any]:
    by_split = summary.by_split
    order = [name for name in ("train", "valid", "test") if name in by_split]
    statistics = sorted({key for block in by_split.values() for key in block})
    rows = [
        {"statistic": key, **{name: by_split[name].get(key) for name in order}}
        for key in statistics
    ]
    events = paths["features.events"]
    preview = pl.read_parquet(events, n_rows=PREVIEW_ROWS).drop("history", strict=False)
    return {
        "priors": dg.MetadataValue.json(summary.priors),
        "feature_statistics": dg.MetadataValue.md(md_table(rows, ["statistic", *order])),
        "dagster/row_count": summary.events,
        "dagster/column_schema": column_schema(events),
        "preview": frame_md(preview),
    }


def _encoders(summary: EncodersSummary, paths: Paths) -> dict[str, Any]:
    sizes = summary.vocabulary_sizes
    return {
        "fitted_on": summary.fitted_on,
        "vocabulary_sizes": dg.MetadataValue.md(
            md_table([{"field": name, "size": size} for name, size in sizes.items()])
        ),
    }


def _encode(summary: EncodeSummary, paths: Paths) -> dict[str, Any]:
    rows = [
        {
            "split": name,
            "events": block.events,
            "cold_user_share": block.cold_user_share,
            **{f"unknown {field}": share for field, share in block.unknown_share.items()},
        }
        for name, block in summary.splits.items()
    ]
    return {
        "splits": dg.MetadataValue.md(md_table(rows)),
        "dagster/row_count": summary.events,
        **{
            f"unknown_item_share/{name}": headline(block.unknown_share.get("item_id", 0.0))
            for name, block in summary.splits.items()
        },
    }


def _train(summary: TrainSummary, paths: Paths) -> dict[str, Any]:
    card = read_json(paths["model.card"])
    history: list[dict[str, Any]] = read_json(paths["train.history"])
    return {
        "model": card["model"],
        "n_parameters": summary.n_parameters,
        "device": summary.device,
        "precision": summary.precision,
        "best_epoch": summary.best_epoch,
        "epochs_run": summary.epochs_run,
        "stopped_early": summary.stopped_early,
        "valid_auc": headline(summary.valid_auc),
        "valid_logloss": headline(summary.valid_logloss),
        "samples_per_second": round(summary.timing.samples_per_second),
        # the chart is on the evaluation asset (evaluate draws it from the model card)
        "training_curve": dg.MetadataValue.md(md_table(history)),
    }


def _evaluate(summary: EvaluateSummary, paths: Paths) -> dict[str, Any]:
    # the tables show every column the document holds (the MF beside each block, …)
    document = summary.metrics
    blocks = ("test", "valid", "test_cold", "test_warm")
    rows = [{"rows": name, **document[name]} for name in blocks if document.get(name)]
    baselines = [
        {"baseline": name, **block} for name, block in (document.get("baselines") or {}).items()
    ]
    test, uncalibrated, oracle = summary.test, summary.uncalibrated_test, summary.oracle
    return {
        "model": summary.model,
        "protocol": summary.protocol,
        "leaky": summary.leaky,
        "test_auc": headline(test.auc),
        "test_logloss": headline(test.logloss),
        "test_gauc": headline(test.gauc),
        "test_ece": headline(test.ece),
        "test_logloss_uncalibrated": headline(uncalibrated.logloss),
        "test_ece_uncalibrated": headline(uncalibrated.ece),
        # synthetic data only: the generator's own probabilities, the ceiling of any model
        **(
            {
                "oracle_test_auc": headline(oracle.auc),
                "oracle_test_logloss": headline(oracle.logloss),
            }
            if oracle is not None
            else {}
        ),
        "metrics": dg.MetadataValue.md(
            md_table(rows, ["rows", "auc", "logloss", "gauc", "ece", "n"])
        ),
        "baselines": dg.MetadataValue.md(md_table(baselines)),
        # the collaborative baseline and the ceiling, on warm and cold users apart
        "warm_cold": dg.MetadataValue.md(md_table(_warm_cold_rows(summary))),
        # what is served: full-catalogue top-K on test users, beside popularity and the MF
        **(
            {
                "ranking": dg.MetadataValue.md(
                    md_table([{"ranker": name, **block} for name, block in ranked.items()])
                ),
                "ranking_chart": png_md(paths["plots.ranking"], "NDCG@K on test users"),
                "model_ndcg_at_10": headline(ranked["model"].get("ndcg@10")),
                "popularity_ndcg_at_10": headline(ranked["popularity"].get("ndcg@10")),
            }
            if (ranked := summary.ranking)
            else {}
        ),
        "calibration_fit": dg.MetadataValue.json(document["calibration"]),
        "training_curve": png_md(paths["plots.training_curve"], "training curve"),
        "roc": png_md(paths["plots.roc"], "test ROC"),
        "reliability": png_md(paths["plots.reliability"], "test reliability"),
        "cold_warm": png_md(paths["plots.cold_warm"], "cold and warm users"),
    }


def _warm_cold_rows(summary: EvaluateSummary) -> list[dict[str, Any]]:
    document, rows = summary.metrics, []
    for users, block, oracle in (
        ("warm", "test_warm", "oracle_warm"),
        ("cold", "test_cold", "oracle_cold"),
    ):
        scores = document.get(block) or {}
        rows.append(
            {
                "users": users,
                "n": scores.get("n"),
                "model_auc": scores.get("auc"),
                "ids_mf_auc": scores.get("ids_mf", {}).get("auc"),
                "oracle_auc": (document.get(oracle) or {}).get("auc"),
            }
        )
    return rows


def _export(summary: ExportSummary, paths: Paths) -> dict[str, Any]:
    manifest = read_json(paths["serving.manifest"])
    sizes = [{"file": name, "MiB": round(size / 2**20, 2)} for name, size in summary.bytes.items()]
    return {
        "bundle_id": summary.bundle_id,
        "model_id": summary.model_id,
        "users": summary.n_users,
        "items": summary.n_items,
        "features_as_of": summary.features_as_of,
        "test_auc": headline(manifest["evaluation"]["test"]["auc"]),
        "files": dg.MetadataValue.md(md_table(sizes)),
        "score": dg.MetadataValue.md(
            f"`inttower score --data-dir {paths.data} --user-id USER --k 10`"
        ),
    }


# each builder takes its own stage's summary (the registry pairs them by name)
_BY_STAGE: dict[str, Callable[[Any, Paths], dict[str, Any]]] = {
    "ingest": _ingest,
    "validate": _validate,
    "split": _split,
    "features": _features,
    "encoders": _encoders,
    "encode": _encode,
    "train": _train,
    "evaluate": _evaluate,
    "export": _export,
}


def stage_metadata(stage: Stage, summary: StageSummary, paths: Paths) -> dict[str, Any]:
    """The stage's own facts (or its raw summary for a stage without a builder)."""
    builder = _BY_STAGE.get(stage.name)
    if builder is None:
        return {"summary": dg.MetadataValue.json(summary.to_json())}
    return builder(summary, paths)


def hashes_metadata(hashes: Mapping[str, str | None]) -> dict[str, Any]:
    """Output hashes, keyed by their dvc.yaml path: what dvc.lock records for the same bytes."""
    return {"dvc_md5": dg.MetadataValue.json(dict(hashes))}
