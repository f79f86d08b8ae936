"""`--set key=value` for the benchmark scripts: the CLI's dotted overrides, values parsed as YAML."""

from __future__ import annotations

from typing import Any

from inttower.config import parse_value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """["features.smoothing=3", "features.recent_windows=[]"] -> {dotted key: YAML value}."""
    overrides = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise SystemExit(f"--set {item!r}: expected key=value, e.g. train.patience=2")
        overrides[key] = parse_value(key, value)
    return overrides
