"""Where artifacts live: the catalog's relative paths under a data and a reports directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from inttower.pipeline import catalog

DATA_DIR_ENV = "INTTOWER_DATA_DIR"
REPORTS_DIR_ENV = "INTTOWER_REPORTS_DIR"
MIRROR_ENV = "MOVIELENS_MIRROR"


@dataclass(frozen=True)
class Paths:
    """Every artifact path: `paths["split.events"]`, relative to a data and a reports folder."""

    data: Path
    reports: Path

    @classmethod
    def from_env(cls, root: Path | str = ".") -> Paths:
        """$INTTOWER_DATA_DIR (default <root>/data) and $INTTOWER_REPORTS_DIR (default: see
        `for_data`)."""
        root = Path(root)
        data = Path(os.environ.get(DATA_DIR_ENV) or root / "data")
        reports = os.environ.get(REPORTS_DIR_ENV)
        return cls.for_data(data, root, Path(reports) if reports else None)

    @classmethod
    def for_data(
        cls, data: Path | str, root: Path | str = ".", reports: Path | None = None
    ) -> Paths:
        """Reports follow the data: the project's data/ reports to the project's reports/, any
        other data folder to its own `reports/`, so a side run never touches the project's."""
        data, root = Path(data), Path(root)
        if reports is None:
            same = data.resolve() == (root / "data").resolve()
            reports = root / "reports" if same else data / "reports"
        return cls(data=data, reports=reports)

    @classmethod
    def choose(
        cls,
        root: Path | str = ".",
        data: Path | str | None = None,
        reports: Path | str | None = None,
    ) -> Paths:
        """Folders named explicitly (a CLI flag, a Dagster resource field) first: with neither,
        `from_env`; with a data folder, reports follow it unless named too (`for_data`)."""
        if not (data or reports):
            return cls.from_env(root)
        chosen = Path(data) if data else cls.from_env(root).data
        return cls.for_data(chosen, root, Path(reports) if reports else None)

    def __getitem__(self, name: str) -> Path:
        item = catalog.artifact(name)
        return (self.data if item.root == "data" else self.reports) / item.path

    @property
    def downloads(self) -> Path:
        """GroupLens archives and extractions (unused when a mirror is set)."""
        return self.data / catalog.DOWNLOADS

    @property
    def checkpoints(self) -> Path:
        return self.data / catalog.CHECKPOINTS

    @property
    def staging(self) -> Path:
        return self.data / catalog.STAGING

    @property
    def run_log(self) -> Path:
        return self.data / catalog.RUN_LOG

    @property
    def lock(self) -> Path:
        return self.data / catalog.RUN_LOCK

    @property
    def champion_bundle(self) -> Path:
        return self.data / catalog.REGISTRY

    @property
    def champion_serving(self) -> Path:
        """The champion's serving bundle: what `inttower score` serves once a model is promoted."""
        return self.data / catalog.REGISTRY / catalog.CHAMPION_SERVING

    @property
    def champion_record(self) -> Path:
        return self.reports / catalog.CHAMPION

    @property
    def champion_history(self) -> Path:
        return self.reports / catalog.CHAMPION_HISTORY

    @property
    def promotion(self) -> Path:
        return self.reports / catalog.PROMOTION

    def table(self, layer: str, name: str) -> Path:
        """One of the three canonical tables of a layer (`ingested`, `validated`)."""
        return self[f"{layer}.{name}"]

    def encoded_split(self, split: str) -> Path:
        return self[f"encoded.{split}"]


def mirror_dir() -> Path | None:
    """The offline MovieLens mirror, if MOVIELENS_MIRROR is set."""
    value = os.environ.get(MIRROR_ENV)
    return Path(value) if value else None
