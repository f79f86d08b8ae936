"""The `export` stage: write the serving bundle."""

from __future__ import annotations

from typing import Any

from inttower.config import Params
from inttower.pipeline.paths import Paths
from inttower.serving.export import export_bundle


def run(params: Params, paths: Paths) -> dict[str, Any]:
    """Write the serving bundle: what `inttower score` and a serving service load."""
    return export_bundle(params, paths)
