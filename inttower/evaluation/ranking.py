"""What is served, measured: full-catalogue top-K of the model beside popularity and the MF.

For a period (test, valid) starting at T: the users with at least one positive event in it are
ranked over the **whole catalogue**, less every item they had rated (any rating) before T;
relevant = their positive items in the period that they had not rated before. Users and items
are as of T (point-in-time probe features, as the serving bundle computes them at the end of
the log), scored through the item cache the bundle serves and ordered by the served score
(inttower/serving/rank.py). No sampled negatives (Krichene & Rendle, KDD 2020: sampled metrics
disagree with exact ones, even in ranking order).

The rankers: `model` (what `inttower score` serves), `popularity` (positives per item before
T), `recent_popularity` (positives in the served prior's window, `serving.prior_days`, ties
broken by popularity; absent when the window is the whole log) and `ids_mf`.

    Recall@K = hits in the top K ÷ min(K, relevant)
    NDCG@K   = Σ_{rank r ≤ K, hit} 1/log2(r + 1) ÷ Σ_{r ≤ min(K, relevant)} 1/log2(r + 1)
    coverage@K = distinct items in anyone's top K ÷ catalogue size

each a mean over the period's users. Users go through in batches: memory is a batch of
users × the catalogue, whatever the number of events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from inttower.config import Params
from inttower.evaluation.calibration import Calibration
from inttower.features.encoders import Encoders
from inttower.io import read_parquet
from inttower.models.item_cache import ItemCache
from inttower.models.mf import BiasedMF
from inttower.models.towers import TwoTowerModel
from inttower.pipeline.paths import Paths
from inttower.serving.features import ITEM_KEY, USER_KEY, latest_features, seen_items
from inttower.serving.rank import SECONDS_PER_DAY, item_prior, served_scores

log = logging.getLogger("inttower.evaluation.ranking")

RANKERS = ("model", "popularity", "recent_popularity", "ids_mf")
USERS_PER_BATCH = 512
# a batch's base scores (the rankers', and the model's raw `logit` and the served `prior`) -> scores
Variant = Callable[[dict[str, torch.Tensor]], torch.Tensor]
SCORED_USERS = 4  # users per one-piece MaxSim (what the ONNX scorer runs per request)
SIMILARITY_FLOATS = 1 << 25  # 128 MiB: the largest similarity block, whatever the catalogue
CURVE_K = 20  # NDCG@K for K = 1 … this, for the chart


@dataclass(frozen=True)
class RankingResult:
    """Per ranker, the headline metrics and the NDCG@K curve; the users and catalogue size."""

    metrics: dict[str, dict[str, float]]
    ndcg_curve: dict[str, list[float]]
    users: int
    catalogue: int
    seconds: float


@dataclass(frozen=True)
class RankingTables:
    """What every period's ranking reads: read once, shared by test and valid."""

    events: pl.DataFrame  # the labelled, split events
    users: pl.DataFrame
    items: pl.DataFrame
    catalogue: pl.DataFrame  # sorted by item_id
    interactions: pl.DataFrame  # every rating: items rated before a period are no candidates
    encoders: Encoders

    @classmethod
    def read(cls, paths: Paths) -> RankingTables:
        return cls(
            events=read_parquet(paths["split.events"]),
            users=read_parquet(paths["features.users"]),
            items=read_parquet(paths["features.items"]),
            catalogue=read_parquet(paths["validated.items"]).sort("item_id"),
            interactions=read_parquet(paths["validated.interactions"]),
            encoders=Encoders.load(paths["encoders"]),
        )


def ranking_metrics(
    params: Params,
    tables: RankingTables,
    model: torch.nn.Module,
    mf: BiasedMF | None,
    split: str,
    variants: dict[str, Variant] | None = None,
    calibration: Calibration | None = None,
) -> RankingResult | None:
    """Top-K metrics of the served model (`calibration`: the model's own, fit on valid when it was
    trained; it matters to `serving.rank_by: expected_positives`), popularity and the ids-only MF
    on `split`'s users; None when the model has no item side (single-tower) or the period has no
    positive event. `variants`: more rankers built from a batch's base scores
    (benchmarks/served_topk.py)."""
    if not isinstance(model, TwoTowerModel):
        return None
    started = time.perf_counter()
    events = tables.events
    period = events.filter(pl.col("split") == split)
    positives = period.filter(pl.col("label") == 1).select("user_id", "item_id").unique()
    if positives.is_empty():
        return None
    start = int(period["timestamp"].min())
    before = events.filter(pl.col("timestamp") < start)
    latest = latest_features(
        before, tables.users, tables.items, tables.catalogue, tables.encoders, params.features
    )
    user_ids = latest.users[USER_KEY].numpy()
    item_ids = latest.items[ITEM_KEY].numpy()
    offsets, seen_rows = seen_items(
        tables.interactions.filter(pl.col("timestamp") < start), user_ids, item_ids
    )
    rows = {int(user): row for row, user in enumerate(user_ids)}
    item_row = {int(item): row for row, item in enumerate(item_ids)}
    relevant: dict[int, set[int]] = {}
    for user, item in positives.iter_rows():
        if user in rows and item in item_row:
            relevant.setdefault(rows[user], set()).add(item_row[item])
    for user_row in list(relevant):  # an item rated before T is no candidate: not relevant
        relevant[user_row] -= set(seen_rows[offsets[user_row] : offsets[user_row + 1]].tolist())
        if not relevant[user_row]:
            del relevant[user_row]
    users = np.array(sorted(relevant), dtype=np.int64)
    if users.size == 0:
        return None
    popularity = _popularity(before, item_ids)
    days = params.serving.prior_days
    rated = tables.interactions.select("item_id", "timestamp")
    rated_items, rated_at = rated["item_id"].to_numpy(), rated["timestamp"].to_numpy()
    prior = None
    if params.serving.rank_by == "expected_positives":
        prior = item_prior(rated_items, rated_at, item_ids, start, days)
    calibration = calibration or Calibration()
    model.eval()
    with torch.no_grad():
        cache = ItemCache.build(
            model, {name: value for name, value in latest.items.items() if name != ITEM_KEY}
        )
    user_inputs = {name: value for name, value in latest.users.items() if name != USER_KEY}

    def served(logits: torch.Tensor) -> torch.Tensor:
        scores = served_scores(logits.numpy(), prior, calibration.scale, calibration.bias)
        return torch.from_numpy(scores)

    scorers: dict[str, Callable[[np.ndarray], torch.Tensor]] = {
        "logit": lambda batch: _served_logits(cache, _rows(user_inputs, batch)),
        "popularity": lambda batch: popularity.expand(len(batch), -1),
    }
    if days is not None:
        window = before.filter(pl.col("timestamp") >= start - days * SECONDS_PER_DAY)
        # ties (most items had no recent positive) broken by popularity
        recent = _popularity(window, item_ids) + popularity / (popularity.max() + 1)
        scorers["recent_popularity"] = lambda batch: recent.expand(len(batch), -1)
    if mf is not None:
        user_codes, item_codes = latest.users["user_id"].view(-1), latest.items["item_id"].view(-1)
        scorers["ids_mf"] = lambda batch: mf.score_all(user_codes[batch], item_codes)
    k_max = max(CURVE_K, *params.evaluate.ranking_k)
    variants = variants or {}
    rankers = [name for name in RANKERS if name == "model" or name in scorers]
    tops: dict[str, list[np.ndarray]] = {name: [] for name in [*rankers, *variants]}
    for start_row in range(0, users.size, USERS_PER_BATCH):
        batch = users[start_row : start_row + USERS_PER_BATCH]
        mask = _seen_mask(batch, offsets, seen_rows, item_ids.size)
        base = {name: scorer(batch) for name, scorer in scorers.items()}
        base["model"] = served(base["logit"])
        if prior is not None:
            base["prior"] = torch.from_numpy(prior).unsqueeze(0)
        ranked = {
            **{name: base[name] for name in rankers},
            **{name: variant(base) for name, variant in variants.items()},
        }
        for name, raw in ranked.items():
            scores = raw.masked_fill(mask, float("-inf"))
            # ties broken by catalogue row (stable sort): deterministic, and the same for all
            order = torch.sort(scores, dim=1, descending=True, stable=True).indices
            tops[name].append(order[:, : min(k_max, item_ids.size)].numpy())
    relevant_lists = [relevant[int(user)] for user in users]
    metrics, curves = {}, {}
    for name, parts in tops.items():
        top = np.concatenate(parts)
        metrics[name] = _summaries(top, relevant_lists, params.evaluate.ranking_k, item_ids.size)
        curves[name] = [_ndcg(top, relevant_lists, k) for k in range(1, CURVE_K + 1)]
    seconds = time.perf_counter() - started
    log.info(
        "ranking on %s: %d users × %d items in %.1f s; NDCG@10 model %.4f, popularity %.4f%s",
        split,
        users.size,
        item_ids.size,
        seconds,
        metrics["model"].get("ndcg@10", float("nan")),
        metrics["popularity"].get("ndcg@10", float("nan")),
        f", ids_mf {metrics['ids_mf'].get('ndcg@10', float('nan')):.4f}" if mf else "",
    )
    return RankingResult(metrics, curves, int(users.size), int(item_ids.size), seconds)


@torch.no_grad()
def _served_logits(cache: ItemCache, user_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Every user against every cached item, a few users at a time through the one-piece
    `score_block`: the computation the bundle's ONNX scorer runs for a request. (U, N)"""
    model = cache.model
    item_bias = cache.item_bias if cache.item_bias is not None else torch.zeros(len(cache))
    rows = next(iter(user_inputs.values())).shape[0]
    parts = []
    for start in range(0, rows, SCORED_USERS):
        user = model.user_tower(
            {k: v[start : start + SCORED_USERS] for k, v in user_inputs.items()}
        )
        # items in chunks, so one similarity tensor stays under SIMILARITY_FLOATS
        per_item = user.vectors.shape[0] * user.vectors.shape[1] * cache.items.shape[1]
        step = max(1, SIMILARITY_FLOATS // max(per_item, 1))
        chunks = [
            model.score_block(user.vectors, cache.items[first : first + step])
            for first in range(0, len(cache), step)
        ]
        logits = torch.cat(chunks, dim=1) + item_bias.unsqueeze(0)
        parts.append(logits if user.bias is None else logits + user.bias.unsqueeze(1))
    return torch.cat(parts).float()


def _rows(inputs: dict[str, torch.Tensor], rows: np.ndarray) -> dict[str, torch.Tensor]:
    index = torch.from_numpy(rows)
    return {name: value[index] for name, value in inputs.items()}


def _popularity(before: pl.DataFrame, item_ids: np.ndarray) -> torch.Tensor:
    """Positive events per catalogue item before the period: the ranking to beat. (1, N)"""
    counts = (
        before.filter(pl.col("label") == 1)
        .group_by("item_id")
        .len("positives")
        .join(pl.DataFrame({"item_id": item_ids}), on="item_id", how="right")
        .select(pl.col("positives").fill_null(0))
    )
    return torch.from_numpy(counts["positives"].to_numpy().astype(np.float32)).unsqueeze(0)


def _seen_mask(
    users: np.ndarray, offsets: np.ndarray, rows: np.ndarray, n_items: int
) -> torch.Tensor:
    mask = torch.zeros(len(users), n_items, dtype=torch.bool)
    for index, user in enumerate(users):
        mask[index, torch.from_numpy(rows[offsets[user] : offsets[user + 1]])] = True
    return mask


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def _ndcg(top: np.ndarray, relevant: list[set[int]], k: int) -> float:
    discounts = _discounts(k)
    scores = []
    for ranked, wanted in zip(top[:, :k], relevant, strict=True):
        gains = np.fromiter((item in wanted for item in ranked), dtype=bool, count=len(ranked))
        ideal = discounts[: min(k, len(wanted))].sum()
        scores.append(float((discounts[: len(ranked)] * gains).sum() / ideal))
    return float(np.mean(scores))


def _recall(top: np.ndarray, relevant: list[set[int]], k: int) -> float:
    return float(
        np.mean(
            [
                len(wanted.intersection(ranked.tolist())) / min(k, len(wanted))
                for ranked, wanted in zip(top[:, :k], relevant, strict=True)
            ]
        )
    )


def _summaries(
    top: np.ndarray, relevant: list[set[int]], ks: list[int], n_items: int
) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = _recall(top, relevant, k)
        out[f"ndcg@{k}"] = _ndcg(top, relevant, k)
    out["coverage@10"] = float(np.unique(top[:, :10]).size / n_items)
    return out
