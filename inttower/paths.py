"""Where each stage's artifacts live: layered folders under INTTOWER_DATA_DIR (default data/)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from inttower.features.encoded import SPLITS

DATA_DIR_ENV = "INTTOWER_DATA_DIR"
MIRROR_ENV = "MOVIELENS_MIRROR"
TABLES = ("interactions", "users", "items")


@dataclass(frozen=True)
class Paths:
    """Every artifact path, relative to a project root and a data directory."""

    data: Path
    reports: Path

    @classmethod
    def from_env(cls, root: Path | str = ".") -> Paths:
        root = Path(root)
        data = Path(os.environ.get(DATA_DIR_ENV) or root / "data")
        return cls(data=data, reports=root / "reports")

    # raw MovieLens archives downloaded from GroupLens (unused when a mirror is set)
    @property
    def downloads(self) -> Path:
        return self.data / "00_downloads"

    @property
    def ingested(self) -> Path:
        return self.data / "01_ingested"

    @property
    def validated(self) -> Path:
        return self.data / "02_validated"

    @property
    def split(self) -> Path:
        return self.data / "03_split"

    @property
    def features(self) -> Path:
        return self.data / "04_features"

    @property
    def encoders(self) -> Path:
        return self.data / "05_encoders"

    @property
    def encoded(self) -> Path:
        return self.data / "06_encoded"

    @property
    def model(self) -> Path:
        return self.data / "07_model"

    @property
    def checkpoints(self) -> Path:
        return self.data / "checkpoints"

    def table(self, layer: Path, name: str) -> Path:
        return layer / f"{name}.parquet"

    def encoded_split(self, split: str) -> Path:
        assert split in SPLITS, split
        return self.encoded / f"{split}.safetensors"

    @property
    def metrics(self) -> Path:
        return self.reports / "metrics.json"

    @property
    def plots(self) -> Path:
        return self.reports / "plots"


def mirror_dir() -> Path | None:
    """The offline MovieLens mirror, if MOVIELENS_MIRROR is set."""
    value = os.environ.get(MIRROR_ENV)
    return Path(value) if value else None
