"""Test AUC / logloss / GAUC (and cold/warm-user AUC) of every model over several seeds, beside
the no-model baselines, on the real MovieLens data: the issue's closing-note table.

The data stages run once per split configuration (in-process, through the stage registry, into a
temporary data dir); only train + evaluate run per seed and model. Selection is by validation
AUC inside training (early stopping); test is only reported. Usage:
    MOVIELENS_MIRROR=/path python benchmarks/quality.py                      # everything
    python benchmarks/quality.py --seeds 0,1 --models inttower,dssm --splits temporal
    python benchmarks/quality.py --precision fp32 --json results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _overrides import parse_overrides  # benchmarks/ is on sys.path: these run as scripts

ROOT = Path(__file__).resolve().parent.parent
DATA_STAGES = ["source", "ingest", "validate", "split", "features", "encoders", "encode"]

SPLITS: dict[str, tuple[str, dict[str, Any]]] = {
    "temporal": ("temporal 80/10/10 (default)", {}),
    "temporal_70_10_20": (
        "temporal 70/10/20 (issue's boundaries)",
        {"split.train": 0.7, "split.valid": 0.1, "split.test": 0.2},
    ),
    "paper": ("paper protocol (LEAKY)", {"split.protocol": "paper"}),
}
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "inttower": ("IntTower (CIR on)", {"model.name": "inttower"}),
    "inttower_nocir": ("IntTower (CIR off)", {"model.name": "inttower", "model.cir_weight": 0.0}),
    "dssm": ("DSSM", {"model.name": "dssm"}),
    "dnn": ("DNN (single tower)", {"model.name": "dnn"}),
    "dcnv2": ("DCN-V2 (single tower, cross + deep)", {"model.name": "dcnv2"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    parser.add_argument("--models", default=",".join(MODELS), help=f"subset of {list(MODELS)}")
    parser.add_argument("--splits", default=",".join(SPLITS), help=f"subset of {list(SPLITS)}")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="train.precision (evaluation is fp32 whatever it says; bf16 on a CPU without "
        "native bf16 is many times slower)",
    )
    parser.add_argument("--json", type=Path, help="also write every run's metrics here")
    parser.add_argument("--set", action="append", default=[], help="extra key=value override")
    args = parser.parse_args()

    from inttower.config import load_params
    from inttower.pipeline.paths import Paths
    from inttower.pipeline.registry import STAGES

    seeds = [int(seed) for seed in args.seeds.split(",")]
    models = _choose(args.models, MODELS)
    splits = _choose(args.splits, SPLITS)
    extra = parse_overrides(args.set)
    runs: list[dict[str, Any]] = []
    baselines: dict[str, dict[str, Any]] = {}
    oracles: dict[str, dict[str, Any]] = {}  # synthetic data: the generator's own P(label)
    with tempfile.TemporaryDirectory(prefix="inttower-quality-") as scratch:
        for split in splits:
            # --set reaches the data stages too (e.g. features.genre_profile=true)
            split_overrides = {**SPLITS[split][1], **extra}
            data_params = load_params(ROOT / "params.yaml", split_overrides)
            paths = Paths(data=Path(scratch) / split, reports=Path(scratch) / split / "reports")
            for stage in DATA_STAGES:
                STAGES[stage].run(data_params, paths)
            for model in models:
                for seed in seeds:
                    overrides = {
                        **split_overrides,
                        **MODELS[model][1],
                        "train.precision": args.precision,
                        **extra,
                        "seed": seed,
                    }
                    params = load_params(ROOT / "params.yaml", overrides)
                    started = time.perf_counter()
                    summary = STAGES["train"].run(params, paths)
                    metrics = STAGES["evaluate"].run(params, paths).metrics
                    baselines[split] = metrics["baselines"]
                    if metrics.get("oracle"):
                        oracles[split] = metrics["oracle"]
                    run = {
                        "split": split,
                        "model": model,
                        "seed": seed,
                        "best_epoch": summary.best_epoch,
                        "valid_auc": summary.valid_auc,
                        "seconds": round(time.perf_counter() - started, 1),
                        **{
                            f"{block}_{metric}": metrics[block][metric]
                            for block in ("test", "test_cold", "test_warm")
                            for metric in ("auc", "logloss", "gauc")
                        },
                        "test_ece": metrics["test"]["ece"],
                        # the ids-only MF and (synthetic data) the oracle on the same warm/cold rows
                        **{
                            f"{block}_ids_mf_auc": metrics[block]["ids_mf"]["auc"]
                            for block in ("test_cold", "test_warm")
                        },
                        **{
                            f"{block}_auc": (metrics.get(block) or {}).get("auc")
                            for block in ("oracle_cold", "oracle_warm")
                        },
                        **{
                            f"raw_test_{metric}": metrics["uncalibrated"]["test"][metric]
                            for metric in ("logloss", "ece")
                        },
                    }
                    runs.append(run)
                    print(json.dumps(run), file=sys.stderr, flush=True)
            if not models:  # baselines only
                STAGES["train"].run(load_params(ROOT / "params.yaml", split_overrides), paths)
                baselines[split] = (
                    STAGES["evaluate"]
                    .run(load_params(ROOT / "params.yaml", split_overrides), paths)
                    .metrics["baselines"]
                )
    if args.json:
        args.json.write_text(
            json.dumps({"runs": runs, "baselines": baselines, "oracles": oracles}, indent=2)
        )
    print(_table(runs, baselines, splits, models, seeds, args.precision, oracles))


def _table(
    runs: list[dict[str, Any]],
    baselines: dict[str, dict[str, Any]],
    splits: list[str],
    models: list[str],
    seeds: list[int],
    precision: str,
    oracles: dict[str, dict[str, Any]] | None = None,
) -> str:
    from inttower.evaluation.report import BASELINE_NAMES

    lines = [
        f"seeds {','.join(map(str, seeds))}; train.precision={precision}; evaluation in fp32; "
        "mean ± std over seeds",
        "",
        "| split | model | test AUC | test logloss | test ECE | uncalibrated logloss "
        "| uncalibrated ECE | test GAUC | cold-user AUC | warm-user AUC | min–max test AUC "
        "| best epoch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for split in splits:
        label = SPLITS[split][0]
        for model in models:
            chosen = [run for run in runs if run["split"] == split and run["model"] == model]
            aucs = [run["test_auc"] for run in chosen]
            lines.append(
                f"| {label} | {MODELS[model][0]} | {_mean_std(aucs)} "
                f"| {_mean_std([run['test_logloss'] for run in chosen])} "
                f"| {_mean_std([run['test_ece'] for run in chosen])} "
                f"| {_mean_std([run['raw_test_logloss'] for run in chosen])} "
                f"| {_mean_std([run['raw_test_ece'] for run in chosen])} "
                f"| {_mean_std([run['test_gauc'] for run in chosen])} "
                f"| {_mean_std([run['test_cold_auc'] for run in chosen])} "
                f"| {_mean_std([run['test_warm_auc'] for run in chosen])} "
                f"| {min(aucs):.4f}–{max(aucs):.4f} "
                f"| {','.join(str(run['best_epoch']) for run in chosen)} |"
            )
        for name, description in BASELINE_NAMES.items():
            block = baselines.get(split, {}).get(name)
            if block is None:
                continue
            logloss = "—" if block["logloss"] is None else f"{block['logloss']:.4f}"
            lines.append(
                f"| {label} | {description} | {block['auc']:.4f} | {logloss} "
                "| — | — | — | — | — | — | — | — |"
            )
        oracle = (oracles or {}).get(split)
        if oracle:
            lines.append(
                f"| {label} | the oracle: the generator's own P(label) (the ceiling) "
                f"| {oracle['auc']:.4f} | {oracle['logloss']:.4f} | — | — | — | — | — | — | — | — |"
            )
    return "\n".join(lines)


def _mean_std(values: list[float | None]) -> str:
    present = [value for value in values if value is not None]
    if not present:
        return "—"
    spread = statistics.stdev(present) if len(present) > 1 else 0.0
    return f"{statistics.fmean(present):.4f} ± {spread:.4f}"


def _choose(requested: str, known: dict[str, Any]) -> list[str]:
    chosen = [name for name in requested.split(",") if name]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise SystemExit(f"unknown {unknown}; choose from {list(known)}")
    return chosen


if __name__ == "__main__":
    main()
