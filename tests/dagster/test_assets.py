"""The stage assets: one per registry stage, the same graph as dvc.yaml, code versions that move
with params, and an in-process retrain on the real ml-100k that matches `dvc repro`."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from dagster_project.assets import (
    ASSET_NAMES,
    OWNERS,
    SOURCE_FILES,
    asset_key,
    lineage_code_versions,
    stage_for,
)
from dagster_project.definitions import build_definitions
from dagster_project.resources import StorageResource
from dagster_project.retraining import CHAMPION_ASSET
from dagster_project.versioning import VERSIONED_ASSET
from inttower.config import load_params
from inttower.io import file_md5, read_json
from inttower.pipeline.registry import STAGE_LIST, STAGES, stage_names

from .conftest import Retrain
from .helpers import ROOT, SMALL_PARAMS, VENV_BIN, dvc, git, write_params
from .test_definitions import STARTUP_TIMEOUT, _env, _free_port, _graphql, _stop

STAGE_ASSETS = {asset_key(name) for name in stage_names()}


def _specs(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    return {spec.key: spec for spec in defs.resolve_all_asset_specs()}


def _code_versions(params_file: Path) -> dict[str, str | None]:
    specs = _specs(build_definitions(params_file))
    return {key.to_user_string(): spec.code_version for key, spec in specs.items()}


def _dvc_graph(dvc_yaml: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """Stages and edges of dvc.yaml: A → B when B depends on a path A outputs (or inside it)."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    producer: dict[str, str] = {}
    for name, entry in stages.items():
        for section in ("outs", "metrics", "plots"):
            for out in entry.get(section, []):
                producer[out if isinstance(out, str) else next(iter(out))] = name
    edges = {
        (made_by, name)
        for name, entry in stages.items()
        for dep in entry.get("deps", [])
        for out, made_by in producer.items()
        if dep == out or dep.startswith(out + "/")
    }
    return set(stages), edges


def test_every_stage_is_one_noun_asset_with_its_registry_facts() -> None:
    assert list(ASSET_NAMES) == stage_names()
    params = load_params(ROOT / "params.yaml")
    specs = _specs(build_definitions(ROOT / "params.yaml"))
    dagster_only = (VERSIONED_ASSET, CHAMPION_ASSET, SOURCE_FILES, "backtest")
    extra = {dg.AssetKey(name) for name in dagster_only}
    assert set(specs) == STAGE_ASSETS | extra
    for stage in STAGE_LIST:
        spec = specs[asset_key(stage.name)]
        assert stage_for(spec.key) == stage.name
        assert spec.group_name == stage.group
        assert spec.description == stage.description
        assert set(spec.kinds) == set(stage.kinds)
        assert list(spec.owners) == OWNERS
        assert spec.code_version == lineage_code_versions(params)[stage.name]
        # raw data is ingested on purpose; everything after it follows upstream changes
        assert (spec.automation_condition is None) == (not stage.upstream)


def test_dagster_asset_graph_is_the_dvc_yaml_stage_graph() -> None:
    stages, dvc_edges = _dvc_graph(ROOT / "dvc.yaml")
    specs = _specs(build_definitions(ROOT / "params.yaml"))
    stage_specs = {key: spec for key, spec in specs.items() if key in STAGE_ASSETS}
    dagster_edges = {
        (stage_for(dep.asset_key), stage_for(key))
        for key, spec in stage_specs.items()
        for dep in spec.deps
        if dep.asset_key in STAGE_ASSETS
    }
    assert {stage_for(key) for key in stage_specs} == stages
    assert dagster_edges == dvc_edges
    # Dagster-only: the raw files before the first stage, the champion decision and DVC after
    # the last
    versioned = specs[dg.AssetKey(VERSIONED_ASSET)]
    last = asset_key(STAGE_LIST[-1].name)
    assert [dep.asset_key for dep in versioned.deps] == [last, dg.AssetKey(CHAMPION_ASSET)]
    champion = specs[dg.AssetKey(CHAMPION_ASSET)]
    assert [dep.asset_key for dep in champion.deps] == [last]
    first = specs[asset_key(STAGE_LIST[0].name)]
    assert [dep.asset_key for dep in first.deps] == [dg.AssetKey(SOURCE_FILES)]


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("features.smoothing", 3.0),
        ("train.lr", 0.01),
        ("evaluate.calibration_bins", 5),
        ("split.protocol", "paper"),  # read by several stages
    ],
)
def test_a_param_changes_exactly_the_code_versions_of_stages_reading_it(
    tmp_path: Path, dotted: str, value: object
) -> None:
    before = _code_versions(write_params(tmp_path / "before.yaml", {}))
    after = _code_versions(write_params(tmp_path / "after.yaml", {dotted: value}))
    changed = {key for key in before if before[key] != after[key]}
    readers = {
        name
        for name in stage_names()
        if any(dotted == key or dotted.startswith(key + ".") for key in STAGES[name].params)
    }
    assert readers, f"no stage declares {dotted}"
    downstream = {ASSET_NAMES[name] for name in _downstream(readers)}
    assert changed == downstream | {VERSIONED_ASSET, CHAMPION_ASSET}


def _downstream(names: set[str]) -> set[str]:
    """The stages and every stage that reads from them, directly or not."""
    reached = set(names)
    for stage in STAGE_LIST:  # registry order is topological
        if reached & set(stage.upstream):
            reached.add(stage.name)
    return reached


@pytest.mark.slow
def test_retrain_materializes_every_asset_with_passing_checks(retrain: Retrain) -> None:
    assert retrain.result.success
    materialized = {
        event.materialization.asset_key
        for event in retrain.result.get_asset_materialization_events()
    }
    assert materialized == STAGE_ASSETS | {
        dg.AssetKey(VERSIONED_ASSET),
        dg.AssetKey(CHAMPION_ASSET),
    }
    checks = {
        event.check_name: event.passed for event in retrain.result.get_asset_check_evaluations()
    }
    assert checks == {
        "schema_valid": True,
        "split_is_chronological": True,
        "test_items_known": True,
        "quality_gate": True,
    }


def _metadata(retrain: Retrain, stage: str) -> dict[str, Any]:
    (event,) = retrain.result.asset_materializations_for_node(ASSET_NAMES[stage])
    return {key: value.value for key, value in event.metadata.items()}


@pytest.mark.slow
def test_materializations_carry_what_users_look_for(retrain: Retrain) -> None:
    raw = _metadata(retrain, "ingest")
    assert raw["rows/interactions"] == 100_000 and raw["dagster/row_count"] == 100_000
    assert "| user_id | item_id | rating | timestamp |" in str(raw["preview/interactions"])
    assert "| interactions | rating | Float32 |" in str(raw["schema"])
    split = _metadata(retrain, "split")
    assert 0.5 < float(split["label_balance/train"]) < 1
    assert "1998-04-22" in str(split["splits"])  # the last ml-100k rating, in ISO time
    assert "user_pos_rate.mean" in str(_metadata(retrain, "features")["feature_statistics"])
    model = _metadata(retrain, "train")
    assert model["device"] == "cpu" and int(model["n_parameters"]) > 0
    assert "| epoch | loss |" in str(model["training_curve"])
    evaluation = _metadata(retrain, "evaluate")
    metrics = read_json(retrain.project / "reports" / "metrics.json")
    for name in ("auc", "logloss", "gauc", "ece"):
        assert evaluation[f"test_{name}"] == round(metrics["test"][name], 4)  # a headline
    for chart in ("training_curve", "roc", "reliability", "cold_warm"):
        image = str(evaluation[chart])
        assert image.startswith("![") and "](data:image/png;base64,iVBORw0KGgo" in image, chart
    # no JSON twin of a table anywhere
    for stage in STAGE_LIST:
        keys = set(_metadata(retrain, stage.name))
        assert not {key for key in keys if key.endswith("_data") or key.endswith("_json")}, keys
    serving = _metadata(retrain, "export")
    assert serving["items"] == 1682 and serving["users"] == 943
    assert "| user_tower.onnx |" in str(serving["files"])


@pytest.mark.slow
def test_output_hashes_in_metadata_are_the_ones_dvc_lock_records(retrain: Retrain) -> None:
    lock = yaml.safe_load((retrain.project / "dvc.lock").read_text())["stages"]
    for stage in STAGE_LIST:
        recorded = {out["path"]: out["md5"] for out in lock[stage.name].get("outs", [])}
        reported = _metadata(retrain, stage.name)["dvc_md5"]
        assert reported, stage.name
        for path, digest in reported.items():
            assert recorded[path] == digest, (stage.name, path)


@pytest.mark.slow
def test_training_progress_reaches_the_run_log(retrain: Retrain) -> None:
    messages = [entry.user_message for entry in retrain.instance.all_logs(retrain.result.run_id)]
    assert any(message.startswith("inttower.training: epoch 1/1 loss=") for message in messages)


@pytest.mark.slow
def test_dagster_and_dvc_repro_produce_the_same_metrics(
    retrain: Retrain, tmp_path: Path, movielens_mirror: Path
) -> None:
    assert retrain.result.success
    clone = tmp_path / "clone"
    git("clone", "-q", str(retrain.project), str(clone), cwd=tmp_path)
    shutil.rmtree(clone / "reports")  # committed by the retrain: `dvc repro` must write them anew
    output = dvc("repro", cwd=clone)
    assert "Running stage 'train'" in output and "Running stage 'evaluate'" in output
    ours, theirs = retrain.project, clone
    assert json.loads((theirs / "reports/metrics.json").read_text()) == json.loads(
        (ours / "reports/metrics.json").read_text()
    )
    weights = "data/07_model/model.safetensors"
    assert file_md5(theirs / weights) == file_md5(ours / weights)


LOCATION = "inttower"
STALE_QUERY = "{ assetNodes { assetKey { path } staleStatus } }"
RELOAD = (
    f'mutation {{ reloadRepositoryLocation(repositoryLocationName: "{LOCATION}") '
    "{ __typename ... on WorkspaceLocationEntry { locationOrLoadError { __typename } } } }"
)


@contextlib.contextmanager
def _webserver(retrain: Retrain, params_file: Path, folder: Path) -> Iterator[int]:
    """`dagster-webserver` over the retrain's instance, its one code location built from
    `params_file` (what a user runs: the UI, reloaded after editing params.yaml)."""
    (folder / "defs.py").write_text(
        "from dagster_project.definitions import build_definitions\n"
        "from dagster_project.resources import StorageResource\n"
        f"storage = StorageResource(root={str(retrain.project)!r}, "
        f"data_dir={str(retrain.project / 'data')!r})\n"
        f"defs = build_definitions({str(params_file)!r}, storage)\n"
    )
    (folder / "workspace.yaml").write_text(
        "load_from:\n"
        f"  - python_file:\n      relative_path: defs.py\n      location_name: {LOCATION}\n"
        f"      working_directory: {ROOT}\n"
    )
    port = _free_port()
    command = [str(VENV_BIN / "dagster-webserver"), "-w", "workspace.yaml"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {**_env(Path(retrain.instance.root_directory)), "PYTHONPATH": str(ROOT)}
    with (folder / "webserver.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not _stale_statuses(port):
                assert process.poll() is None, (folder / "webserver.log").read_text()[-3000:]
                assert time.monotonic() < deadline, f"no asset over GraphQL in {STARTUP_TIMEOUT}s"
                time.sleep(1)
            yield port
        finally:
            _stop(process)


def _stale_statuses(port: int) -> dict[str, str]:
    """Each asset's stale status as the UI shows it; {} while the location loads."""
    try:
        nodes = _graphql(port, STALE_QUERY)["data"]["assetNodes"]
    except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError):
        return {}
    return {"/".join(node["assetKey"]["path"]): node["staleStatus"] for node in nodes}


def _stale(port: int) -> set[str]:
    statuses = _stale_statuses(port)
    watched = {key.to_user_string() for key in STAGE_ASSETS} | {VERSIONED_ASSET}
    assert watched <= set(statuses), sorted(watched - set(statuses))
    return {name for name in watched if statuses[name] == "STALE"}


@pytest.mark.slow
def test_editing_a_param_marks_exactly_the_downstream_assets_stale(
    retrain: Retrain, tmp_path: Path
) -> None:
    assert retrain.result.success
    params = tmp_path / "params.yaml"
    shutil.copyfile(retrain.project / "params.yaml", params)
    with _webserver(retrain, params, tmp_path) as port:
        assert _stale(port) == set()
        write_params(params, {**SMALL_PARAMS, "features.smoothing": 3.0})
        reloaded = _graphql(port, RELOAD)["data"]["reloadRepositoryLocation"]
        assert reloaded["locationOrLoadError"]["__typename"] == "RepositoryLocation", reloaded
        assert _stale(port) == {
            "event_features",
            "feature_encoders",
            "encoded_splits",
            "inttower_model",
            "model_evaluation",
            "serving_bundle",
            VERSIONED_ASSET,
        }


@pytest.mark.slow
def test_run_config_overrides_apply_and_are_recorded(
    tmp_path: Path, movielens_mirror: Path
) -> None:
    params_file = write_params(tmp_path / "params.yaml", SMALL_PARAMS)
    storage = StorageResource(root=str(tmp_path), mirror=str(movielens_mirror))
    defs = build_definitions(params_file, storage)
    result = defs.resolve_job_def("retrain_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[asset_key(name) for name in ("source", "ingest", "validate", "split")],
        run_config={
            "resources": {
                "params": {"config": {"overrides": {"split.train": 0.7, "split.valid": 0.2}}}
            }
        },
    )
    (event,) = result.asset_materializations_for_node("labelled_split")
    metadata = {key: value.value for key, value in event.metadata.items()}
    assert metadata["params_overrides"] == {"split.train": 0.7, "split.valid": 0.2}
    assert metadata["effective_code_version"] != STAGES["split"].code_version(
        load_params(params_file)
    )
    splits = read_json(tmp_path / "reports/split.json")["splits"]
    total = sum(block["events"] for block in splits.values())
    assert abs(splits["train"]["events"] / total - 0.7) < 0.01


def _long_floats(value: object, where: str) -> list[str]:
    """Every float with more than four decimals in a metadata value, JSON nested included."""
    if isinstance(value, float):
        small = value != 0 and abs(value) < 1e-4  # 1e-6 stays 1e-6, with four digits
        short = value == (float(f"{value:.4g}") if small else round(value, 4))
        return [] if short else [f"{where}={value!r}"]
    if isinstance(value, dict):
        return [hit for key, item in value.items() for hit in _long_floats(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [
            hit
            for index, item in enumerate(value)
            for hit in _long_floats(item, f"{where}[{index}]")
        ]
    return []


@pytest.mark.slow
def test_every_float_in_every_assets_and_checks_metadata_has_four_decimals(
    retrain: Retrain,
) -> None:
    """Not a list of keys: every materialization and check evaluation the retrain recorded."""
    long = []
    for event in retrain.result.all_events:
        data = event.event_specific_data
        metadata = getattr(getattr(data, "materialization", None), "metadata", None)
        metadata = metadata or getattr(data, "metadata", None) or {}
        for key, value in metadata.items():
            # JSON values are checked inside; markdown tables round their cells when written
            long += _long_floats(getattr(value, "value", value), f"{event.step_key}:{key}")
    assert long == [], long[:10]
