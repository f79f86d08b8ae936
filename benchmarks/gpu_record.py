"""Merge one part's figures into the GPU proof's JSON ($OUT/gpu_proof.json) as soon as they exist.

Every part of benchmarks/gpu_proof.sh writes through here, so a run cut short by its time limit
still brings back every figure measured before the cut. Usage (values are JSON when they parse):
    python benchmarks/gpu_record.py PART key=value ... [--file key=path.json ...]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def proof_path() -> Path:
    """$GPU_PROOF_JSON, else $OUT/gpu_proof.json, else ./gpu_proof.json (a rehearsal)."""
    explicit = os.environ.get("GPU_PROOF_JSON")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("OUT", ".")) / "gpu_proof.json"


def record(part: str, figures: dict[str, Any]) -> None:
    """Merge `figures` into the part's object (a read-modify-write of the small JSON file)."""
    path = proof_path()
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {"_previous_file_unreadable": path.read_text()[:2000]}
    data.setdefault(part, {}).update(figures)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")
    temporary.replace(path)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part")
    parser.add_argument("pairs", nargs="*", help="key=value (JSON if it parses)")
    parser.add_argument("--file", action="append", default=[], help="key=path of a JSON file")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for pair in args.pairs:
        key, _, value = pair.partition("=")
        figures[key] = _value(value)
    for pair in args.file:
        key, _, name = pair.partition("=")
        try:
            figures[key] = json.loads(Path(name).read_text())
        except (OSError, json.JSONDecodeError) as error:
            figures[key] = f"unreadable: {error}"
    record(args.part, figures)


if __name__ == "__main__":
    main()
