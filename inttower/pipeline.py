"""The stage registry: the one DAG that dvc.yaml and the Dagster assets are both built from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inttower import stages
from inttower.config import Params
from inttower.paths import TABLES, Paths

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Stage:
    """One pipeline step: what it reads, writes and depends on."""

    name: str
    run: Callable[[Params, Paths], dict[str, Any]]
    description: str
    group: str
    reads: Callable[[Paths], list[Path]]  # upstream artifacts the stage opens
    params: tuple[str, ...]  # exact dotted keys the stage reads
    code: tuple[str, ...]  # source files, relative to the repo root
    outs: Callable[[Paths], list[Path]]  # artifacts DVC caches
    metrics: Callable[[Paths], list[Path]] = lambda paths: []  # small JSON kept in git
    plots: Callable[[Paths], list[Path]] = lambda paths: []
    kinds: tuple[str, ...] = ("python", "polars")

    @property
    def upstream(self) -> tuple[str, ...]:
        """The stages whose outputs this stage reads: the graph's edges, derived from the data."""
        reads = self.reads(REGISTRY_PATHS)
        return tuple(
            other.name
            for other in STAGE_LIST
            if any(_within(read, out) for read in reads for out in other.produces(REGISTRY_PATHS))
        )

    def produces(self, paths: Paths) -> list[Path]:
        """Outputs and metrics: everything a downstream stage may read."""
        return [*self.outs(paths), *self.metrics(paths)]

    def code_version(self, params: Params) -> str:
        """Changes when the stage's source files or its params change."""
        import hashlib

        digest = hashlib.sha256(params.fingerprint(list(self.params)).encode())
        for source in self.source_files():
            digest.update(source.relative_to(REPO_ROOT).as_posix().encode())
            digest.update(source.read_bytes())
        return digest.hexdigest()[:16]

    def source_files(self) -> list[Path]:
        """The stage's code as files (folders expand to their Python modules)."""
        files: list[Path] = []
        for relative in self.code:
            path = REPO_ROOT / relative
            files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
        return files


def _within(path: Path, container: Path) -> bool:
    return path == container or container in path.parents


REGISTRY_PATHS = Paths(data=Path("data"), reports=Path("reports"))


def _tables(layer: str) -> Callable[[Paths], list[Path]]:
    return lambda paths: [paths.table(getattr(paths, layer), name) for name in TABLES]


def _feature_tables(paths: Paths) -> list[Path]:
    return [paths.features / f"{name}.parquet" for name in ("events", "users", "items")]


_DATA = "inttower/data"
_FEATURES = "inttower/features"
_COMMON = ("inttower/config.py", "inttower/io.py", "inttower/stages.py")

STAGE_LIST: tuple[Stage, ...] = (
    Stage(
        name="ingest",
        run=stages.ingest,
        description="MovieLens from the mirror or GroupLens (checksummed), parsed to canonical tables",
        group="ingestion",
        reads=lambda paths: [],
        params=("data",),
        code=(
            *_COMMON,
            f"{_DATA}/download.py",
            f"{_DATA}/sources.py",
            f"{_DATA}/synthetic.py",
            f"{_DATA}/tables.py",
        ),
        outs=lambda paths: [*_tables("ingested")(paths), paths.ingested / "sources.json"],
    ),
    Stage(
        name="validate",
        run=stages.validate,
        description="pandera schemas and referential integrity; a failure stops the chain",
        group="ingestion",
        reads=lambda paths: [*_tables("ingested")(paths), paths.ingested / "sources.json"],
        params=(),
        code=(*_COMMON, f"{_DATA}/schema.py", f"{_DATA}/tables.py"),
        outs=_tables("validated"),
        metrics=lambda paths: [paths.reports / "validation.json"],
        kinds=("python", "polars", "pandera"),
    ),
    Stage(
        name="split",
        run=stages.split,
        description="labels (rating 3 dropped) and the chronological train/valid/test split",
        group="preparation",
        reads=lambda paths: [paths.table(paths.validated, "interactions")],
        params=("seed", "label", "split"),
        code=(*_COMMON, f"{_DATA}/split.py"),
        outs=lambda paths: [paths.split / "events.parquet"],
        metrics=lambda paths: [paths.reports / "split.json"],
    ),
    Stage(
        name="features",
        run=stages.features,
        description="point-in-time user/item statistics, behaviour features and positive-item history",
        group="preparation",
        reads=lambda paths: [
            paths.split / "events.parquet",
            paths.table(paths.validated, "users"),
            paths.table(paths.validated, "items"),
        ],
        params=("features", "split.protocol"),
        code=(*_COMMON, f"{_FEATURES}/features.py"),
        outs=lambda paths: [
            paths.features / "events.parquet",
            paths.features / "users.parquet",
            paths.features / "items.parquet",
            paths.features / "priors.json",
        ],
    ),
    Stage(
        name="encoders",
        run=stages.encoders,
        description="vocabularies and scalers fit on the train split only (JSON)",
        group="preparation",
        reads=_feature_tables,
        params=("encoders", "split.protocol"),
        code=(*_COMMON, f"{_FEATURES}/features.py", f"{_FEATURES}/encoders.py"),
        outs=lambda paths: [paths.encoders / "encoders.json"],
    ),
    Stage(
        name="encode",
        run=stages.encode,
        description="train/valid/test encoded as tensors (safetensors) with their field specs",
        group="preparation",
        reads=lambda paths: [*_feature_tables(paths), paths.encoders / "encoders.json"],
        params=(),
        code=(
            *_COMMON,
            f"{_FEATURES}/features.py",
            f"{_FEATURES}/encoders.py",
            f"{_FEATURES}/encoded.py",
        ),
        outs=lambda paths: [paths.encoded],
        metrics=lambda paths: [paths.reports / "encode.json"],
        kinds=("python", "polars", "safetensors"),
    ),
    Stage(
        name="train",
        run=stages.train,
        description="IntTower (or a baseline) trained with early stopping on validation AUC",
        group="modeling",
        reads=lambda paths: [paths.encoded],
        params=("seed", "model", "train"),
        code=(*_COMMON, "inttower/models", "inttower/training"),
        outs=lambda paths: [paths.model],
        plots=lambda paths: [paths.reports / "train_history.json"],
        kinds=("python", "pytorch"),
    ),
    Stage(
        name="evaluate",
        run=stages.evaluate,
        description="test AUC, logloss, GAUC, calibration; cold/warm users; no-model baselines",
        group="modeling",
        reads=lambda paths: [paths.model, paths.encoded, paths.features / "events.parquet"],
        # the model is rebuilt from its params, on the configured device
        params=(
            "evaluate",
            "model",
            "train.device",
            "train.precision",
            "train.threads",
            "split.protocol",
        ),
        code=(
            *_COMMON,
            "inttower/evaluation",
            f"{_FEATURES}/features.py",
            "inttower/models",
            "inttower/training",
        ),
        outs=lambda paths: [],
        metrics=lambda paths: [paths.metrics],
        plots=lambda paths: [paths.plots],
        kinds=("python", "pytorch"),
    ),
)
STAGES: dict[str, Stage] = {stage.name: stage for stage in STAGE_LIST}


def stage_names() -> list[str]:
    return [stage.name for stage in STAGE_LIST]
