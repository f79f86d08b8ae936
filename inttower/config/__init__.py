"""Typed parameters loaded from params.yaml: one schema (`schema`), validated on load
(`loading`), with the schedule's cron checked on its own (`cron`). The names below are the
package's face; import them from here."""

from inttower.config.cron import validate_cron
from inttower.config.loading import load_params, parse_value, read_params_file, set_dotted
from inttower.config.schema import (
    DATASETS,
    CheckParams,
    CustomParams,
    DataParams,
    EncoderParams,
    EvaluateParams,
    FeatureParams,
    LabelParams,
    ModelParams,
    Params,
    PromotionParams,
    ScheduleParams,
    ServingParams,
    SplitParams,
    SyntheticParams,
    TrainParams,
    format_instant,
    parse_instant,
    parse_params,
)

__all__ = [
    "DATASETS",
    "CheckParams",
    "CustomParams",
    "DataParams",
    "EncoderParams",
    "EvaluateParams",
    "FeatureParams",
    "LabelParams",
    "ModelParams",
    "Params",
    "PromotionParams",
    "ScheduleParams",
    "ServingParams",
    "SplitParams",
    "SyntheticParams",
    "TrainParams",
    "format_instant",
    "load_params",
    "parse_instant",
    "parse_params",
    "parse_value",
    "read_params_file",
    "set_dotted",
    "validate_cron",
]
