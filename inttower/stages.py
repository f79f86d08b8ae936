"""Stage functions: read a stage's inputs, call the pure library functions, write its outputs.

Each takes (Params, Paths) and returns a JSON-able summary that the CLI prints and Dagster
shows as materialization metadata. Outputs are written atomically and only after every check
passed, so a failed stage leaves what earlier runs produced untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from inttower.config import Params
from inttower.data.tables import RawTables, SourceRef
from inttower.errors import StageInputError
from inttower.features import encoded as encoded_format
from inttower.features.encoders import Encoders, encode_events, fit_encoders, unknown_shares
from inttower.features.features import (
    event_features,
    feature_summary,
    item_attributes,
    user_attributes,
)
from inttower.io import read_json, write_json, write_parquet
from inttower.paths import TABLES, Paths, mirror_dir

log = logging.getLogger("inttower.stages")


def _existing(path: Path) -> Path:
    if not path.exists():
        raise StageInputError(f"{path} not found: run the stage that produces it first")
    return path


def _read(path: Path) -> pl.DataFrame:
    return pl.read_parquet(_existing(path))


def ingest(params: Params, paths: Paths) -> dict[str, Any]:
    """Fetch (mirror or GroupLens) and parse the dataset into the canonical tables."""
    from inttower.data.sources import load_raw

    tables = load_raw(params, downloads_dir=paths.downloads, mirror=mirror_dir())
    for name in TABLES:
        write_parquet(tables.table(name), paths.table(paths.ingested, name))
    sources = {name: vars(ref) for name, ref in tables.sources.items()}
    write_json(
        {"dataset": params.data.dataset, "sources": sources}, paths.ingested / "sources.json"
    )
    return {
        "dataset": params.data.dataset,
        **{f"{name}_rows": tables.table(name).height for name in TABLES},
    }


def load_ingested(paths: Paths) -> RawTables:
    """The ingested tables with their provenance, so validation errors name source lines."""
    recorded = read_json(_existing(paths.ingested / "sources.json"))["sources"]
    return RawTables(
        **{name: _read(paths.table(paths.ingested, name)) for name in TABLES},
        sources={name: SourceRef(**ref) for name, ref in recorded.items()},
    )


def validate(params: Params, paths: Paths) -> dict[str, Any]:
    """Check the canonical tables against their schemas; nothing downstream is written on failure."""
    from inttower.data.schema import validate_tables

    tables = load_ingested(paths)
    summary = validate_tables(tables)
    for name in TABLES:
        write_parquet(tables.table(name), paths.table(paths.validated, name))
    write_json(summary, paths.reports / "validation.json")
    return summary


def split(params: Params, paths: Paths) -> dict[str, Any]:
    """Label events and split them by time (or by the paper's leaky random split)."""
    from inttower.data.split import label_events, split_events, split_summary

    interactions = _read(paths.table(paths.validated, "interactions"))
    events = split_events(label_events(interactions, params.label), params.split, params.seed)
    write_parquet(events, paths.split / "events.parquet")
    summary = {
        "protocol": params.split.protocol,
        "leaky": params.split.leaky,
        "splits": split_summary(events),
    }
    write_json(summary, paths.reports / "split.json")
    return summary


def features(params: Params, paths: Paths) -> dict[str, Any]:
    """Point-in-time event features plus static user and item attributes."""
    validated_items = _read(paths.table(paths.validated, "items"))
    events, priors = event_features(
        _read(paths.split / "events.parquet"),
        params.features,
        params.split,
        validated_items if params.features.genre_profile else None,
    )
    users = user_attributes(_read(paths.table(paths.validated, "users")))
    items = item_attributes(validated_items)
    write_parquet(events, paths.features / "events.parquet")
    write_parquet(users, paths.features / "users.parquet")
    write_parquet(items, paths.features / "items.parquet")
    write_json(priors, paths.features / "priors.json")
    return {"priors": priors, "events": events.height, "by_split": feature_summary(events)}


def encoders(params: Params, paths: Paths) -> dict[str, Any]:
    """Fit vocabularies and scalers on the train split only."""
    fitted = fit_encoders(
        _read(paths.features / "events.parquet"),
        _read(paths.features / "users.parquet"),
        _read(paths.features / "items.parquet"),
        params.encoders,
        leaky_scaler=params.split.leaky,
    )
    fitted.save(paths.encoders / "encoders.json")
    return {
        "fitted_on": fitted.fitted_on,
        "vocabulary_sizes": {name: len(values) for name, values in fitted.vocabularies.items()},
    }


def encode(params: Params, paths: Paths) -> dict[str, Any]:
    """Encode every split with the train-fitted encoders into the tensors training reads."""
    events = _read(paths.features / "events.parquet")
    users = _read(paths.features / "users.parquet")
    items = _read(paths.features / "items.parquet")
    fitted = Encoders.load(paths.encoders / "encoders.json")
    train_users = events.filter(pl.col("split") == "train")["user_id"].unique()
    report: dict[str, Any] = {}
    for name in encoded_format.SPLITS:
        rows = events.filter(pl.col("split") == name)
        tensors = encode_events(rows, users, items, fitted, train_users)
        encoded_format.save_split(paths.encoded, name, tensors)
        report[name] = {
            "events": rows.height,
            "cold_user_share": float(tensors["cold_user"].float().mean()) if rows.height else 0.0,
            "unknown_share": unknown_shares(tensors),
        }
    encoded_format.save_fields(paths.encoded, fitted.fields(), {"splits": report})
    write_json(report, paths.reports / "encode.json")
    return report


def train(params: Params, paths: Paths, resume: bool = False) -> dict[str, Any]:
    """Train the configured model on the encoded splits."""
    from inttower.training.train import train_model

    return train_model(params, paths, resume=resume)


def evaluate(params: Params, paths: Paths) -> dict[str, Any]:
    """Score valid and test; write reports/metrics.json and the plot data."""
    from inttower.evaluation.report import evaluate_model

    return evaluate_model(params, paths)
