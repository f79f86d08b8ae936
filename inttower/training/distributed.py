"""Data-parallel training on PyTorch's own engine: DistributedDataParallel, launched by torchrun.

With `train.nproc × train.nnodes > 1` the train stage does not train in its own process: it
launches `python -m torch.distributed.run` (torchrun) with `inttower.training.worker` as the
worker, and waits.
Every rank builds the same model from the same seed, reads its own shard of each global batch
(the epoch's permutation is the same on every rank), and DDP all-reduces the gradients; rank 0
alone validates (the scores are broadcast, so every rank stops at the same epoch), checkpoints,
logs and writes the model. gloo on CPU, NCCL on CUDA. A rank that dies makes torchrun stop the
others; the stage then fails with one line and writes nothing (`--resume` continues from the
last checkpoint).

`train.batch_size` is the global batch: each of N ranks takes batch_size / N rows a step, so the
optimiser sees the same number of steps and rows per step as one process; the learning rate
needs no scaling. (The contrastive term's in-batch negatives are per rank: N times fewer.)
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from inttower.config import Params
from inttower.errors import ConfigError, InttowerError
from inttower.io import read_json, write_json
from inttower.pipeline.paths import Paths

logger = logging.getLogger("inttower.training")

WORKER_MODULE = "inttower.training.worker"
WORKER_ENV = "INTTOWER_DDP_WORKER"  # set for the workers torchrun starts: they train, never launch
RDZV_ENDPOINT_ENV = "INTTOWER_RDZV_ENDPOINT"  # host:port of the rendezvous, for nnodes > 1
RDZV_ID_ENV = "INTTOWER_RDZV_ID"


class RankFailed(InttowerError):
    """A training rank died or raised; torchrun stopped the others."""


@dataclass(frozen=True)
class Rank:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's rows of one global batch (sizes differ by at most one across ranks)."""
        return index.tensor_split(self.world_size)[self.rank]


def nproc(params: Params) -> int:
    """`train.nproc` resolved: `auto` is one process per visible GPU (one on a CPU)."""
    if params.train.nproc == "auto":
        wants_cuda = params.train.device != "cpu" and torch.cuda.is_available()
        return max(1, torch.cuda.device_count()) if wants_cuda else 1
    return int(params.train.nproc)


def world_size(params: Params) -> int:
    return nproc(params) * params.train.nnodes


def in_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def torchrun_command(
    params: Params, worker_args: list[str], module: str = WORKER_MODULE
) -> list[str]:
    """The torchrun command line: standalone on one node; torchrun's c10d rendezvous across
    nodes (every node runs the same stage with the same params and rendezvous variables)."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc(params)}"]
    if params.train.nnodes == 1:
        command.append("--standalone")
    else:
        endpoint, job = os.environ.get(RDZV_ENDPOINT_ENV), os.environ.get(RDZV_ID_ENV)
        if not endpoint or not job:
            raise ConfigError(
                "train.nnodes",
                f"{params.train.nnodes} nodes need ${RDZV_ENDPOINT_ENV} (host:port of the "
                f"rendezvous) and ${RDZV_ID_ENV} (one id per job) on every node",
            )
        command += [
            f"--nnodes={params.train.nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}",
            f"--rdzv-id={job}",
        ]
    return [*command, "-m", module, *worker_args]


# Runs a command with extra environment variables and returns its exit status: a subprocess by
# default; the Dagster layer passes one that launches through Dagster Pipes.
Runner = Callable[[list[str], dict[str, str]], int]


def run_subprocess(command: list[str], env: dict[str, str]) -> int:
    return subprocess.run(command, env={**os.environ, **env}, check=False).returncode


def launch(
    params: Params,
    paths: Paths,
    resume: bool,
    runner: Runner = run_subprocess,
    module: str = WORKER_MODULE,
) -> dict[str, Any]:
    """Run training under torchrun and return rank 0's summary; a failed rank is one error.
    `module` is the worker torchrun starts (this one, or a wrapper that reports to Dagster)."""
    paths.staging.mkdir(parents=True, exist_ok=True)
    snapshot = paths.staging / f"ddp-params-{os.getpid()}.json"
    summary = paths.staging / f"ddp-summary-{os.getpid()}.json"
    summary.unlink(missing_ok=True)
    # the run's params snapshot, exactly: the workers never read params.yaml themselves
    write_json(params.model_dump(mode="json"), snapshot)
    worker_args = [
        "--params",
        str(snapshot),
        "--data-dir",
        str(paths.data),
        "--reports-dir",
        str(paths.reports),
        "--summary",
        str(summary),
        *(["--resume"] if resume else []),
    ]
    command = torchrun_command(params, worker_args, module)
    logger.info("training on %d processes: %s", world_size(params), " ".join(command))
    try:
        returncode = runner(command, {WORKER_ENV: "1"})
    finally:
        snapshot.unlink(missing_ok=True)
    if returncode != 0 or not summary.exists():
        raise RankFailed(
            f"distributed training failed: torchrun exited with {returncode} (a rank "
            "died or raised; its traceback is above); no model was written, "
            "`inttower train --resume` continues from the last checkpoint"
        )
    try:
        return read_json(summary)
    finally:
        summary.unlink(missing_ok=True)


def join(device_type: str) -> Rank:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA)."""
    rank = Rank(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if device_type == "cuda":
        torch.cuda.set_device(rank.local_rank)
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return rank


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
