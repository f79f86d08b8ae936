"""`inttower backtest`: the contract of reports/backtest.json, on the real ml-100k."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inttower.errors import InttowerError
from inttower.lifecycle.backtest import cutoffs, parse_duration

ROOT = Path(__file__).resolve().parent.parent
SMALL = ("seed: 1\nmodel: {hidden_units: [32], heads: 2, head_dim: 8, embedding_dim: 8}\n"
         "train: {epochs: 2, patience: 2}\n")  # fmt: skip


def test_durations_and_cutoffs() -> None:
    assert parse_duration("7d") == parse_duration("1w") == 604_800
    assert parse_duration("12h") == 43_200
    for bad in ("7", "0d", "1y", "-1d"):
        with pytest.raises(InttowerError, match="expected a positive duration"):
            parse_duration(bad)
    assert cutoffs(0, 99, 3, 10) == [70, 80, 90]  # the last window ends just after the last event
    with pytest.raises(InttowerError, match="before the data starts"):
        cutoffs(50, 99, 6, 10)


def _backtest(cwd: Path, movielens_mirror: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inttower.cli", "backtest", "--windows", "3", "--every", "7d"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MOVIELENS_MIRROR": str(movielens_mirror)},
    )


@pytest.mark.slow
def test_a_backtest_of_three_windows_matches_the_contract(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    (tmp_path / "params.yaml").write_text(SMALL)
    result = _backtest(tmp_path, movielens_mirror)
    assert result.returncode == 0, result.stderr
    report_path = tmp_path / "reports/backtest.json"
    report = json.loads(report_path.read_text())
    windows = report["windows"]
    assert len(windows) == 3
    stamps = [window["as_of"] for window in windows]
    assert stamps == sorted(stamps) and stamps[-1] == "1998-04-15T23:10:39Z"
    for window in windows:
        assert window["test_events"] > 500
        for key in ("retrained", "frozen"):
            assert 0.5 < window[key]["auc"] < 1 and 0 < window[key]["logloss"] < 1
        assert 0.5 < window["baseline"]["auc"] < 1
    # the first window's retrained model is the frozen one
    assert windows[0]["retrained"] == windows[0]["frozen"]
    assert windows[1]["retrained"] != windows[1]["frozen"]
    chart = tmp_path / "reports/plots/backtest.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "window 3/3" in result.stderr and "retrained AUC" in result.stderr
    # a second backtest reuses every run, and writes the same bytes
    before = report_path.read_bytes(), chart.read_bytes()
    again = _backtest(tmp_path, movielens_mirror)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("reused") == 4 and "stage train" not in again.stderr
    assert (report_path.read_bytes(), chart.read_bytes()) == before
