"""What the champion registry keeps, typed: the champion's record (`reports/champion.json`, each
line of the history) and a retrain's decision (`reports/promotion.json`). JSON at the file
boundary only; the code reads attributes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from inttower.io import known_fields


@dataclass(frozen=True)
class ChampionRecord:
    """A model made the champion (promoted, or restored from an experiment)."""

    id: str  # content-addressed: "model-" + the weights' md5, shortened
    lineage: dict[str, str]  # the data, code and params digests it was made of
    promoted_at: str
    experiment: str | None = None
    model: str | None = None
    as_of: str | None = None
    metrics: dict[str, Any] | None = None  # the evaluation's test and valid blocks
    event: Literal["promoted", "restored"] = "promoted"
    bundle: str | None = None  # where its files were copied
    artifacts: dict[str, str] = field(default_factory=dict)  # bundle file -> md5

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ChampionRecord:
        return cls(**known_fields(cls, raw))


@dataclass(frozen=True)
class Challenger:
    """The model a retrain just trained, as the decision judged it."""

    id: str
    experiment: str | None
    model: str
    as_of: str | None
    lineage: dict[str, str]
    metrics: dict[str, Any]  # the evaluation's test and valid blocks
    test: dict[str, Any]  # the scores the rule compares: auc, logloss (and ndcg@10)
    checks: list[dict[str, Any]]  # every blocking check: bar, value, passed

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Challenger:
        return cls(**known_fields(cls, raw))


@dataclass(frozen=True)
class Decision:
    """A retrain's verdict: the challenger promoted or kept out, and why."""

    decided_at: str
    decision: Literal["promoted", "kept"]
    reason: str
    rule: str  # the checks' and promotion rule's fingerprint: a new rule judges again
    experiment: str | None
    challenger: Challenger
    champion: dict[str, Any] | None  # id, experiment and its scores on the same window
    test_window: dict[str, Any]
    versioning: dict[str, Any] | None = None  # where the retrain was kept (or why not)

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        if self.versioning is None:
            del raw["versioning"]
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Decision:
        known = known_fields(cls, raw)
        return cls(**{**known, "challenger": Challenger.from_json(known["challenger"])})
