"""data.as_of: the pipeline sees the world as it was then, and nothing of what came after."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inttower.pipeline.catalog import ARTIFACTS
from inttower.config import parse_params
from inttower.data.tables import SourceRef
from inttower.pipeline.paths import Paths

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "1998-03-01"  # ml-100k runs 1997-09-20 … 1998-04-22: about 10% of it is later
CUTOFF = 888710400
FAST = ["--set", "train.epochs=1", "--set", "model.hidden_units=[32]", "--set", "model.heads=2"]


def test_as_of_accepts_dates_and_datetimes_and_normalizes_them() -> None:
    import datetime as dt

    for value in ("1998-03-01", dt.date(1998, 3, 1), "1998-03-01T02:00:00+02:00"):
        data = parse_params({"data": {"as_of": value}}).data
        assert (data.as_of, data.cutoff) == ("1998-03-01T00:00:00Z", CUTOFF)
    assert parse_params({}).data.cutoff is None


def test_rows_after_removed_ones_keep_their_source_lines() -> None:
    ref = SourceRef("u.data", removed=np.array([0, 1, 5]))
    # source rows 2, 3, 4, 6, 7 remain: table rows 0… map onto them
    assert [ref.line_of(row) for row in range(5)] == [3, 4, 5, 7, 8]
    assert SourceRef("u.data").line_of(4) == 5


def _run(cwd: Path, data: str, mirror: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inttower.cli", "run", "--data-dir", data, *FAST, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MOVIELENS_MIRROR": str(mirror)},
    )


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow
def test_labels_flipped_after_as_of_change_no_output_of_any_stage(
    tmp_path: Path, ml100k_dir: Path
) -> None:
    """Every rating at or after as_of is turned around (5 ↔ 1, 4 ↔ 2, 3 → 5): each output of every
    stage is bit-identical. Only the source fingerprint (the raw files' own md5) and the run
    log (timings) differ, as they must."""
    (tmp_path / "params.yaml").write_text(f"seed: 3\ndata:\n  as_of: {AS_OF}\n")
    mirror = tmp_path / "mirror"
    shutil.copytree(ml100k_dir, mirror / "ml-100k")
    first = _run(tmp_path, "before", mirror)
    assert first.returncode == 0, first.stderr
    ratings = mirror / "ml-100k" / "u.data"
    flipped, later = [], 0
    for line in ratings.read_text().splitlines(keepends=True):
        user, item, rating, stamp = line.rstrip("\n").split("\t")
        if int(stamp) >= CUTOFF:
            rating, later = {"1": "5", "2": "4", "3": "5", "4": "2", "5": "1"}[rating], later + 1
        flipped.append(f"{user}\t{item}\t{rating}\t{stamp}\n")
    ratings.write_text("".join(flipped))
    assert later > 5000
    second = _run(tmp_path, "after", mirror)
    assert second.returncode == 0, second.stderr

    before, after = _digests(tmp_path / "before"), _digests(tmp_path / "after")
    assert before.keys() == after.keys()
    differ = {name for name in before if before[name] != after[name]}
    # beside the fingerprint, only what is never versioned: the run log, the resume checkpoint's
    # clock and the fingerprint's stat cache
    unversioned = {"logs/runs.jsonl", "checkpoints/latest.json", "00_downloads/.fingerprint-cache.json"}
    assert differ - unversioned == {"00_source/fingerprint.json"}
    versioned = {str(Paths.for_data(tmp_path / "before")[a.name].relative_to(tmp_path / "before"))
                 for a in ARTIFACTS if a.format != "folder"}  # fmt: skip
    assert versioned <= before.keys() and not versioned & unversioned
    metrics = json.loads((tmp_path / "after/reports/metrics.json").read_text())
    split = json.loads((tmp_path / "after/reports/split.json").read_text())
    card = json.loads((tmp_path / "after/07_model/model_card.json").read_text())
    assert metrics["as_of"] == split["as_of"] == card["as_of"] == "1998-03-01T00:00:00Z"
    removed = (tmp_path / "after/01_ingested/removed_rows.parquet")
    import polars as pl

    assert pl.read_parquet(removed).height == later


def test_an_as_of_outside_the_data_is_one_line_naming_the_range(
    tmp_path: Path, ml100k_dir: Path
) -> None:
    (tmp_path / "params.yaml").write_text("data:\n  as_of: 2001-01-01\n")
    result = _run(tmp_path, "data", ml100k_dir.parent, "--to", "ingest")
    assert result.returncode == 2
    (line,) = [row for row in result.stderr.splitlines() if row.startswith("inttower: error")]
    assert line == (
        "inttower: error: data.as_of 2001-01-01T00:00:00Z: outside the dataset's time range; "
        "expected after its first event (1997-09-20T03:05:10Z) and no later than its last "
        "(1998-04-22T23:10:38Z)"
    )
    assert not (tmp_path / "data" / "01_ingested").exists()


def test_validation_errors_after_a_cut_still_name_the_source_line(
    tmp_path: Path, ml100k_dir: Path
) -> None:
    """Rows removed by as_of before a duplicate: the error still names the duplicate's line."""
    (tmp_path / "params.yaml").write_text(f"data:\n  as_of: {AS_OF}\n")
    mirror = tmp_path / "mirror"
    shutil.copytree(ml100k_dir, mirror / "ml-100k")
    ratings = mirror / "ml-100k" / "u.data"
    lines = ratings.read_text().splitlines(keepends=True)
    early = next(i for i, line in enumerate(lines) if int(line.split("\t")[3]) < CUTOFF)
    ratings.write_text("".join([*lines, lines[early]]))
    result = _run(tmp_path, "data", mirror, "--to", "validate")
    assert result.returncode == 2
    (line,) = [row for row in result.stderr.splitlines() if row.startswith("inttower: error")]
    assert f"u.data:{len(lines) + 1} duplicate rating of line {early + 1}" in line, line
