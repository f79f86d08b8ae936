"""The params schema: every section as a strict, frozen pydantic model, validated as a whole, and
a validation error told as one line with its dotted key."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from inttower.config.cron import validate_cron
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
    "custom",
)


class _Strict(BaseModel):
    # strict: no silent coercion (`true` is not 1, "0.01" is not a number, 2.5 is not an int);
    # ints still count as floats. allow_inf_nan: `.inf` and `.nan` are never a sane setting.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class SyntheticParams(_Strict):
    n_users: int = Field(6000, ge=10)
    n_items: int = Field(3000, ge=10)
    n_events: int = Field(1_000_000, ge=100)


class CustomParams(_Strict):
    # your own event log: parquet or CSV in the canonical schema (inttower/data/custom.py)
    interactions: str | None = None
    users: str | None = None
    items: str | None = None


class DataParams(_Strict):
    dataset: Literal[DATASETS] = "ml-100k"  # type: ignore[valid-type]
    synthetic: SyntheticParams = SyntheticParams()
    custom: CustomParams = CustomParams()
    # the world as it was then: only events strictly before this instant exist for any stage;
    # kept as a normalized UTC ISO-8601 string (a date means its midnight UTC)
    as_of: str | None = None

    @model_validator(mode="after")
    def _custom_needs_interactions(self) -> DataParams:
        if self.dataset == "custom" and not self.custom.interactions:
            raise ValueError(
                "dataset `custom` needs data.custom.interactions: a parquet or CSV file with "
                "user_id, item_id, rating, timestamp"
            )
        return self

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of_text(cls, value: Any) -> Any:
        # YAML reads an unquoted 1998-03-01 as a date and 1998-03-01 12:00:00 as a datetime
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        return value

    @field_validator("as_of")
    @classmethod
    def _as_of_instant(cls, value: str | None) -> str | None:
        return None if value is None else format_instant(parse_instant(value))

    @property
    def cutoff(self) -> int | None:
        """`as_of` in unix seconds, the unit of every event timestamp; None: no cutoff."""
        return None if self.as_of is None else int(parse_instant(self.as_of).timestamp())


def parse_instant(text: str) -> dt.datetime:
    """An ISO-8601 date or datetime as an aware UTC datetime (naive means UTC)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"expected an ISO-8601 date or datetime such as 1998-03-01 or 1998-03-01T12:00:00Z, "
            f"got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def format_instant(moment: dt.datetime) -> str:
    """The one spelling of an instant in params and reports: `1998-03-01T00:00:00Z`."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LabelParams(_Strict):
    # the paper drops 3 of 1–5 stars; on half-star datasets (ml-10m, ml-20m/25m/32m,
    # ml-latest-small) 3.5 is no clearer a dislike than 3, so the neutral band is 3–3.5
    # (ml-100k and ml-1m have whole stars only: nothing changes there)
    drop_ratings: list[float] = [3.0, 3.5]
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
    name: Literal["inttower", "dssm", "dnn", "dcnv2"] = "inttower"
    embedding_dim: int = Field(32, ge=1)
    hidden_units: list[int] = Field([300, 300, 128], min_length=1)
    dropout: float = Field(0.3, ge=0, lt=1)
    heads: int = Field(32, ge=1)
    head_dim: int = Field(64, ge=1)
    cir_weight: float = Field(0.1, ge=0)
    cir_temperature: float = Field(0.1, gt=0)
    cir_margin: float = Field(0.0, ge=0)
    cir_mask_same_user: bool = False  # also mask in-batch negatives of the row's own user
    l2_embedding: float = Field(1e-6, ge=0)
    tower_bias: bool = True
    id_dropout: float = Field(0.0, ge=0, lt=1)
    # IntTower: a direct user-id × item-id dot product of this size inside the FE-Block score
    # (0 = off); see inttower/models/towers.py
    id_dim: int = Field(0, ge=0)
    cross_layers: int = Field(3, ge=1, le=8)  # dcnv2: cross layers beside the deep network


class TrainParams(_Strict):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(2048, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    id_lr: float | None = Field(None, gt=0)  # the id path's learning rate (model.id_dim); null = lr
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    objective: Literal["bce", "ranknet"] = "bce"
    patience: int = Field(3, ge=1)
    threads: int = Field(0, ge=0)
    calibration: Literal["auto", "platt", "temperature", "none"] = "auto"
    # processes per node (torchrun + DistributedDataParallel when the world is > 1); auto = one
    # per visible GPU, one on a CPU
    nproc: int | Literal["auto"] = 1
    nnodes: int = Field(1, ge=1)

    @field_validator("nproc")
    @classmethod
    def _positive_nproc(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"must be at least 1 or 'auto', got {value}")
        return value


class EvaluateParams(_Strict):
    calibration_bins: int = Field(10, ge=2)
    # full-catalogue top-K metrics (inttower/evaluation/ranking.py): Recall@K and NDCG@K each
    ranking_k: list[int] = Field([10, 20], min_length=1)

    @field_validator("ranking_k")
    @classmethod
    def _positive_ks(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks) or len(set(ks)) != len(ks):
            raise ValueError(f"expected distinct positive integers, got {ks}")
        return ks


class ServingParams(_Strict):
    # what `inttower score` ranks the catalogue by, and the ranking metrics measure
    # (inttower/serving/rank.py): `expected_positives` = log(1 + the item's ratings in the last
    # prior_days days) + log of the calibrated P(like): how likely the user is to pick the item
    # *and* like it; `probability`: P(like | rated) alone, what the model is trained on
    rank_by: Literal["expected_positives", "probability"] = "expected_positives"
    prior_days: float | None = Field(30.0, gt=0)  # the ratings window; null = the whole log


class ScheduleParams(_Strict):
    cron: str = "0 3 * * 1"
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _standard_cron(cls, cron: str) -> str:
        return validate_cron(cron)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {zone!r}: expected an IANA name such as 'UTC' or "
                "'Europe/Berlin'"
            ) from None
        return zone


class CheckParams(_Strict):
    max_unknown_item_share: float = Field(0.5, ge=0, le=1)
    min_test_auc: float = Field(0.6, ge=0, le=1)
    # a model must beat the evaluation's own no-model and features-alone baselines on test AUC
    min_auc_gain_over_rate_logits: float = Field(0.0, ge=-1, le=1)
    min_auc_gain_over_dense_logistic: float = Field(0.0, ge=-1, le=1)
    # ... and the ids-only matrix factorisation: the collaborative signal a model must not miss
    min_auc_gain_over_ids_mf: float = Field(0.0, ge=-1, le=1)


class PromotionParams(_Strict):
    # a challenger replaces the champion unless it is worse, on the same fresh test window, by
    # more than these (and it passed every blocking check)
    max_auc_drop: float = Field(0.002, ge=0, le=1)
    max_logloss_rise: float = Field(0.002, ge=0)
    # ... or its full-catalogue NDCG@10 lower by more than this (null = off: the top-K is only
    # reported); on, the champion is ranked again on the same window (a few seconds on ml-100k)
    max_ndcg_drop: float | None = Field(None, ge=0, le=1)


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
    serving: ServingParams = ServingParams()
    schedule: ScheduleParams = ScheduleParams()
    checks: CheckParams = CheckParams()
    promotion: PromotionParams = PromotionParams()

    @model_validator(mode="after")
    def _ndcg_rule_needs_k10(self) -> Params:
        if self.promotion.max_ndcg_drop is not None and 10 not in self.evaluate.ranking_k:
            raise ConfigError(
                "promotion.max_ndcg_drop",
                f"compares NDCG@10, but evaluate.ranking_k {self.evaluate.ranking_k} has no 10",
            )
        return self

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
        raise ConfigError(key, _describe(first)) from None


# Errors about a value's type or range read better with the value itself; a validator's own
# message (value_error) already says what it got.
_SHOW_INPUT = {"int_type", "float_type", "bool_type", "string_type", "list_type", "finite_number"}
_SHOW_INPUT |= {"literal_error", "dict_type", "model_type", "model_attributes_type"}
_NUMBER = re.compile(r"[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
# An exponent without a dot, which YAML 1.1 (PyYAML, so `--set`) reads as text: 1e-4.
_DOTLESS_EXPONENT = re.compile(r"([-+]?\d+)([eE][-+]?\d+)")


def _describe(error: ErrorDetails) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] not in _SHOW_INPUT:
        return message
    value = error["input"]
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        dotless = _DOTLESS_EXPONENT.fullmatch(value.strip())
        if dotless:
            fixed = f"{dotless.group(1)}.0{dotless.group(2)}"
            return f"{message}, got the text {value!r}: write it unquoted, as {fixed}"
        return f"{message}, got the text {value!r}: write the number without quotes"
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    return f"{message}, got {shown} ({type(value).__name__})"
