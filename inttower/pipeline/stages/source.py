"""The `source` stage: fingerprint what ingest would read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inttower.config import Params
from inttower.data.fingerprint import source_fingerprint
from inttower.errors import InttowerError
from inttower.io import Summary, read_json, write_json
from inttower.pipeline.paths import Paths, mirror_dir


@dataclass(frozen=True)
class SourceSummary(Summary):
    """The fingerprint of what ingest would read: equal exactly when that input is."""

    fingerprint: dict[str, Any]  # the JSON record itself: its equality is the point

    @property
    def dataset(self) -> str:
        return str(self.fingerprint["dataset"])

    def to_json(self) -> dict[str, Any]:
        return self.fingerprint


def run(params: Params, paths: Paths) -> SourceSummary:
    """Fingerprint what ingest would read: rewritten byte for byte when nothing changed, so DVC
    (which runs this stage every time) reruns ingest only when the source did change."""
    fingerprint = source_fingerprint(params, mirror_dir(), paths.downloads)
    target = paths["source.fingerprint"]
    try:
        unchanged = read_json(target) == fingerprint
    except InttowerError:  # missing, or torn by a killed run: write it afresh
        unchanged = False
    if not unchanged:
        write_json(fingerprint, target)  # untouched when equal: mtime too stays as it was
    return SourceSummary(fingerprint)
