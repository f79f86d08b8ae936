"""What lineage costs on a no-op `dvc repro`: the source fingerprint stage (run every time) and the
data-folder lock, beside the bare `dvc status` DVC itself needs.

Copies the project (or `--project`, e.g. an older checkout to compare with) into a temporary git
repo, reproduces it once with small training params on the real ml-100k, then times no-op runs.
Prints medians of `--repeats` runs. Usage:
    MOVIELENS_MIRROR=../shared/movielens python benchmarks/noop_repro.py
    MOVIELENS_MIRROR=../shared/movielens python benchmarks/noop_repro.py --project /tmp/old
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FILES = ("inttower", "dvc.yaml", "params.yaml", "pyproject.toml", ".dvc/config", ".dvcignore")
SMALL = {"train": {"epochs": 1}, "model": {"hidden_units": [16], "heads": 2, "head_dim": 4}}


def _env(project: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(project),  # the inttower of the project under test, not this one
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("INTTOWER_DATA_DIR", None)
    return env


def _seconds(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if not os.environ.get("MOVIELENS_MIRROR"):
        raise SystemExit("set MOVIELENS_MIRROR (e.g. ../shared/movielens)")
    os.environ["MOVIELENS_MIRROR"] = str(Path(os.environ["MOVIELENS_MIRROR"]).resolve())
    with tempfile.TemporaryDirectory(prefix="noop-repro-") as scratch:
        repo = Path(scratch)
        for name in FILES:
            source = args.project / name
            if source.is_dir():
                shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                (repo / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, repo / name)
        raw = yaml.safe_load((repo / "params.yaml").read_text())
        for section, values in SMALL.items():
            raw[section].update(values)
        (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        env = _env(repo)
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        subprocess.run(["dvc", "repro"], cwd=repo, env=env, check=True, capture_output=True)

        figures: dict[str, list[float]] = {"dvc repro (no-op)": [], "dvc status": []}
        has_source = "source" in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
        if has_source:
            figures["inttower source (alone)"] = []
        for _ in range(args.repeats):
            figures["dvc repro (no-op)"].append(_seconds(["dvc", "repro"], repo, env))
            figures["dvc status"].append(_seconds(["dvc", "status"], repo, env))
            if has_source:
                command = ["inttower", "source", "--data-dir", "data"]
                figures["inttower source (alone)"].append(_seconds(command, repo, env))
        print(f"project {args.project} — medians of {args.repeats} runs (min … max)")
        for name, values in figures.items():
            print(
                f"  {name:26s} {statistics.median(values):6.2f} s"
                f"   ({min(values):.2f} … {max(values):.2f})"
            )
        if has_source:
            print(_lock_cost(repo, env))


def _lock_cost(repo: Path, env: dict[str, str]) -> str:
    """The lock alone, in process: open, flock, read and write the holder record, release."""
    code = (
        "import time, statistics\n"
        "from inttower.pipeline.run_lock import run_lock\n"
        "times = []\n"
        "for _ in range(200):\n"
        "    started = time.perf_counter()\n"
        "    with run_lock('data'): pass\n"
        "    times.append(time.perf_counter() - started)\n"
        "print(f'  run lock (acquire+release)  {statistics.median(times) * 1e3:6.2f} ms')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.rstrip()


if __name__ == "__main__":
    main()
