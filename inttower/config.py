"""Typed parameters loaded from params.yaml: one schema, validated on load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inttower.errors import ConfigError

DATASETS = (
    "ml-100k",
    "ml-1m",
    "ml-10m",
    "ml-20m",
    "ml-25m",
    "ml-32m",
    "ml-latest-small",
    "synthetic",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticParams(_Strict):
    n_users: int = Field(6000, ge=10)
    n_items: int = Field(3000, ge=10)
    n_events: int = Field(1_000_000, ge=100)


class DataParams(_Strict):
    dataset: Literal[DATASETS] = "ml-100k"  # type: ignore[valid-type]
    synthetic: SyntheticParams = SyntheticParams()


class LabelParams(_Strict):
    drop_ratings: list[float] = [3.0]
    positive_threshold: float = 4.0


class SplitParams(_Strict):
    protocol: Literal["temporal", "paper"] = "temporal"
    train: float = Field(0.8, gt=0, lt=1)
    valid: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitParams:
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"train + valid + test must be 1, got {total:g}")
        return self

    @property
    def leaky(self) -> bool:
        return self.protocol == "paper"


class FeatureParams(_Strict):
    smoothing: float = Field(10.0, ge=0)
    history_length: int = Field(20, ge=1, le=512)
    genre_profile: bool = False
    residuals: bool = True
    recent_windows: list[int] = Field([5, 20])

    @field_validator("recent_windows")
    @classmethod
    def _distinct_positive(cls, windows: list[int]) -> list[int]:
        if any(window < 1 for window in windows) or len(set(windows)) != len(windows):
            raise ValueError(f"windows must be distinct positive event counts, got {windows}")
        return windows


class EncoderParams(_Strict):
    min_count: int = Field(1, ge=1)


class ModelParams(_Strict):
    name: Literal["inttower", "dssm", "dnn"] = "inttower"
    embedding_dim: int = Field(32, ge=1)
    hidden_units: list[int] = Field([300, 300, 128], min_length=1)
    dropout: float = Field(0.3, ge=0, lt=1)
    heads: int = Field(32, ge=1)
    head_dim: int = Field(64, ge=1)
    cir_weight: float = Field(0.1, ge=0)
    cir_temperature: float = Field(0.1, gt=0)
    cir_margin: float = Field(0.0, ge=0)
    l2_embedding: float = Field(1e-6, ge=0)
    tower_bias: bool = True
    id_dropout: float = Field(0.0, ge=0, lt=1)


class TrainParams(_Strict):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(2048, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    objective: Literal["bce", "ranknet"] = "bce"
    patience: int = Field(3, ge=1)
    threads: int = Field(0, ge=0)


class EvaluateParams(_Strict):
    calibration_bins: int = Field(10, ge=2)


class ScheduleParams(_Strict):
    cron: str = "0 3 * * 1"
    timezone: str = "UTC"


class CheckParams(_Strict):
    max_unknown_item_share: float = Field(0.5, ge=0, le=1)
    min_test_auc: float = Field(0.6, ge=0, le=1)


class Params(_Strict):
    seed: int = 42
    data: DataParams = DataParams()
    label: LabelParams = LabelParams()
    split: SplitParams = SplitParams()
    features: FeatureParams = FeatureParams()
    encoders: EncoderParams = EncoderParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    schedule: ScheduleParams = ScheduleParams()
    checks: CheckParams = CheckParams()

    def section(self, dotted: str) -> Any:
        """The value at a dotted key such as `split.train`, for stage fingerprints."""
        value: Any = self
        for part in dotted.split("."):
            value = getattr(value, part)
        return value

    def fingerprint(self, keys: list[str]) -> str:
        """A short hash of the named keys' values: changes exactly when a stage's params do."""
        chosen = {key: _plain(self.section(key)) for key in sorted(keys)}
        blob = json.dumps(chosen, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _plain(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def parse_params(raw: dict[str, Any]) -> Params:
    """Validate a params mapping, raising ConfigError with the dotted path of the first fault."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "<root>"
        raise ConfigError(key, first["msg"]) from None


def load_params(
    path: Path | str = "params.yaml", overrides: dict[str, Any] | None = None
) -> Params:
    """Load params.yaml, apply dotted-key overrides (`{"train.lr": 0.01}`), then validate."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("<file>", f"{path} not found")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError("<root>", f"{path} must hold a mapping, not {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return parse_params(raw)


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested mapping, creating intermediate sections."""
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(dotted, f"{part} is not a section")
    node[leaf] = value
