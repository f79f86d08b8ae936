"""Stage functions: read a stage's inputs, call the pure library functions, write its outputs.

Each takes (Params, Paths) and returns a JSON-able summary that the CLI prints and Dagster
shows as materialization metadata. Outputs are written atomically and only after every check
passed, so a failed stage leaves what earlier runs produced untouched.

Library modules are imported inside each function: a stage's code dependencies are the import
closure of its function (inttower/pipeline/code_deps.py), so module-level imports here would make every
stage depend on every other stage's code.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import polars as pl

from inttower.config import FeatureParams, Params, SplitParams
from inttower.errors import InttowerError, StageInputError
from inttower.io import read_json, read_parquet, write_json, write_parquet
from inttower.pipeline.catalog import SPLITS, TABLES
from inttower.pipeline.paths import Paths, mirror_dir

if TYPE_CHECKING:
    from inttower.data.tables import RawTables

log = logging.getLogger("inttower.pipeline.stages")


def source(params: Params, paths: Paths) -> dict[str, Any]:
    """Fingerprint what ingest would read: rewritten byte for byte when nothing changed, so DVC
    (which runs this stage every time) reruns ingest only when the source did change."""
    from inttower.data.fingerprint import source_fingerprint

    fingerprint = source_fingerprint(params, mirror_dir(), paths.downloads)
    target = paths["source.fingerprint"]
    try:
        unchanged = read_json(target) == fingerprint
    except InttowerError:  # missing, or torn by a killed run: write it afresh
        unchanged = False
    if not unchanged:
        write_json(fingerprint, target)  # untouched when equal: mtime too stays as it was
    return fingerprint


def ingest(params: Params, paths: Paths) -> dict[str, Any]:
    """Fetch (mirror or GroupLens) and parse the dataset into the canonical tables; refuses when
    the source changed since `source` fingerprinted it, so ingest never outruns its lineage."""
    from inttower.data.as_of import before
    from inttower.data.fingerprint import source_fingerprint
    from inttower.data.sources import load_raw
    from inttower.data.synthetic import empty_oracle

    recorded = read_json(paths["source.fingerprint"])
    if source_fingerprint(params, mirror_dir(), paths.downloads) != recorded:
        raise StageInputError(
            f"{paths['source.fingerprint']}: the source changed since the `source` stage "
            "fingerprinted it (or params.data did); run `source` again"
        )
    loaded = load_raw(params, downloads_dir=paths.downloads, mirror=mirror_dir())
    tables = before(loaded, params.data.as_of, params.data.cutoff)
    for name in TABLES:
        write_parquet(tables.table(name), paths.table("ingested", name))
    sources = {name: ref.to_json() for name, ref in tables.sources.items()}
    record = {"dataset": params.data.dataset, "as_of": params.data.as_of, "sources": sources}
    write_json(record, paths["ingested.sources"])
    oracle = tables.oracle if tables.oracle is not None else empty_oracle()
    write_parquet(oracle, paths["ingested.oracle"])
    removed = tables.sources.get("interactions")
    rows = removed.removed if removed is not None and removed.removed is not None else []
    write_parquet(pl.DataFrame({"row": rows}, schema={"row": pl.Int64}), paths["ingested.removed"])
    return {
        "dataset": params.data.dataset,
        "as_of": params.data.as_of,
        **{f"{name}_rows": tables.table(name).height for name in TABLES},
        "removed_by_as_of": len(rows),
    }


def load_ingested(paths: Paths) -> RawTables:
    """The ingested tables with their provenance, so validation errors name source lines."""
    from inttower.data.tables import RawTables, SourceRef

    recorded = read_json(paths["ingested.sources"])["sources"]
    removed = read_parquet(paths["ingested.removed"])["row"].to_numpy()
    return RawTables(
        **{name: read_parquet(paths.table("ingested", name)) for name in TABLES},
        sources={
            name: SourceRef(**ref, removed=removed if name == "interactions" else None)
            for name, ref in recorded.items()
        },
    )


def validate(params: Params, paths: Paths) -> dict[str, Any]:
    """Check the canonical tables against their schemas; nothing downstream is written on failure."""
    from inttower.data.schema import validate_tables

    tables = load_ingested(paths)
    summary = validate_tables(tables)
    for name in TABLES:
        write_parquet(tables.table(name), paths.table("validated", name))
    write_json(summary, paths["validation"])
    return summary


def split(params: Params, paths: Paths) -> dict[str, Any]:
    """Label events and split them by time (or by the paper's leaky random split)."""
    from inttower.data.split import label_events, split_events, split_summary

    interactions = read_parquet(paths["validated.interactions"])
    events = split_events(label_events(interactions, params.label), params.split, params.seed)
    write_parquet(events, paths["split.events"])
    summary = {
        "as_of": params.data.as_of,
        "protocol": params.split.protocol,
        "leaky": params.split.leaky,
        "splits": split_summary(events),
    }
    write_json(summary, paths["split.summary"])
    return summary


def compute_features(
    feature_params: FeatureParams, split_params: SplitParams, paths: Paths
) -> tuple[pl.DataFrame, dict[str, float], pl.DataFrame, pl.DataFrame]:
    """(events, priors, users, items) from the split events and validated tables: the features
    stage's computation, also used to score a champion built with other feature params."""
    from inttower.features.point_in_time import event_features, item_attributes, user_attributes

    validated_items = read_parquet(paths["validated.items"])
    events, priors = event_features(
        read_parquet(paths["split.events"]),
        feature_params,
        split_params,
        validated_items if feature_params.genre_profile else None,
    )
    users = user_attributes(read_parquet(paths["validated.users"]))
    return events, priors, users, item_attributes(validated_items)


def features(params: Params, paths: Paths) -> dict[str, Any]:
    """Point-in-time event features plus static user and item attributes."""
    from inttower.features.point_in_time import feature_summary

    events, priors, users, items = compute_features(params.features, params.split, paths)
    write_parquet(events, paths["features.events"])
    write_parquet(users, paths["features.users"])
    write_parquet(items, paths["features.items"])
    write_json(priors, paths["features.priors"])
    return {"priors": priors, "events": events.height, "by_split": feature_summary(events)}


def encoders(params: Params, paths: Paths) -> dict[str, Any]:
    """Fit vocabularies and scalers on the train split only."""
    from inttower.features.encoders import fit_encoders

    fitted = fit_encoders(
        read_parquet(paths["features.events"]),
        read_parquet(paths["features.users"]),
        read_parquet(paths["features.items"]),
        params.encoders,
        leaky_scaler=params.split.leaky,
    )
    fitted.save(paths["encoders"])
    return {
        "fitted_on": fitted.fitted_on,
        "vocabulary_sizes": {name: len(values) for name, values in fitted.vocabularies.items()},
    }


# Rows encoded at a time: the encode stage's memory is one block's, whatever the log's size.
ENCODE_BLOCK_ROWS = 1 << 20


def encode(params: Params, paths: Paths) -> dict[str, Any]:
    """Encode every split with the train-fitted encoders into the tensors training reads, a
    block of events at a time, each block's rows written in place into its split's file."""

    from contextlib import ExitStack

    from inttower.features import encoded as encoded_format
    from inttower.features.encoders import Encoders, encode_events, unknown_shares
    from inttower.io import load_tensors, read_parquet_blocks

    source = paths["features.events"]
    keys = read_parquet(source, columns=["user_id", "split"])
    counts = {name: keys.filter(pl.col("split") == name).height for name in SPLITS}
    train_users = keys.filter(pl.col("split") == "train")["user_id"].unique()
    del keys
    users = read_parquet(paths["features.users"])
    items = read_parquet(paths["features.items"])
    fitted = Encoders.load(paths["encoders"])
    first = read_parquet(source, n_rows=1)  # the tensors' dtypes and widths, from one event
    layout = encoded_format.layout_of(encode_events(first, users, items, fitted, train_users))
    with ExitStack() as stack:
        writers = {
            name: stack.enter_context(
                encoded_format.streamed_split(paths["encoded"], name, layout, counts[name])
            )
            for name in SPLITS
        }
        for block in read_parquet_blocks(source, ENCODE_BLOCK_ROWS):
            for name, writer in writers.items():
                rows = block.filter(pl.col("split") == name)
                if rows.height:
                    writer.append(encode_events(rows, users, items, fitted, train_users))
    report: dict[str, Any] = {}
    for name in SPLITS:
        tensors = load_tensors(encoded_format.split_path(paths["encoded"], name))
        report[name] = {
            "events": counts[name],
            "cold_user_share": float(tensors["cold_user"].float().mean()) if counts[name] else 0.0,
            "unknown_share": unknown_shares(tensors),
        }
    encoded_format.save_fields(paths["encoded"], fitted.fields(), {"splits": report})
    write_json(report, paths["encode.summary"])
    return report


def train(
    params: Params, paths: Paths, resume: bool = False, launcher: Any = None
) -> dict[str, Any]:
    """Train the configured model on the encoded splits (on several processes: torchrun, run by
    `launcher` when a front end brings its own, e.g. Dagster Pipes)."""
    from inttower.training.train import train_model

    summary = train_model(params, paths, resume=resume, launcher=launcher)
    if summary is None:
        raise InttowerError("train: this process is a distributed worker; rank 0 reports")
    return summary


def evaluate(params: Params, paths: Paths) -> dict[str, Any]:
    """Score valid and test; write reports/metrics.json and the plot data."""
    from inttower.evaluation.report import evaluate_model

    return evaluate_model(params, paths)


def export(params: Params, paths: Paths) -> dict[str, Any]:
    """Write the serving bundle: what `inttower score` and a serving service load."""
    from inttower.serving.export import export_bundle

    return export_bundle(params, paths)
