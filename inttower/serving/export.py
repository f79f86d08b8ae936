"""The serving bundle: what a pre-ranking service needs, and nothing it would have to rebuild.

    user_tower.onnx        user fields -> head vectors and the user's logit term (dynamic batch)
    scorer.onnx            user vectors + a block of cached items -> logits (dynamic users, items)
    items.safetensors      the item tower run once over the whole catalogue: heads, bias, ids,
                           and the served score's prior (inttower/serving/rank.py)
    users.safetensors      every user's encoded features as of the end of the log, and the
                           catalogue rows each user has already interacted with (CSR)
    catalogue.json         item titles, row for row with items.safetensors
    encoders.json          the train-fitted vocabularies and scalers
    calibration.json       σ(a·z + b), fit on validation when the model was trained
    manifest.json          model id, fields, as_of, the features' moment, what the top-K is
                           ranked by, every file's md5

Serving needs only onnxruntime, numpy and safetensors (`inttower.serving.scorer.Scorer`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save as save_numpy
from torch import Tensor, nn

from inttower.config import Params
from inttower.errors import ConfigError
from inttower.features.encoded import FieldSpec, load_fields, tower_fields
from inttower.io import Summary, atomic_path, file_md5, write_json
from inttower.models.item_cache import ItemCache
from inttower.models.towers import TwoTowerModel
from inttower.pipeline.paths import Paths

logger = logging.getLogger("inttower.serving")

FORMAT_VERSION = 2  # 2: the served score's item prior and `ranking` (1: ranked by the logit)
OPSET = 18
USER_TOWER = "user_tower.onnx"
SCORER = "scorer.onnx"
ITEMS = "items.safetensors"
USERS = "users.safetensors"
CATALOGUE = "catalogue.json"
ENCODERS = "encoders.json"
CALIBRATION = "calibration.json"
MANIFEST = "manifest.json"
SEEN_OFFSETS, SEEN_ROWS = "seen_offsets", "seen_rows"
ISO = "%Y-%m-%dT%H:%M:%SZ"
BUNDLE_FILES = (USER_TOWER, SCORER, ITEMS, USERS, CATALOGUE, ENCODERS, CALIBRATION)
# graph input/output names, shared with the scorer
USER_VECTORS, USER_BIAS, ITEM_VECTORS, ITEM_BIAS, LOGITS = (
    "user_vectors",
    "user_bias",
    "item_vectors",
    "item_bias",
    "logits",
)
ITEM_PRIOR = "item_prior"


class UserTowerGraph(nn.Module):
    """The user tower with positional inputs (ONNX has no dict inputs) and a bias always present
    (zeros for a model without tower biases), so every bundle has the same two outputs."""

    def __init__(self, model: TwoTowerModel, fields: list[FieldSpec]) -> None:
        super().__init__()
        self.model = model
        self.names = [spec.name for spec in fields]

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        tower = self.model.user_tower(dict(zip(self.names, inputs, strict=True)))
        bias = tower.bias if tower.bias is not None else inputs[0].new_zeros(inputs[0].shape[0])
        return tower.vectors, bias.float()


class ScorerGraph(nn.Module):
    """Logits of users against a block of cached items: the model's own `score_block` plus the
    two towers' logit terms, exactly as `ItemCache.score` computes them."""

    def __init__(self, model: TwoTowerModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, user_vectors: Tensor, user_bias: Tensor, item_vectors: Tensor, item_bias: Tensor
    ) -> Tensor:
        logits = self.model.score_block(user_vectors, item_vectors)
        return logits + user_bias.unsqueeze(1) + item_bias.unsqueeze(0)


def example_inputs(fields: list[FieldSpec], rows: int = 2) -> tuple[Tensor, ...]:
    """Tracing inputs of the encoded dtypes: int64 indices (1 = unknown), float32 dense values."""
    inputs = []
    for spec in fields:
        if spec.kind == "dense":
            inputs.append(torch.zeros(rows, dtype=torch.float32))
        elif spec.kind == "sequence":
            inputs.append(torch.ones(rows, spec.length, dtype=torch.int64))
        else:
            inputs.append(torch.ones(rows, dtype=torch.int64))
    return tuple(inputs)


def _onnx_bytes(
    graph: nn.Module,
    inputs: tuple[Tensor, ...],
    input_names: list[str],
    output_names: list[str],
    dynamic: dict[str, dict[int, str]],
) -> bytes:
    """TorchScript-based export (deterministic bytes, no onnxscript at serving time)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            graph,
            inputs,
            buffer,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def export_user_tower(model: TwoTowerModel, fields: list[FieldSpec]) -> bytes:
    """The user tower as ONNX, batch dimension dynamic, inputs named after the fields."""
    specs = tower_fields(fields, "user")
    names = [spec.name for spec in specs]
    dynamic = {name: {0: "users"} for name in names}
    dynamic.update({USER_VECTORS: {0: "users"}, USER_BIAS: {0: "users"}})
    graph = UserTowerGraph(model, specs).eval()
    return _onnx_bytes(graph, example_inputs(specs), names, [USER_VECTORS, USER_BIAS], dynamic)


def export_scorer(model: TwoTowerModel, user: Tensor, items: ItemCache) -> bytes:
    """The MaxSim (or cosine) of users against a block of items, both dimensions dynamic."""
    n = min(len(items), 3)
    item_bias = items.item_bias if items.item_bias is not None else torch.zeros(len(items))
    inputs = (user[:2], torch.zeros(user[:2].shape[0]), items.items[:n], item_bias[:n])
    names = [USER_VECTORS, USER_BIAS, ITEM_VECTORS, ITEM_BIAS]
    dynamic = {
        USER_VECTORS: {0: "users"},
        USER_BIAS: {0: "users"},
        ITEM_VECTORS: {0: "items"},
        ITEM_BIAS: {0: "items"},
        LOGITS: {0: "users", 1: "items"},
    }
    return _onnx_bytes(ScorerGraph(model).eval(), inputs, names, [LOGITS], dynamic)


def write_bytes(payload: bytes, target: Path) -> Path:
    with atomic_path(target) as temporary:
        temporary.write_bytes(payload)
    return target


def write_arrays(arrays: dict[str, np.ndarray], target: Path) -> Path:
    return write_bytes(save_numpy({k: np.ascontiguousarray(v) for k, v in arrays.items()}), target)


def bundle_digest(files: dict[str, str]) -> str:
    """One digest over every file's md5: the bundle's identity in the manifest and metadata."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}={files[name]}\n".encode())
    return digest.hexdigest()[:16]


def manifest(
    *,
    model: str,
    weights_md5: str,
    fields: list[FieldSpec],
    as_of: str | None,
    features_as_of: str,
    n_users: int,
    n_items: int,
    files: dict[str, str],
    trained_on: dict[str, Any],
    evaluation: dict[str, Any],
    ranking: dict[str, Any],
) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "model": model,
        "model_id": weights_md5,
        "bundle_id": bundle_digest(files),
        "opset": OPSET,
        "user_fields": [
            {"name": spec.name, "kind": spec.kind, "length": spec.length}
            for spec in tower_fields(fields, "user")
        ],
        "as_of": as_of,
        "features_as_of": features_as_of,
        "n_users": n_users,
        "n_items": n_items,
        "trained_on": trained_on,
        "evaluation": evaluation,
        "ranking": ranking,
        "files": files,
    }


@dataclass(frozen=True)
class ExportSummary(Summary):
    bundle_id: str
    model_id: str
    n_users: int
    n_items: int
    features_as_of: str
    bytes: dict[str, int]  # bundle file -> size


def export_bundle(params: Params, paths: Paths) -> ExportSummary:
    """Write the serving bundle of the trained model into its folder, every file atomically and
    the manifest last (a bundle with a manifest is complete)."""
    import polars as pl

    from inttower.features.encoders import Encoders
    from inttower.io import load_tensors, read_json, read_parquet
    from inttower.models.registry import build_model
    from inttower.serving.features import ITEM_KEY, USER_KEY, latest_features, seen_items
    from inttower.serving.rank import item_prior
    from inttower.training.card import check_model_lineage

    fields = load_fields(paths["encoded"])
    model = build_model(fields, params.model)  # on the CPU: a bundle is built byte for byte
    if not isinstance(model, TwoTowerModel):
        raise ConfigError(
            "model.name",
            f"{params.model.name} scores a user and an item together, so no item side can be "
            "cached for serving; export needs a two-tower model (inttower or dssm)",
        )
    check_model_lineage(params, paths)
    model.load_state_dict(load_tensors(paths["model.weights"]))
    model.eval()
    encoders = Encoders.load(paths["encoders"])
    catalogue = read_parquet(paths["validated.items"]).sort("item_id")
    latest = latest_features(
        read_parquet(paths["split.events"]),
        read_parquet(paths["features.users"]),
        read_parquet(paths["features.items"]),
        catalogue,
        encoders,
        params.features,
    )
    item_inputs = {name: value for name, value in latest.items.items() if name != ITEM_KEY}
    with torch.no_grad():
        cache = ItemCache.build(model, item_inputs)
        probe = model.user_tower({k: v[:2] for k, v in latest.users.items() if k != USER_KEY})
    user_ids = latest.users[USER_KEY].numpy()
    item_ids = latest.items[ITEM_KEY].numpy()
    interactions = read_parquet(paths["validated.interactions"])
    offsets, rows = seen_items(interactions, user_ids, item_ids)
    serving = params.serving
    prior = {}
    if serving.rank_by == "expected_positives":  # as of the features' moment, as users are
        prior[ITEM_PRIOR] = item_prior(
            interactions["item_id"].to_numpy(),
            interactions["timestamp"].to_numpy(),
            item_ids,
            latest.timestamp,
            serving.prior_days,
        )
    item_bias = cache.item_bias if cache.item_bias is not None else torch.zeros(len(cache))
    folder = paths["serving"]
    write_bytes(export_user_tower(model, fields), folder / USER_TOWER)
    write_bytes(export_scorer(model, probe.vectors, cache), folder / SCORER)
    write_arrays(
        {
            ITEM_VECTORS: cache.items.numpy(),
            ITEM_BIAS: item_bias.numpy(),
            ITEM_KEY: item_ids,
            **prior,
        },
        folder / ITEMS,
    )
    write_arrays(
        {
            **{name: tensor.numpy() for name, tensor in latest.users.items()},
            SEEN_OFFSETS: offsets,
            SEEN_ROWS: rows,
        },
        folder / USERS,
    )
    titles = catalogue.select("item_id", "title").join(
        pl.DataFrame({"item_id": item_ids}), on="item_id", how="right"
    )
    write_json(
        {"item_id": item_ids.tolist(), "title": titles["title"].to_list()}, folder / CATALOGUE
    )
    encoders.save(folder / ENCODERS)
    write_json(read_json(paths["model.calibration"]), folder / CALIBRATION)
    files = {name: file_md5(folder / name) for name in BUNDLE_FILES}
    record = manifest(
        model=params.model.name,
        weights_md5=file_md5(paths["model.weights"]),
        fields=fields,
        as_of=params.data.as_of,
        features_as_of=datetime.fromtimestamp(latest.timestamp, UTC).strftime(ISO),
        n_users=int(user_ids.size),
        n_items=int(item_ids.size),
        files=files,
        trained_on=read_json(paths["model.card"]).get("data_md5", {}),
        evaluation=_evaluation(read_json(paths["metrics"])),
        ranking={"rank_by": serving.rank_by, "prior_days": serving.prior_days},
    )
    write_json(record, folder / MANIFEST)
    logger.info(
        "serving bundle %s: %d users, %d items, features as of %s",
        record["bundle_id"],
        record["n_users"],
        record["n_items"],
        record["features_as_of"],
    )
    return ExportSummary(
        bundle_id=record["bundle_id"],
        model_id=record["model_id"],
        n_users=record["n_users"],
        n_items=record["n_items"],
        features_as_of=record["features_as_of"],
        bytes={name: (folder / name).stat().st_size for name in BUNDLE_FILES},
    )


def _evaluation(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the evaluate stage measured of this model: the headline a service shows."""
    return {
        split: {key: metrics[split][key] for key in ("auc", "logloss", "n")}
        for split in ("test", "valid")
    }
