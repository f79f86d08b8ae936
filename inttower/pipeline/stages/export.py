"""The `export` stage: write the serving bundle."""

from __future__ import annotations

from inttower.config import Params
from inttower.pipeline.paths import Paths
from inttower.serving.export import ExportSummary, export_bundle


def run(params: Params, paths: Paths) -> ExportSummary:
    """Write the serving bundle: what `inttower score` and a serving service load."""
    return export_bundle(params, paths)
