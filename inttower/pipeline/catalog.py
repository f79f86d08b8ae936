"""The artifact catalog: every file the pipeline writes, declared once (name, path, format, stage).

Paths, the stage registry's reads and outputs, dvc.yaml's outs and Dagster's output hashes are
all derived from this table, so a path is spelled in exactly one place (Kedro's data catalog is
the model). Layered folders under the data directory keep raw → intermediate → features → model;
small JSON that git keeps (metrics, plots, summaries) lives under the reports directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Format = Literal["parquet", "json", "safetensors", "csv", "png", "onnx", "folder"]
Root = Literal["data", "reports"]
# out: cached by DVC; metric / plot / report: small files kept in git (DVC `cache: false`).
# Only metrics.json is a DVC metric, so `dvc exp show` and `dvc metrics diff` lead with what
# matters; the other summaries are plain uncached outputs (report).
Role = Literal["out", "metric", "plot", "report"]

SPLITS = ("train", "valid", "test")
TABLES = ("interactions", "users", "items")

# Folders under the data directory that no stage declares as an output: DVC never hashes them.
DOWNLOADS = "00_downloads"  # GroupLens archives and their extractions (unused with a mirror)
CHECKPOINTS = "checkpoints"  # per-epoch training state, for `inttower train --resume`
STAGING = ".staging"  # temporary files of atomic writes, renamed into place when complete
RUN_LOG = "logs/runs.jsonl"  # timings and host facts of every stage run: never versioned
RUN_LOCK = ".inttower.lock"  # one run at a time per data directory
# The champion registry (inttower/lifecycle/champion.py): written by a retrain's decision, not by a stage.
REGISTRY = "registry/champion"  # under the data directory: the champion's bundle
CHAMPION = "champion.json"  # under the reports directory: the record `inttower champion` prints
CHAMPION_HISTORY = "champion_history.jsonl"  # every promotion and restore
PROMOTION = "promotion.json"  # the last retrain's decision: both sets of scores, the reason
# The serving bundle (inttower/serving/export.py), by artifact name, file and format; the
# manifest is written last.
SERVING_FILES: tuple[tuple[str, str, Format], ...] = (
    ("user_tower", "user_tower.onnx", "onnx"),
    ("scorer", "scorer.onnx", "onnx"),
    ("items", "items.safetensors", "safetensors"),
    ("users", "users.safetensors", "safetensors"),
    ("catalogue", "catalogue.json", "json"),
    ("encoders", "encoders.json", "json"),
    ("calibration", "calibration.json", "json"),
    ("manifest", "manifest.json", "json"),
)
# A bundle: what scoring a model needs, by file name, from the artifacts of the run that made it.
CHAMPION_BUNDLE = {
    "encoders.json": "encoders",
    "model.safetensors": "model.weights",
    "model_card.json": "model.card",
    "calibration.json": "model.calibration",
    # the run's serving bundle travels with its model: `inttower score` serves the champion
    **{f"serving/{file}": f"serving.{name}" for name, file, _ in SERVING_FILES},
}
CHAMPION_SERVING = "serving"  # the serving bundle's folder inside the champion's bundle


@dataclass(frozen=True)
class Artifact:
    """One artifact: where it lives (relative to its root), its format and the stage writing it.
    `within` names the folder artifact that holds it (DVC versions the folder as one output)."""

    name: str
    path: str
    format: Format
    stage: str
    root: Root = "data"
    role: Role = "out"
    within: str | None = None


def _tables(layer: str, folder: str, stage: str) -> tuple[Artifact, ...]:
    return tuple(
        Artifact(f"{layer}.{table}", f"{folder}/{table}.parquet", "parquet", stage)
        for table in TABLES
    )


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("source.fingerprint", "00_source/fingerprint.json", "json", "source"),
    *_tables("ingested", "01_ingested", "ingest"),
    Artifact("ingested.sources", "01_ingested/sources.json", "json", "ingest"),
    # synthetic data's true rating distribution per event (empty for real data): evaluation only
    Artifact("ingested.oracle", "01_ingested/oracle.parquet", "parquet", "ingest"),
    # source rows of the events at or after data.as_of, removed (empty without a cutoff): errors
    # on the remaining rows still name their source lines
    Artifact("ingested.removed", "01_ingested/removed_rows.parquet", "parquet", "ingest"),
    *_tables("validated", "02_validated", "validate"),
    Artifact("validation", "validation.json", "json", "validate", "reports", "report"),
    Artifact("split.events", "03_split/events.parquet", "parquet", "split"),
    Artifact("split.summary", "split.json", "json", "split", "reports", "report"),
    Artifact("features.events", "04_features/events.parquet", "parquet", "features"),
    Artifact("features.users", "04_features/users.parquet", "parquet", "features"),
    Artifact("features.items", "04_features/items.parquet", "parquet", "features"),
    Artifact("features.priors", "04_features/priors.json", "json", "features"),
    Artifact("encoders", "05_encoders/encoders.json", "json", "encoders"),
    Artifact("encoded", "06_encoded", "folder", "encode"),
    *(
        Artifact(
            f"encoded.{split}",
            f"06_encoded/{split}.safetensors",
            "safetensors",
            "encode",
            within="encoded",
        )
        for split in SPLITS
    ),
    Artifact("encoded.fields", "06_encoded/fields.json", "json", "encode", within="encoded"),
    Artifact("encode.summary", "encode.json", "json", "encode", "reports", "report"),
    Artifact("model", "07_model", "folder", "train"),
    Artifact("model.weights", "07_model/model.safetensors", "safetensors", "train", within="model"),
    Artifact("model.card", "07_model/model_card.json", "json", "train", within="model"),
    Artifact("model.calibration", "07_model/calibration.json", "json", "train", within="model"),
    Artifact("train.history", "train_history.json", "json", "train", "reports", "report"),
    Artifact("metrics", "metrics.json", "json", "evaluate", "reports", "metric"),
    # the charts are DVC image plots (`dvc plots show` needs no Vega from the internet); the
    # curves behind them are plain reports. Each is its own output: reports/plots/ also holds
    # the backtest's chart, which no stage writes.
    *(
        Artifact(f"plots.{name}", f"plots/{name}.png", "png", "evaluate", "reports", "plot")
        for name in ("training_curve", "roc", "reliability", "cold_warm", "ranking")
    ),
    Artifact("curves.roc", "plots/roc.csv", "csv", "evaluate", "reports", "report"),
    Artifact("curves.calibration", "plots/calibration.csv", "csv", "evaluate", "reports", "report"),
    Artifact("serving", "08_serving", "folder", "export"),
    *(
        Artifact(f"serving.{name}", f"08_serving/{file}", fmt, "export", within="serving")
        for name, file, fmt in SERVING_FILES
    ),
)
# Written by `inttower backtest`, not by a stage: what retraining buys, window by window.
BACKTEST = "backtest.json"
BACKTEST_CHART = "plots/backtest.png"
BACKTEST_WORK = "backtest"  # under the data directory: one run folder per cutoff, reused
CATALOG: dict[str, Artifact] = {artifact.name: artifact for artifact in ARTIFACTS}


def artifact(name: str) -> Artifact:
    """The catalog entry `name`; an unknown name fails at once, listing the known ones."""
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"no artifact {name!r} in the catalog ({', '.join(CATALOG)})") from None


def written_by(stage: str) -> list[Artifact]:
    """What `stage` versions: its top-level artifacts (a folder's members travel with it)."""
    return [item for item in ARTIFACTS if item.stage == stage and item.within is None]


def versioned_unit(name: str) -> Artifact:
    """The artifact DVC versions for `name`: itself, or the folder that holds it."""
    item = artifact(name)
    return artifact(item.within) if item.within else item


def writer_of(path: Path | str) -> str | None:
    """The stage that writes `path` (matched by its catalog path at the end), or None."""
    posix = Path(path).as_posix()
    for item in sorted(ARTIFACTS, key=lambda entry: -len(entry.path)):
        if posix == item.path or posix.endswith("/" + item.path):
            return item.stage
    return None
