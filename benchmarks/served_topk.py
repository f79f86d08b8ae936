"""Which served ranking beats popularity? Full-catalogue NDCG@10 and Recall@20 of what is served
(`model`: by default the expected positives, inttower/serving/rank.py), popularity, recent
popularity, the ids-only MF and other rankings built from the model's logit, over seeds.

Variants: `probability` ranks by the model's logit alone (what was served before); `blend β`
by the logit + β·log(1 + positives of the item before the period); `rerank N` takes
popularity's top N unseen items as the candidates (a retrieval stage) and orders them by the
logit. Each run trains the model (params.yaml defaults plus --set) and evaluates it through the
same path as `reports/metrics.json`'s ranking block, with the model's own calibration. Usage:
    MOVIELENS_MIRROR=/path python benchmarks/served_topk.py --seeds 0,1,2,3,4
    python benchmarks/served_topk.py --set data.dataset=synthetic --seeds 0
    python benchmarks/served_topk.py --set serving.prior_days=null   # the whole log's ratings
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from _overrides import parse_overrides  # benchmarks/ is on sys.path: these run as scripts

ROOT = Path(__file__).resolve().parent.parent
DATA_STAGES = ["source", "ingest", "validate", "split", "features", "encoders", "encode"]
BETAS = (1.0, 2.0)
CANDIDATES = (50, 200)


def variants() -> dict[str, Any]:
    def blend(beta: float) -> Any:
        return lambda base: base["logit"] + beta * torch.log1p(base["popularity"])

    def rerank(n: int) -> Any:
        def score(base: dict[str, torch.Tensor]) -> torch.Tensor:
            popular = torch.topk(base["popularity"], n, dim=1).indices
            out = torch.full_like(base["logit"], float("-inf"))
            # candidates keep the model's order, above every other item
            return out.scatter(1, popular, base["logit"].gather(1, popular) + 1e6)

        return score

    return {
        "probability": lambda base: base["logit"],
        **{f"blend {beta}": blend(beta) for beta in BETAS},
        **{f"rerank {n}": rerank(n) for n in CANDIDATES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from inttower.config import load_params
    from inttower.evaluation.calibration import Calibration
    from inttower.evaluation.ranking import RankingTables, ranking_metrics
    from inttower.evaluation.report import ids_mf_probabilities
    from inttower.features.encoded import load_fields, load_split
    from inttower.io import load_tensors, read_json
    from inttower.models.registry import build_model
    from inttower.pipeline.paths import Paths
    from inttower.pipeline.registry import STAGES

    extra = parse_overrides(args.set)
    runs = []
    with tempfile.TemporaryDirectory(prefix="inttower-topk-") as scratch:
        paths = Paths(data=Path(scratch), reports=Path(scratch) / "reports")
        for stage in DATA_STAGES:
            STAGES[stage].run(load_params(ROOT / "params.yaml", extra), paths)
        for seed in [int(seed) for seed in args.seeds.split(",")]:
            params = load_params(ROOT / "params.yaml", {**extra, "seed": seed})
            STAGES["train"].run(params, paths)
            model = build_model(load_fields(paths["encoded"]), params.model)
            model.load_state_dict(load_tensors(paths["model.weights"]))
            valid = load_split(paths["encoded"], "valid")
            test = load_split(paths["encoded"], "test")
            mf, _ = ids_mf_probabilities(params, paths, valid, test)
            row: dict[str, Any] = {"seed": seed}
            tables = RankingTables.read(paths)
            for split in ("valid", "test"):
                calibration = Calibration.from_json(read_json(paths["model.calibration"]))
                result = ranking_metrics(
                    params, tables, model, mf, split, variants(), calibration=calibration
                )
                row[split] = result.metrics if result else None
            runs.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    print(_table(runs))


def _table(runs: list[dict[str, Any]]) -> str:
    names = list(runs[0]["test"])
    # which model-based ranking a choice on valid would make: the best mean valid NDCG@10
    chosen = max(
        (name for name in names if name not in ("popularity", "recent_popularity", "ids_mf")),
        key=lambda name: statistics.fmean(run["valid"][name]["ndcg@10"] for run in runs),
    )
    lines = [
        f"seeds {','.join(str(run['seed']) for run in runs)}; `model` is what is served; best "
        f"model-based ranking on valid NDCG@10: {chosen}",
        "",
        "| ranker | valid NDCG@10 | test Recall@10 | test NDCG@10 | test Recall@20 "
        "| test NDCG@20 | test coverage@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        cells = [_cell([run["valid"][name]["ndcg@10"] for run in runs])]
        for key in ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "coverage@10"):
            cells.append(_cell([run["test"][name][key] for run in runs]))
        lines.append(
            f"| {name}{' (chosen)' if name == chosen else ''} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def _cell(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {spread:.4f}"


if __name__ == "__main__":
    main()
