"""`inttower <stage>`, `inttower run` and `inttower dvc-yaml`: errors in one line, exit non-zero."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inttower.config import Params, load_params, parse_value
from inttower.errors import InttowerError
from inttower.io import atomic_path
from inttower.lifecycle.records import ChampionRecord
from inttower.pipeline.paths import DATA_DIR_ENV, REPORTS_DIR_ENV, Paths
from inttower.pipeline.registry import STAGES, StageSummary, run_stage, stage_names
from inttower.pipeline.run_lock import run_lock

log = logging.getLogger("inttower")


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InttowerError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set train.lr=0.01")
        result[key] = parse_value(key, value)  # as params.yaml reads it: 1e-4 is a number
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inttower", description="Leak-free IntTower pipeline on MovieLens."
    )
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--params", default="params.yaml", help="parameter file")
        sub.add_argument(
            "--data-dir", help=f"where stage outputs live (default ${DATA_DIR_ENV} or data/)"
        )
        sub.add_argument(
            "--reports-dir",
            help=f"where reports go (default ${REPORTS_DIR_ENV}; else reports/ for the project's "
            "data/, <data-dir>/reports for any other data folder)",
        )
        sub.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override a param"
        )

    for name in stage_names():
        sub = commands.add_parser(name, help=STAGES[name].description)
        common(sub)
        if name == "train":
            sub.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    run = commands.add_parser("run", help="run every stage in order (or a slice of them)")
    common(run)
    run.add_argument("--from", dest="first", choices=stage_names(), default=stage_names()[0])
    run.add_argument("--to", dest="last", choices=stage_names(), default=stage_names()[-1])
    retrain = commands.add_parser(
        "retrain",
        help="retrain if data, code or params changed since the champion; promote the challenger "
        "only if it passes the checks and is not worse on the same test window; save a DVC "
        "experiment",
    )
    common(retrain)
    retrain.add_argument("--force", action="store_true", help="retrain even if nothing changed")
    champion = commands.add_parser(
        "champion", help="print the current champion as JSON (or its history, or restore one)"
    )
    common(champion)
    shown = champion.add_mutually_exclusive_group()
    shown.add_argument("--history", action="store_true", help="every promotion and restore")
    shown.add_argument(
        "--restore",
        metavar="EXPERIMENT",
        help="bring back the champion promoted by this experiment (fetched from the git remote "
        "when it is not here) and make it the champion again",
    )
    backtest = commands.add_parser(
        "backtest",
        help="retrain as of N cutoffs EVERY apart at the end of the timeline; score each on its "
        "window beside the first model (frozen) and the no-model baseline",
    )
    common(backtest)
    backtest.add_argument("--windows", type=int, default=6, help="number of windows (default 6)")
    backtest.add_argument("--every", default="7d", help="window length: 7d, 1w, 12h (default 7d)")
    tune = commands.add_parser(
        "tune",
        help="Optuna search over the space in tune.yaml, each trial scored on valid; prints the "
        "best params as a params.yaml patch",
    )
    common(tune)
    tune.add_argument("--space", default="tune.yaml", help="the search space (default tune.yaml)")
    tune.add_argument("--trials", type=int, help="how many trials now (default: the space's)")
    score = commands.add_parser(
        "score",
        help="top-k items for one user from the serving bundle (ONNX Runtime): calibrated "
        "probabilities, seen items excluded",
    )
    common(score)
    score.add_argument("--user-id", type=int, required=True, help="the user's id in the data")
    score.add_argument("--k", type=int, default=10, help="how many items (default 10)")
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")
    score.add_argument("--include-seen", action="store_true", help="keep items already rated")
    score.add_argument(
        "--bundle",
        help="a serving bundle folder (default: the champion's, else <data-dir>/08_serving)",
    )
    dvc = commands.add_parser("dvc-yaml", help="write dvc.yaml from the stage registry")
    dvc.add_argument("--check", action="store_true", help="fail if dvc.yaml is not current")
    dvc.add_argument("--path", default="dvc.yaml")
    return parser


def _paths(args: argparse.Namespace) -> Paths:
    return Paths.choose(data=args.data_dir, reports=args.reports_dir)


def _run_stage(name: str, params: Params, paths: Paths, args: argparse.Namespace) -> StageSummary:
    started = time.perf_counter()
    log.info("stage %s: started", name)
    options = {"resume": args.resume} if name == "train" else {}
    summary = run_stage(STAGES[name], params, paths, front_end="cli", **options)
    log.info("stage %s: done in %.1f s", name, time.perf_counter() - started)
    return summary


def _dvc_yaml(args: argparse.Namespace) -> int:
    from inttower_dvc.dvcfile import render

    text = render()
    target = Path(args.path)
    if args.check:
        if not target.exists() or target.read_text() != text:
            raise InttowerError(f"{target} is stale: run `inttower dvc-yaml` and commit it")
        return 0
    with atomic_path(target) as temporary:
        temporary.write_text(text)
    print(f"wrote {target}")
    return 0


def _registry_command(args: argparse.Namespace) -> int:
    from inttower.lifecycle import champion

    paths = _paths(args)
    if args.command == "champion" and not args.restore:
        if args.history:
            lines = [record.to_json() for record in champion.history(paths)]
            print(json.dumps(lines, indent=2, sort_keys=True))
            return 0
        record = champion.champion_record(paths)
        if record is None:
            raise InttowerError(f"{paths.champion_record}: no champion yet: run `inttower retrain`")
        print(json.dumps(record.to_json(), indent=2, sort_keys=True))
        return 0
    if args.command == "champion":
        with run_lock(paths.data):
            record = _restore(paths, args.restore)
        print(json.dumps(record.to_json(), indent=2, sort_keys=True))
        return 0
    from inttower.lifecycle.retrain import retrain
    from inttower_dvc.commands import DvcVersioning

    overrides = _overrides(args.set)
    params = load_params(args.params, overrides)
    versioning = DvcVersioning(Path("."), Path(args.params), overrides)
    with run_lock(paths.data):
        decision = retrain(params, paths, versioning=versioning, force=args.force)
    print(json.dumps(decision, indent=2, sort_keys=True, default=str))
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from inttower.lifecycle.backtest import run_backtest

    params = load_params(args.params, _overrides(args.set))
    paths = _paths(args)
    with run_lock(paths.data):
        report = run_backtest(params, paths, args.windows, args.every)
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from inttower.lifecycle.tuning import load_space, tune

    params = load_params(args.params, _overrides(args.set))
    space = load_space(args.space, params)
    if args.trials is not None and args.trials < 1:
        raise InttowerError(f"--trials {args.trials}: expected at least 1")
    paths = _paths(args)
    with run_lock(paths.data):
        report = tune(params, paths, space, args.trials)
    best = report["best"]
    print(
        f"best trial {best['trial']}: valid AUC {best['valid_auc']:.4f} "
        f"({len(report['trials'])} trials in {report['study']})"
    )
    print("params.yaml patch:\n" + report["patch"].rstrip())
    print(f"as a DVC experiment: {report['dvc']}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from inttower.serving.scorer import Scorer

    paths = _paths(args)
    if args.bundle:
        bundle = Path(args.bundle)
    elif paths.champion_record.exists():  # once a model is promoted, the champion is served
        bundle = paths.champion_serving
    else:
        bundle = paths["serving"]
    scorer = Scorer.load(bundle)
    top = scorer.top_k(user_id=args.user_id, k=args.k, exclude_seen=not args.include_seen)
    if args.json:
        payload = {
            "user_id": args.user_id,
            "bundle": str(bundle),
            "bundle_id": scorer.bundle_id,
            "model_id": scorer.manifest["model_id"],
            "features_as_of": scorer.features_as_of,
            "exclude_seen": not args.include_seen,
            "rank_by": scorer.rank_by,
            "items": [item.to_json() for item in top],
        }
        print(json.dumps(payload, indent=2))
        return 0
    print(
        f"user {args.user_id}: top {len(top)} of {len(scorer)} items by "
        f"{scorer.rank_by.replace('_', ' ')} ({bundle}, features as of {scorer.features_as_of}); "
        "P(like) beside each"
    )
    for item in top:
        print(f"{item.rank:>4}  {item.probability:.4f}  {item.item_id:>7}  {item.title or ''}")
    return 0


def _restore(paths: Paths, experiment: str) -> ChampionRecord:
    """`dvc exp apply` the experiment (fetched first when needed), check its model is the one its
    champion record names, byte for byte, and make it the champion again; the history keeps
    the lines the experiment did not know."""
    from inttower.lifecycle import champion
    from inttower_dvc.commands import restore_experiment

    kept = champion.history(paths)
    restore_experiment(Path("."), experiment)
    record = champion.champion_record(paths)
    if record is None or record.experiment != experiment:
        named = "no champion" if record is None else f"champion {record.id} of {record.experiment}"
        raise InttowerError(
            f"experiment {experiment} did not promote its model (its record names {named}); "
            "`inttower champion --history` lists the experiments that did"
        )
    restored = [line.to_json() for line in [*champion.history(paths), *kept]]
    merged = {json.dumps(line, sort_keys=True): line for line in restored}
    lines = sorted(merged.values(), key=lambda line: line["promoted_at"])
    with atomic_path(paths.champion_history) as temporary:
        temporary.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    return champion.restore_bundle(paths, record)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `inttower` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("INTTOWER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "dvc-yaml":
            return _dvc_yaml(args)
        if args.command in ("retrain", "champion"):
            return _registry_command(args)
        if args.command == "backtest":
            return _backtest(args)
        if args.command == "score":
            return _score(args)
        if args.command == "tune":
            return _tune(args)
        names = stage_names()
        chosen = (
            names[names.index(args.first) : names.index(args.last) + 1]
            if args.command == "run"
            else [args.command]
        )
        if args.command == "run":
            args.resume = False
        # params are read once, before anything runs: the whole command uses one snapshot
        params = load_params(args.params, _overrides(args.set))
        paths = _paths(args)
        with run_lock(paths.data):
            for name in chosen:
                summary = _run_stage(name, params, paths, args)
                print(json.dumps({name: summary.to_json()}, default=str, sort_keys=True))
        return 0
    except InttowerError as exc:
        if args.traceback:
            raise
        # one line that names the file, line or key; details (failing rows) indented below it
        headline, *details = str(exc).splitlines() or [type(exc).__name__]
        print(f"inttower: error: {headline}", file=sys.stderr)
        for detail in details:
            print(f"    {detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inttower: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
