"""Pre-ranking latency from the item cache: score 1k and 10k candidates for one user and for a
batch of users, running only the user tower and the MaxSim (plus the cached item biases).

An untrained IntTower at the official configuration is enough: latency does not depend on the
weights. Candidates are synthetic item inputs with the tiny fields' shapes of ml-100k (no data
needed). Prints the median (and p90) of many runs. Usage:
    python benchmarks/scoring_latency.py --repeats 50 --users 1,64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from inttower.config import FeatureParams, ModelParams
from inttower.features.encoded import FieldSpec
from inttower.features.features import (
    DENSE_ITEM,
    DENSE_USER,
    RECENT_RATE_PREFIX,
    RECENT_RESIDUAL_PREFIX,
    RESIDUAL,
    dense_tower,
)
from inttower.models import ItemCache, build_model

RECENT_PREFIXES = (RECENT_RATE_PREFIX, RECENT_RESIDUAL_PREFIX)

# ml-100k's encoded fields (vocabulary sizes from fields.json of the default split); the dense
# ones are those the default `features` params produce.
_DEFAULTS = FeatureParams()
DENSE = [
    *DENSE_USER,
    *DENSE_ITEM,
    *(RESIDUAL if _DEFAULTS.residuals else ()),
    *(f"{prefix}{window}" for window in _DEFAULTS.recent_windows for prefix in RECENT_PREFIXES),
]
FIELDS = [
    FieldSpec("user_id", "sparse", "user", vocab_size=752),
    FieldSpec("gender", "sparse", "user", vocab_size=4),
    FieldSpec("age_bucket", "sparse", "user", vocab_size=9),
    FieldSpec("occupation", "sparse", "user", vocab_size=23),
    FieldSpec("zip_prefix", "sparse", "user", vocab_size=109),
    FieldSpec("history", "sequence", "user", vocab_size=1581, length=20),
    FieldSpec("item_id", "sparse", "item", vocab_size=1581),
    FieldSpec("decade", "sparse", "item", vocab_size=10),
    FieldSpec("genres", "sequence", "item", vocab_size=20, length=6),
    *(FieldSpec(name, "dense", dense_tower(name)) for name in DENSE),
]


def _inputs(tower: str, rows: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    batch = {}
    for spec in FIELDS:
        if spec.tower != tower:
            continue
        if spec.kind == "dense":
            batch[spec.name] = torch.randn(rows, generator=generator)
        else:
            shape = (rows, spec.length) if spec.kind == "sequence" else (rows,)
            batch[spec.name] = torch.randint(1, spec.vocab_size, shape, generator=generator)
    return batch


def _time(call, repeats: int) -> tuple[float, float]:
    call()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default="1000,10000")
    parser.add_argument("--users", default="1,64", help="users per request")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--model", default="inttower")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = build_model(FIELDS, ModelParams(name=args.model)).eval()
    print(f"{args.model}, official sizes, {torch.get_num_threads()} threads; medians (p90) in ms")
    print("| candidates | users | build cache | score (candidates per user) | per user |")
    print("|---|---|---|---|---|")
    for n_candidates in (int(value) for value in args.candidates.split(",")):
        catalogue = _inputs("item", n_candidates, generator)
        build_median, _ = _time(
            lambda: ItemCache.build(model, catalogue),  # noqa: B023
            max(3, args.repeats // 10),
        )
        cache = ItemCache.build(model, catalogue)
        for n_users in (int(value) for value in args.users.split(",")):
            users = _inputs("user", n_users, generator)
            median, p90 = _time(lambda: cache.score(users), args.repeats)  # noqa: B023
            print(
                f"| {n_candidates:,} | {n_users} | {build_median:.1f} | {median:.2f} ({p90:.2f}) "
                f"| {median / n_users:.3f} |"
            )


if __name__ == "__main__":
    main()
