"""The `source` stage: fingerprint what ingest would read."""

from __future__ import annotations

from typing import Any

from inttower.config import Params
from inttower.data.fingerprint import source_fingerprint
from inttower.errors import InttowerError
from inttower.io import read_json, write_json
from inttower.pipeline.paths import Paths, mirror_dir


def run(params: Params, paths: Paths) -> dict[str, Any]:
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
    return fingerprint
