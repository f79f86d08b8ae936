"""Top-k pre-ranking from a serving bundle, with ONNX Runtime: no torch, no training code.

    scorer = Scorer.load("data/08_serving")
    for item in scorer.top_k(user_id=42, k=10):
        print(item.item_id, item.title, item.probability)

Items are ordered by the served score the bundle was exported with (`scorer.rank_by`,
inttower/serving/rank.py): by default the log of the expected positives, the item's recent
rating count times the calibrated probability that the user likes it.

The user's features are those the bundle holds, as of the end of the event log it was exported
from (`scorer.features_as_of`); a service that keeps features fresher passes its own encoded
user-tower inputs (`user_features`, the fields of `scorer.user_fields`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from safetensors.numpy import load_file

from inttower.errors import ArtifactError, InttowerError
from inttower.io import file_md5, read_json
from inttower.serving.rank import served_scores

MANIFEST = "manifest.json"
# Largest similarity block ONNX Runtime materialises per call, in floats (as in the training
# code's MaxSim): large enough to amortise a call, small enough to stay in cache for the max.
BLOCK_FLOATS = 1 << 20


@dataclass(frozen=True)
class Recommendation:
    rank: int
    item_id: int
    title: str | None
    probability: float  # calibrated P(like), as evaluation reports it
    logit: float
    score: float  # what the top-K is ordered by (the logit when ranked by probability)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class OnnxScoring:
    """The two graphs and the item cache: user features -> logits against cached items."""

    def __init__(
        self,
        user_tower: Path | bytes,
        scorer: Path | bytes,
        item_vectors: np.ndarray,
        item_bias: np.ndarray,
        threads: int = 0,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.user_tower = ort.InferenceSession(_model(user_tower), options, providers=providers)
        self.scorer = ort.InferenceSession(_model(scorer), options, providers=providers)
        self.item_vectors = item_vectors
        self.item_bias = item_bias

    def users(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The user tower: head vectors and each user's logit term."""
        inputs = {name: np.ascontiguousarray(value) for name, value in feed.items()}
        vectors, bias = self.user_tower.run(None, inputs)
        return vectors, bias

    def logits(self, feed: dict[str, np.ndarray], rows: np.ndarray | None = None) -> np.ndarray:
        """(U, C) logits against the cached rows (all: None), a block of items per call."""
        vectors, bias = self.users(feed)
        items, item_bias = self.item_vectors, self.item_bias
        if rows is not None:
            items, item_bias = items[rows], item_bias[rows]
        if items.shape[0] == 0:  # no candidates: no scores
            return np.zeros((vectors.shape[0], 0), dtype=np.float32)
        per_item = math.prod(vectors.shape[1:-1]) * math.prod(items.shape[1:-1])
        step = max(1, BLOCK_FLOATS // max(1, vectors.shape[0] * per_item))
        blocks = [
            self.scorer.run(
                None,
                {
                    "user_vectors": vectors,
                    "user_bias": bias,
                    "item_vectors": items[start : start + step],
                    "item_bias": item_bias[start : start + step],
                },
            )[0]
            for start in range(0, items.shape[0], step)
        ]
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


class Scorer:
    """A loaded serving bundle: the user tower and the scorer graph, the item cache, the users'
    features as of the end of the log, and the calibration."""

    def __init__(self, folder: Path, threads: int = 0) -> None:
        self.folder = Path(folder)
        self.manifest = read_json(self.folder / MANIFEST)
        files = self.manifest["files"]
        for name, expected in files.items():
            path = self.folder / name
            if not path.exists():
                raise ArtifactError(path, "missing from the serving bundle; export it again")
            if file_md5(path) != expected:
                raise ArtifactError(
                    path,
                    f"md5 differs from {self.folder / MANIFEST} (changed or torn since export); "
                    "run `inttower export` again",
                )
        self.user_fields = [field["name"] for field in self.manifest["user_fields"]]
        items = load_file(str(self.folder / "items.safetensors"))
        self.item_ids = items["item_raw"]
        self.graphs = OnnxScoring(
            self.folder / "user_tower.onnx",
            self.folder / "scorer.onnx",
            items["item_vectors"],
            items["item_bias"],
            threads,
        )
        users = load_file(str(self.folder / "users.safetensors"))
        self.user_ids = users.pop("user_raw")
        self._seen_offsets = users.pop("seen_offsets")
        self._seen_rows = users.pop("seen_rows")
        self._users = users
        self.titles = read_json(self.folder / "catalogue.json")["title"]
        calibration = read_json(self.folder / "calibration.json")
        self.calibration_scale = float(calibration["scale"])
        self.calibration_bias = float(calibration["bias"])
        # a format-1 bundle has no ranking entry: it was ranked by the model's logit
        ranking = self.manifest.get("ranking") or {"rank_by": "probability"}
        self.rank_by: str = ranking["rank_by"]
        self.item_prior: np.ndarray | None = items.get("item_prior")
        if self.rank_by == "expected_positives" and self.item_prior is None:
            raise ArtifactError(
                self.folder / "items.safetensors",
                "has no item_prior, which the manifest's rank_by expected_positives needs; "
                "run `inttower export` again",
            )

    @classmethod
    def load(cls, bundle_dir: Path | str, threads: int = 0) -> Scorer:
        """Load and verify a bundle (every file's md5 against its manifest); threads 0 lets
        ONNX Runtime choose."""
        folder = Path(bundle_dir)
        if not (folder / MANIFEST).exists():
            raise InttowerError(
                f"{folder}: no serving bundle here ({MANIFEST} missing); run `inttower export`"
            )
        return cls(folder, threads)

    @property
    def bundle_id(self) -> str:
        return self.manifest["bundle_id"]

    @property
    def features_as_of(self) -> str:
        return self.manifest["features_as_of"]

    def __len__(self) -> int:
        return int(self.item_ids.size)

    def user_row(self, user_id: int) -> int:
        row = int(np.searchsorted(self.user_ids, user_id))
        if row >= self.user_ids.size or self.user_ids[row] != user_id:
            raise InttowerError(
                f"user {user_id} is not in the bundle ({self.user_ids.size} users as of "
                f"{self.features_as_of}); pass its encoded features as user_features instead"
            )
        return row

    def user_features(self, user_id: int) -> dict[str, np.ndarray]:
        """The encoded user-tower inputs of one known user (one row), as of `features_as_of`."""
        row = self.user_row(user_id)
        return {name: self._users[name][row : row + 1] for name in self.user_fields}

    def seen(self, user_id: int) -> np.ndarray:
        """Catalogue rows the user interacted with in the log (any rating)."""
        row = self.user_row(user_id)
        return self._seen_rows[self._seen_offsets[row] : self._seen_offsets[row + 1]]

    def candidate_rows(self, item_ids: np.ndarray | list[int]) -> np.ndarray:
        ids = np.asarray(item_ids, dtype=self.item_ids.dtype)
        rows = np.minimum(np.searchsorted(self.item_ids, ids), self.item_ids.size - 1)
        unknown = ids[self.item_ids[rows] != ids]
        if unknown.size:
            raise InttowerError(f"item {int(unknown[0])} is not in the bundle's catalogue")
        return rows

    def logits(
        self, user_features: dict[str, np.ndarray], rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Logits (U, C) of users (encoded inputs, U rows) against catalogue rows (all: None)."""
        missing = [name for name in self.user_fields if name not in user_features]
        if missing:
            raise InttowerError(f"user_features lacks {', '.join(missing)}")
        return self.graphs.logits({name: user_features[name] for name in self.user_fields}, rows)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities in float64, as evaluation computes them."""
        z = self.calibration_scale * logits.astype(np.float64) + self.calibration_bias
        return 1.0 / (1.0 + np.exp(-z))

    def scores(self, logits: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """What the top-K is ordered by, from (U, C) logits against catalogue rows (all: None):
        the computation evaluation's ranking metrics run."""
        prior = None
        if self.rank_by == "expected_positives":
            prior = self.item_prior if rows is None else self.item_prior[rows]
        return served_scores(logits, prior, self.calibration_scale, self.calibration_bias)

    def top_k(
        self,
        user_id: int | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        user_features: dict[str, np.ndarray] | None = None,
        candidates: np.ndarray | list[int] | None = None,
    ) -> list[Recommendation]:
        """The k best items for one user (by id, or by its encoded features), best first; ties
        broken by item id. Seen items are excluded when the user is known."""
        if (user_id is None) == (user_features is None):
            raise InttowerError("top_k: pass exactly one of user_id and user_features")
        if k < 1:
            raise InttowerError(f"top_k: k must be at least 1, got {k}")
        features = self.user_features(user_id) if user_id is not None else user_features
        rows = None if candidates is None else self.candidate_rows(candidates)
        logits = self.logits(features, rows)[0]
        scores = self.scores(logits[None, :], rows)[0]
        allowed = np.ones(logits.size, dtype=bool)
        if exclude_seen and user_id is not None:
            seen = self.seen(user_id)
            if rows is None:
                allowed[seen] = False
            else:
                allowed &= ~np.isin(rows, seen)
        positions = np.flatnonzero(allowed)
        if positions.size > k:
            # the k-th best score, then every position at least that good (ties kept whole)
            kth = np.partition(scores[positions], positions.size - k)[positions.size - k]
            positions = positions[scores[positions] >= kth]
        catalogue = positions if rows is None else rows[positions]
        order = np.lexsort((self.item_ids[catalogue], -scores[positions]))[:k]
        chosen, best = catalogue[order], positions[order]
        probabilities = self.probabilities(logits[best])
        return [
            Recommendation(
                rank=rank + 1,
                item_id=int(self.item_ids[row]),
                title=self.titles[row],
                probability=float(probability),
                logit=float(logits[position]),
                score=float(scores[position]),
            )
            for rank, (row, position, probability) in enumerate(
                zip(chosen, best, probabilities, strict=True)
            )
        ]


def _model(source: Path | bytes) -> str | bytes:
    return source if isinstance(source, bytes) else str(source)
