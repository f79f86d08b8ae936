"""Distributed training from Dagster: torchrun launched through Dagster Pipes.

With `train.nproc × train.nnodes > 1` the training asset runs the same torchrun command as the
CLI (`inttower.training.distributed.torchrun_command`), but through `PipesSubprocessClient`,
with `dagster_project.pipes_worker` as the worker: rank 0 opens the Pipes session, forwards its
log lines and reports the materialization's metadata; the other ranks only train. On a cluster
the same worker runs under `PipesK8sClient` (see the README).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg

from inttower.training import distributed

PIPES_WORKER = "dagster_project.pipes_worker"


def pipes_launcher(
    context: dg.AssetExecutionContext, client: dg.PipesSubprocessClient | None = None
) -> tuple[Callable[..., dict[str, Any]], dict[str, Any]]:
    """A `launcher` for the train stage, and the metadata rank 0 will have reported (filled in
    when the launcher returns)."""
    client = client or dg.PipesSubprocessClient()
    reported: dict[str, Any] = {}

    def runner(command: list[str], env: dict[str, str]) -> int:
        try:
            invocation = client.run(command=command, context=context, env=env)
        except dg.DagsterPipesExecutionError as failed:
            context.log.error(str(failed))
            return 1
        for result in invocation.get_results():
            reported.update(result.metadata or {})
        return 0

    def launch(params: Any, paths: Any, resume: bool) -> dict[str, Any]:
        return distributed.launch(params, paths, resume, runner=runner, module=PIPES_WORKER)

    return launch, reported
