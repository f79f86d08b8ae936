"""Does IntTower learn the id signal? Warm/cold test AUC per configuration and seed on synthetic
data, beside the ids-only MF, the features-alone LR and the generator's oracle.

The data stages run once; each configuration trains per seed (CPU or CUDA, `--device`); the
whole evaluation stage (baselines, oracle, calibration) runs for every run, so each row is
what `reports/metrics.json` would say. Per epoch it also logs warm and cold valid AUC and the
gradient norm of each parameter group (id path, id embeddings inside the towers, other
embeddings, MLPs, heads), the learning curves the diagnosis rests on. Usage:
    python benchmarks/id_signal.py --events 1000000 --seeds 0,1,2,3,4 --configs base,ids
    python benchmarks/id_signal.py --events 200000 --users 2000 --items 1000 --seeds 0 \
        --set model.hidden_units=[128,64] --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _overrides import parse_overrides  # benchmarks/ is on sys.path: these run as scripts

if TYPE_CHECKING:
    from inttower.training.card import TrainSummary

ROOT = Path(__file__).resolve().parent.parent
DATA_STAGES = ["source", "ingest", "validate", "split", "features", "encoders", "encode"]
CONFIGS: dict[str, dict[str, Any]] = {
    "base": {"model.id_dim": 0, "train.id_lr": None},  # the id path off
    "ids": {"model.id_dim": 32, "train.id_lr": None},  # one learning rate for everything
    "ids_lr": {"model.id_dim": 32, "train.id_lr": 1e-2},
    "ids_lr_nodrop": {"model.id_dim": 32, "train.id_lr": 1e-2, "model.id_dropout": 0.0},
    "nodrop": {"model.id_dim": 0, "train.id_lr": None, "model.id_dropout": 0.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic", help="synthetic, or a real one: ml-100k")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--configs", default="base,ids,ids_lr")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--set", action="append", default=[], help="key=value for every run")
    parser.add_argument("--json", type=Path, help="also write every run here")
    args = parser.parse_args()

    from inttower.config import load_params
    from inttower.pipeline.paths import Paths
    from inttower.pipeline.registry import STAGES

    shape = {
        "data.synthetic.n_events": args.events,
        "data.synthetic.n_users": args.users,
        "data.synthetic.n_items": args.items,
    }
    data_overrides = {
        "data.dataset": args.dataset,
        **(shape if args.dataset == "synthetic" else {}),
        "train.device": args.device,
        "checks.min_auc_gain_over_ids_mf": -1.0,
        **parse_overrides(args.set),
    }
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="inttower-ids-") as scratch:
        paths = Paths(data=Path(scratch), reports=Path(scratch) / "reports")
        started = time.perf_counter()
        for stage in DATA_STAGES:
            STAGES[stage].run(load_params(ROOT / "params.yaml", data_overrides), paths)
        print(f"data stages: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        for seed in [int(seed) for seed in args.seeds.split(",")]:
            for config in args.configs.split(","):
                overrides = {**data_overrides, **CONFIGS[config], "seed": seed}
                params = load_params(ROOT / "params.yaml", overrides)
                started = time.perf_counter()
                summary = STAGES["train"].run(params, paths)
                trained = time.perf_counter() - started
                metrics = STAGES["evaluate"].run(params, paths).metrics
                run = _row(config, seed, summary, metrics, trained)
                runs.append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    print(_table(runs))


def _row(
    config: str, seed: int, summary: TrainSummary, metrics: dict[str, Any], trained: float
) -> dict[str, Any]:
    base = metrics["baselines"]
    return {
        "config": config,
        "seed": seed,
        "best_epoch": summary.best_epoch,
        "train_seconds": round(trained, 1),
        "auc": metrics["test"]["auc"],
        "logloss": metrics["test"]["logloss"],
        "warm_auc": metrics["test_warm"]["auc"],
        "cold_auc": metrics["test_cold"]["auc"],
        "mf_auc": base["ids_mf"]["auc"],
        "mf_logloss": base["ids_mf"]["logloss"],
        "mf_warm_auc": metrics["test_warm"]["ids_mf"]["auc"],
        "mf_cold_auc": metrics["test_cold"]["ids_mf"]["auc"],
        "lr_auc": base["dense_logistic"]["auc"],
        "lr_logloss": base["dense_logistic"]["logloss"],
        "rates_auc": base["user_item_pos_rate_logits"]["auc"],
        "oracle_auc": (metrics.get("oracle") or {}).get("auc"),
        "oracle_warm_auc": (metrics.get("oracle_warm") or {}).get("auc"),
        "oracle_cold_auc": (metrics.get("oracle_cold") or {}).get("auc"),
    }


def _table(runs: list[dict[str, Any]]) -> str:
    columns = ["auc", "logloss", "warm_auc", "cold_auc", "mf_auc", "mf_warm_auc", "lr_auc",
               "rates_auc", "oracle_auc", "oracle_warm_auc", "best_epoch"]  # fmt: skip
    lines = ["| config | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for config in dict.fromkeys(run["config"] for run in runs):
        chosen = [run for run in runs if run["config"] == config]
        cells = []
        for column in columns:
            values = [run[column] for run in chosen if run[column] is not None]
            if not values:
                cells.append("—")
            elif column == "best_epoch":
                cells.append(",".join(str(value) for value in values))
            else:
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.fmean(values):.4f} ± {spread:.4f}")
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
