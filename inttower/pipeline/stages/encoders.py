"""The `encoders` stage: fit vocabularies and scalers on train."""

from __future__ import annotations

from dataclasses import dataclass

from inttower.config import Params
from inttower.features.encoders import fit_encoders
from inttower.io import Summary, read_parquet
from inttower.pipeline.paths import Paths


@dataclass(frozen=True)
class EncodersSummary(Summary):
    fitted_on: str
    vocabulary_sizes: dict[str, int]  # field -> vocabulary size


def run(params: Params, paths: Paths) -> EncodersSummary:
    """Fit vocabularies and scalers on the train split only."""
    fitted = fit_encoders(
        read_parquet(paths["features.events"]),
        read_parquet(paths["features.users"]),
        read_parquet(paths["features.items"]),
        params.encoders,
        leaky_scaler=params.split.leaky,
    )
    fitted.save(paths["encoders"])
    return EncodersSummary(
        fitted_on=fitted.fitted_on,
        vocabulary_sizes={name: len(values) for name, values in fitted.vocabularies.items()},
    )
