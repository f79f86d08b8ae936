"""Asset checks on tiny fixtures built in the test, and the blocking schema check on a corrupted
copy of the real ml-100k."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from dagster_project.checks import quality_gate, split_is_chronological
from dagster_project.definitions import build_definitions
from dagster_project.resources import (
    ComputeResource,
    ParamsResource,
    RunContext,
    StorageResource,
    run_context,
)

from .helpers import SMALL_PARAMS, write_params


def _resources(root: Path, **params: object) -> dict[str, RunContext]:
    """The run resource a check gets in a real run, built by Dagster from the three it reads."""
    resources = {
        "params": ParamsResource(path=str(write_params(root / "params.yaml", params))),
        "compute": ComputeResource(),
        "storage": StorageResource(root=str(root), data_dir=str(root / "data")),
        "run": run_context,
    }
    with dg.build_resources(resources) as built:
        return {"run": built.run}


def _metrics(
    path: Path, test_auc: float | None, rate: float = 0.70, dense: float = 0.72, mf: float = 0.5
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    baselines = {
        "user_item_pos_rate_logits": {"auc": rate},
        "dense_logistic": {"auc": dense},
        "ids_mf": {"auc": mf},
    }
    scores = {"auc": test_auc, "logloss": 0.5, "n": 100}
    path.write_text(  # metrics.json's shape, only the scores the gate reads made up
        json.dumps(
            {
                "test": scores,
                "valid": scores,
                "baselines": baselines,
                "uncalibrated": {"test": scores, "valid": scores},
                "model": "inttower",
                "protocol": "temporal",
                "leaky": False,
            }
        )
    )


def test_quality_gate_holds_the_floor(tmp_path: Path) -> None:
    _metrics(tmp_path / "reports/metrics.json", 0.58, rate=0.5, dense=0.5)
    result = quality_gate(**_resources(tmp_path, **{"checks.min_test_auc": 0.6}))
    assert not result.passed
    assert result.metadata["failed"].value == "min_test_auc"


def test_quality_gate_compares_with_the_evaluations_own_baselines(tmp_path: Path) -> None:
    """Above the floor but below the features-alone logistic regression: not good enough."""
    _metrics(tmp_path / "reports/metrics.json", 0.71)
    result = quality_gate(**_resources(tmp_path, **{"checks.min_test_auc": 0.6}))
    assert not result.passed
    assert result.metadata["failed"].value == "dense_logistic"
    assert "< dense_logistic 0.7200" in (result.description or "")
    _metrics(tmp_path / "reports/metrics.json", 0.73)
    assert quality_gate(**_resources(tmp_path, **{"checks.min_test_auc": 0.6})).passed
    # a margin is a margin: 0.73 does not beat 0.72 by 0.02
    margin = {"checks.min_test_auc": 0.6, "checks.min_auc_gain_over_dense_logistic": 0.02}
    result = quality_gate(**_resources(tmp_path, **margin))
    assert not result.passed and result.metadata["failed"].value == "dense_logistic"


def test_quality_gate_requires_beating_the_ids_only_mf(tmp_path: Path) -> None:
    """Better than the features, worse than the ids alone: it missed the collaborative signal."""
    _metrics(tmp_path / "reports/metrics.json", 0.80, mf=0.83)
    result = quality_gate(**_resources(tmp_path, **{"checks.min_test_auc": 0.6}))
    assert not result.passed and result.metadata["failed"].value == "ids_mf"
    lenient = {"checks.min_test_auc": 0.6, "checks.min_auc_gain_over_ids_mf": -0.05}
    assert quality_gate(**_resources(tmp_path, **lenient)).passed


def test_quality_gate_fails_a_model_without_a_test_auc(tmp_path: Path) -> None:
    _metrics(tmp_path / "reports/metrics.json", None)
    assert not quality_gate(**_resources(tmp_path, **{"checks.min_test_auc": 0.0})).passed


def _events(root: Path, rows: list[tuple[str, int]]) -> None:
    target = root / "data/03_split/events.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(rows, schema=["split", "timestamp"], orient="row")
    frame.with_columns(user_id=pl.lit(1), item_id=pl.lit(2), label=pl.lit(1)).write_parquet(target)


def test_split_check_names_a_valid_event_earlier_than_the_last_train_event(
    tmp_path: Path,
) -> None:
    _events(tmp_path, [("train", 10), ("train", 20), ("valid", 15), ("valid", 30), ("test", 40)])
    result = split_is_chronological(**_resources(tmp_path))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["events_out_of_order"].value == 1
    assert "| valid | 15 |" in str(result.metadata["out_of_order_sample"].value)


def test_split_check_passes_a_chronological_split(tmp_path: Path) -> None:
    _events(tmp_path, [("train", 10), ("train", 20), ("valid", 21), ("test", 30), ("test", 30)])
    assert split_is_chronological(**_resources(tmp_path)).passed


def test_split_check_warns_without_blocking_under_the_papers_random_split(tmp_path: Path) -> None:
    _events(tmp_path, [("train", 30), ("valid", 10), ("test", 20)])
    result = split_is_chronological(**_resources(tmp_path, **{"split.protocol": "paper"}))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN


@pytest.mark.slow
def test_corrupted_interactions_stop_the_chain_and_name_the_rows(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(movielens_mirror / "ml-100k", mirror / "ml-100k")
    ratings = mirror / "ml-100k" / "u.data"
    lines = ratings.read_text().splitlines(keepends=True)
    user, item, _, stamp = lines[2].split("\t")
    lines[2] = f"{user}\t{item}\t9\t{stamp}"  # line 3: a rating of 9 stars
    user, _, rating, stamp = lines[6].split("\t")
    lines[6] = f"{user}\t99999\t{rating}\t{stamp}"  # line 7: a movie that does not exist
    ratings.write_text("".join(lines))

    params_file = write_params(tmp_path / "params.yaml", SMALL_PARAMS)
    storage = StorageResource(root=str(tmp_path), mirror=str(mirror))
    result = (
        build_definitions(params_file, storage)
        .resolve_job_def("retrain_job")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    )
    assert not result.success
    materialized = [e.materialization.asset_key for e in result.get_asset_materialization_events()]
    assert materialized == [dg.AssetKey("movielens_source"), dg.AssetKey("raw_movielens")]
    assert not (tmp_path / "data" / "02_validated").exists()
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "schema_valid" and not check.passed
    assert check.metadata["failure_count"].value == 2
    failing_rows = str(check.metadata["failing_rows"].value)
    assert f"{ratings}:3" in failing_rows and f"{ratings}:7" in failing_rows
    assert "99999" in failing_rows
