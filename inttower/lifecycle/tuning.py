"""`inttower tune`: an Optuna search over a declared space, every trial scored on validation.

The space lives in a YAML file (`tune.yaml` at the root): the number of trials, and for each
params key either a range (`low`, `high`, optional `log`, integers when both ends are) or a list
of `choices`. Each trial trains on the pipeline's own encoded splits into its own folder under
`data/tune/` (the pipeline's model is never touched) and is scored by its best validation AUC;
test is never read. Trials report every epoch's validation AUC, and the median pruner stops the
ones below the median of earlier trials at the same epoch. The sampler is seeded with `seed` and
CPU training is deterministic, so the same params and space give the same study. The study (one
row per trial) is an SQLite file under `data/tune/`; a second run continues it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inttower.config import Params, parse_params, set_dotted
from inttower.errors import InttowerError
from inttower.io import write_json
from inttower.pipeline.paths import Paths

log = logging.getLogger("inttower.lifecycle.tuning")

STUDY_FOLDER = "tune"  # under the data directory
STUDY_FILE = "study.db"
REPORT = "tune.json"  # under reports/


@dataclass(frozen=True)
class Dimension:
    """One params key and the values a trial may give it."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


@dataclass(frozen=True)
class SearchSpace:
    """What `tune.yaml` declares."""

    trials: int
    dimensions: tuple[Dimension, ...]


def load_space(path: Path | str, params: Params) -> SearchSpace:
    """Read and check the space: every key must be a params key, every range well formed, and
    every value it can take valid for that key; errors name the file and the key."""
    path = Path(path)
    if not path.exists():
        raise InttowerError(f"{path}: not found: declare the search space (see tune.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InttowerError(f"{path}:{where} not valid YAML") from None
    if not isinstance(raw, dict) or set(raw) - {"trials", "space"}:
        raise InttowerError(f"{path}: expected the keys `trials` and `space` only")
    trials = raw.get("trials")
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise InttowerError(f"{path}: trials: expected a positive integer, got {trials!r}")
    space = raw.get("space")
    if not isinstance(space, dict) or not space:
        raise InttowerError(f"{path}: space: expected a mapping of params keys to ranges")
    dimensions = tuple(_dimension(path, key, spec, params) for key, spec in space.items())
    return SearchSpace(trials=trials, dimensions=dimensions)


def _dimension(path: Path, key: Any, spec: Any, params: Params) -> Dimension:
    where = f"{path}: space.{key}"
    if not isinstance(spec, dict):
        raise InttowerError(f"{where}: expected {{low, high[, log]}} or {{choices: [...]}}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
            raise InttowerError(f"{where}: choices: expected a non-empty list and nothing else")
        if not all(value is None or isinstance(value, int | float | str) for value in choices):
            # Optuna stores categorical choices as scalars only
            raise InttowerError(f"{where}: choices: expected numbers, strings, booleans or null")
        dimension = Dimension(key=str(key), choices=tuple(choices))
        values = list(choices)
    else:
        unknown = set(spec) - {"low", "high", "log"}
        low, high, use_log = spec.get("low"), spec.get("high"), spec.get("log", False)
        if unknown or not all(_number(v) for v in (low, high)) or not isinstance(use_log, bool):
            raise InttowerError(f"{where}: expected numbers `low`, `high` and a boolean `log`")
        if not low < high or (use_log and low <= 0):
            raise InttowerError(f"{where}: expected low < high (and low > 0 with log: true)")
        dimension = Dimension(key=str(key), low=low, high=high, log=use_log)
        values = [low, high]
    for value in values:  # an unknown key or a value the key refuses fails here, named
        try:
            with_value(params, {dimension.key: value})
        except InttowerError as error:
            raise InttowerError(f"{where}: {error}") from None
    return dimension


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def with_value(params: Params, overrides: dict[str, Any]) -> Params:
    """`params` with dotted overrides, validated: the schema is strict, so a key params.yaml does
    not know is refused by name, as it is when params.yaml itself is loaded."""
    raw = params.model_dump(mode="json")
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    return parse_params(raw)


def tune(params: Params, paths: Paths, space: SearchSpace, trials: int | None = None) -> dict:
    """Run the study (`trials` more, default the space's), then write reports/tune.json and
    return it: the best trial's valid AUC and params, and every trial."""
    import optuna

    from inttower.training.train import train_model

    encoded = paths["encoded"]
    if not encoded.exists():
        raise InttowerError(f"{encoded} not found: run `inttower run --to encode` first")
    folder = paths.data / STUDY_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"inttower-{params.model.name}",
        storage=f"sqlite:///{(folder / STUDY_FILE).resolve()}",
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=params.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )

    def objective(trial: optuna.Trial) -> float:
        chosen = {dimension.key: _suggest(trial, dimension) for dimension in space.dimensions}
        trial_params = with_value(params, chosen)
        trial_paths = _trial_paths(paths, folder / f"trial-{trial.number:04d}")

        def report(epoch: int, valid_auc: float) -> None:
            trial.report(valid_auc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"valid AUC {valid_auc:.4f} after epoch {epoch}")

        summary = train_model(trial_params, trial_paths, progress=False, on_epoch=report)
        if summary is None or summary.valid_auc is None:
            raise InttowerError(f"trial {trial.number}: training returned no validation AUC")
        log.info("trial %d: valid AUC %.4f with %s", trial.number, summary.valid_auc, chosen)
        return float(summary.valid_auc)

    study.optimize(objective, n_trials=trials or space.trials)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise InttowerError("no trial completed: every one was pruned or failed")
    best = study.best_trial
    report = {
        "study": str(folder / STUDY_FILE),
        "scored_on": "valid (best epoch's AUC); test is never read",
        "best": {"trial": best.number, "valid_auc": best.value, "params": best.params},
        "patch": patch(best.params),
        "dvc": "dvc exp run " + " ".join(f"-S {k}={_plain(v)}" for k, v in best.params.items()),
        "trials": [_trial_row(trial) for trial in study.trials],
    }
    write_json(report, paths.reports / REPORT)
    return report


def _trial_row(trial: Any) -> dict[str, Any]:
    return {
        "trial": trial.number,
        "state": trial.state.name,
        "valid_auc": trial.value,
        "params": trial.params,
        "epochs_reported": len(trial.intermediate_values),
    }


def _suggest(trial: Any, dimension: Dimension) -> Any:
    if dimension.choices is not None:
        return trial.suggest_categorical(dimension.key, list(dimension.choices))
    if dimension.integer:
        return trial.suggest_int(dimension.key, dimension.low, dimension.high, log=dimension.log)
    return trial.suggest_float(dimension.key, dimension.low, dimension.high, log=dimension.log)


def _trial_paths(paths: Paths, folder: Path) -> Paths:
    """A trial's own data folder whose encoded splits are the pipeline's (a link, not a copy)."""
    trial = Paths.for_data(folder)
    link = trial["encoded"]
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        os.symlink(paths["encoded"].resolve(), link, target_is_directory=True)
    return trial


def patch(best: dict[str, Any]) -> str:
    """The best params as a params.yaml fragment (nested sections, like the file)."""
    nested: dict[str, Any] = {}
    for dotted, value in sorted(best.items()):
        set_dotted(nested, dotted, value)
    return yaml.safe_dump(nested, sort_keys=True, default_flow_style=False)


def _plain(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)
