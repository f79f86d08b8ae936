"""The training loop: seeded, resumable, early-stopped on validation AUC."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from inttower.config import Params
from inttower.errors import InttowerError
from inttower.evaluation.calibration import fit_calibration
from inttower.evaluation.metrics import auc, finite_or_none, logloss
from inttower.features.encoded import encoded_hashes, load_split, split_path
from inttower.io import atomic_path, write_json
from inttower.models.losses import objective_loss
from inttower.models.registry import build_model
from inttower.pipeline.paths import Paths
from inttower.training import distributed
from inttower.training.allocator import reused_host_memory
from inttower.training.batching import DeviceSplit, epoch_seed, predict_logits
from inttower.training.checkpoint import (
    TrainingState,
    clear_checkpoints,
    load_checkpoint,
    model_state,
    save_checkpoint,
)
from inttower.training.device import Precision, reproducible, select_device
from inttower.training.pages import release_file_pages

logger = logging.getLogger("inttower.training")


class TrainingError(InttowerError):
    """Training cannot go on (the loss became NaN or infinite)."""


PREDICT_BATCH = 8192
# the params a checkpoint depends on: resuming under any other value starts afresh
CHECKPOINT_KEYS = ["seed", "model", "train"]


def train_model(
    params: Params,
    paths: Paths,
    resume: bool = False,
    progress: bool = True,
    launcher: Callable[..., dict[str, Any]] | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> dict[str, Any] | None:
    """Train `model.name` early-stopped on validation AUC: best weights + model card, a checkpoint
    per epoch, train_history.json. `resume` continues a matching checkpoint to the same result.
    With more than one process (`train.nproc`, `train.nnodes`) it launches torchrun and returns
    rank 0's summary (`launcher`: how, default a subprocess; Dagster launches through Pipes);
    inside a torchrun worker it is one rank (inttower/training/distributed.py), and only rank 0
    returns a summary (the others None). `on_epoch(epoch, valid_auc)` hears each epoch's
    validation (one process only): a tuner reports it and may stop the run by raising."""
    if distributed.world_size(params) > 1 and not distributed.in_worker():
        return (launcher or distributed.launch)(params, paths, resume)
    device = select_device(params.train.device)
    rank = distributed.join(device.type) if distributed.in_worker() else None
    try:
        return _train(params, paths, resume, progress, device, rank, on_epoch)
    finally:
        if rank is not None:
            distributed.leave()


def _train(
    params: Params,
    paths: Paths,
    resume: bool,
    progress: bool,
    device: torch.device,
    rank: distributed.Rank | None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> dict[str, Any] | None:
    if rank is not None and device.type == "cuda":
        device = torch.device("cuda", rank.local_rank)
    main = rank is None or rank.is_main
    world = 1 if rank is None else rank.world_size
    precision = Precision.for_device(device, params.train.precision)
    started = time.perf_counter()
    with reproducible(params, device), reused_host_memory(device):
        train_split = load_split(paths["encoded"], "train")
        valid_split = load_split(paths["encoded"], "valid")
        hashes = encoded_hashes(paths["encoded"])
        fingerprint = _checkpoint_fingerprint(params, device, hashes)

        model = build_model(train_split.fields, params.model).to(device)
        # every rank built the same weights from the same seed; DDP all-reduces the gradients
        stepped = model if rank is None else _data_parallel(model, device)
        optimizer = build_optimizer(model, params)
        scaler = precision.make_scaler()
        restored = None
        if resume:
            restored = load_checkpoint(paths.checkpoints, fingerprint, model, optimizer, scaler)
        elif main:
            clear_checkpoints(paths.checkpoints)
        if restored is None:
            state, best_state = TrainingState(), model_state(model)
        else:
            state, best_state = restored
            if main:
                logger.info("resuming after epoch %d from %s", state.epoch, paths.checkpoints)
        resumed_from = state.epoch if restored is not None else None
        epoch_seconds: list[float] = []  # this process's epochs only (the run log's business)

        train_data = DeviceSplit(train_split, device)
        valid_data = DeviceSplit(valid_split, device)
        del train_split, valid_split
        monitor_valid = _has_both_classes(valid_data)
        if not monitor_valid and main:
            logger.warning(
                "validation split lacks a label class: no early stopping, last epoch kept"
            )

        while not state.finished:
            epoch = state.epoch + 1
            epoch_started = time.perf_counter()
            last_auc = state.history[-1]["valid_auc"] if state.history else None
            mean_loss, train_seconds = _train_epoch(
                stepped, model, optimizer, scaler, precision, train_data, params, epoch,
                progress and main, last_auc, rank,
            )  # fmt: skip
            if not math.isfinite(mean_loss):
                raise TrainingError(
                    f"training diverged in epoch {epoch}: mean loss is {mean_loss}; "
                    f"lower train.lr (now {params.train.lr:g})"
                )
            # the pass over a mapped split is done: its pages go back to the file cache, so
            # peak RSS is one pass's, not the train and valid splits' together
            release_file_pages(split_path(paths["encoded"], "train"))
            valid_auc, valid_logloss = _shared(_validate, model, valid_data, rank)
            release_file_pages(split_path(paths["encoded"], "valid"))
            improved = not monitor_valid or _beats(valid_auc, state.best_auc)
            if improved:
                state.best_epoch, state.best_auc = epoch, finite_or_none(valid_auc)
                state.epochs_without_gain = 0
                best_state = model_state(model)
            else:
                state.epochs_without_gain += 1
            state.epoch = epoch
            state.finished = _stopped_early(state, params) or epoch >= params.train.epochs
            state.train_seconds += train_seconds
            state.samples_seen += len(train_data)
            seconds = time.perf_counter() - epoch_started
            # no timings here: history is versioned and must be identical across identical runs
            state.history.append(
                {
                    "epoch": epoch,
                    "loss": finite_or_none(mean_loss),
                    "valid_auc": finite_or_none(valid_auc),
                    "valid_logloss": finite_or_none(valid_logloss),
                }
            )
            epoch_seconds.append(round(seconds, 4))
            if not main:
                continue
            save_checkpoint(
                paths.checkpoints, fingerprint, state, model, optimizer, scaler, best_state
            )
            logger.info(
                "epoch %d/%d loss=%.5f valid_auc=%.5f valid_logloss=%.5f (%.1fs)%s",
                epoch, params.train.epochs, mean_loss, valid_auc, valid_logloss, seconds,
                " best" if improved else "",
            )  # fmt: skip
            if on_epoch is not None:
                on_epoch(epoch, valid_auc)
            if _stopped_early(state, params):
                logger.info(
                    "early stop: no validation-AUC gain for %d epochs; keeping epoch %d",
                    params.train.patience,
                    state.best_epoch,
                )

        if not main:
            return None
        model.load_state_dict(best_state)
        best_row = state.history[state.best_epoch - 1]
        # post-hoc calibration of the kept weights, on validation only (test stays unseen)
        valid_logits = predict_logits(model, valid_data, PREDICT_BATCH).numpy()
        calibration = fit_calibration(
            valid_logits, valid_data.labels.cpu().numpy(), params.train.calibration
        )
        card = {
            "model": params.model.name,
            "as_of": params.data.as_of,
            "params": params.model_dump(mode="json"),
            "data_md5": hashes,
            "best_epoch": state.best_epoch,
            "epochs_run": state.epoch,
            "stopped_early": _stopped_early(state, params),
            "history": state.history,
            "valid": {"auc": best_row["valid_auc"], "logloss": best_row["valid_logloss"]},
            "n_parameters": model.n_parameters(),
            "n_train": len(train_data),
            "n_valid": len(valid_data),
            "device": str(device),
            "world_size": world,
            "precision": precision.name,
            "torch_version": torch.__version__,
        }
        with atomic_path(paths["model.weights"]) as temporary:
            save_file(best_state, str(temporary), metadata={"model": params.model.name})
        write_json(calibration.to_json(), paths["model.calibration"])
        write_json(card, paths["model.card"])
        write_json(state.history, paths["train.history"])

    summary_keys = (
        "best_epoch", "epochs_run", "stopped_early", "n_parameters", "device", "world_size"
    )  # fmt: skip
    # every rank saw a shard of each epoch: samples_seen counts the whole split, all ranks
    samples_per_second = round(state.samples_seen / max(state.train_seconds, 1e-9), 1)
    return {
        **{key: card[key] for key in summary_keys},
        "precision": precision.name,
        "valid_auc": card["valid"]["auc"],
        "valid_logloss": card["valid"]["logloss"],
        "model_path": str(paths["model.weights"]),
        # facts of this process, not of the model: the run log keeps them (pipeline.TIMING_KEY)
        "timing": {
            "samples_per_second": samples_per_second,
            "train_seconds": round(state.train_seconds, 3),
            "epoch_seconds": epoch_seconds,
            "wall_seconds": round(time.perf_counter() - started, 3),
            "resumed_from_epoch": resumed_from,
        },
    }


def _beats(valid_auc: float, best_auc: float | None) -> bool:
    if math.isnan(valid_auc):
        return best_auc is None
    return best_auc is None or valid_auc > best_auc


def _stopped_early(state: TrainingState, params: Params) -> bool:
    return state.epochs_without_gain >= params.train.patience


ID_TABLES = ("user_ids.weight", "item_ids.weight")  # IntTower's id-path embedding tables


def build_optimizer(model: torch.nn.Module, params: Params) -> torch.optim.Adam:
    """Adam with its fused kernel (CPU and CUDA): one pass over each parameter instead of a dozen
    elementwise ops, 5% of a CPU step at the official size; deterministic on CPU like the rest."""
    # the id path (IntTower's model.id_dim tables) may learn at its own rate: it must find the
    # user × item signal before the towers overfit the dense features
    named = list(model.named_parameters())
    id_path = [p for name, p in named if name.endswith(ID_TABLES)]
    others = [p for name, p in named if not name.endswith(ID_TABLES)]
    groups = [{"params": others}]
    if id_path:
        groups.append({"params": id_path, "lr": params.train.id_lr or params.train.lr})
    return torch.optim.Adam(
        groups,
        lr=params.train.lr,
        weight_decay=params.train.weight_decay,
        fused=True,
    )


def _train_epoch(
    stepped: torch.nn.Module,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    precision: Precision,
    data: DeviceSplit,
    params: Params,
    epoch: int,
    progress: bool,
    last_auc: float | None,
    rank: distributed.Rank | None = None,
) -> tuple[float, float]:
    """One pass over the shuffled train split (this rank's shard of every batch); returns the
    mean loss over the whole split and the seconds spent. `stepped` runs the forward (the model,
    or its DDP wrapper); `model` is the module itself."""
    # dropout draws from the global generator: reseed it per epoch so a resumed run matches
    torch.manual_seed(epoch_seed(params.seed, epoch, 0 if rank is None else rank.rank))
    model.train()
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=data.device, dtype=torch.float64)
    rows = 0
    n_batches = data.n_batches(params.train.batch_size)
    bar = tqdm(
        total=n_batches,
        desc=f"epoch {epoch}/{params.train.epochs}",
        file=sys.stderr,
        disable=not (progress and sys.stderr.isatty()),  # bars fill logs that are not terminals
        leave=False,
        dynamic_ncols=True,
    )
    with bar:
        shard = None if rank is None else rank.shard
        for step, batch in enumerate(
            data.shuffled(params.train.batch_size, params.seed, epoch, shard), start=1
        ):
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                output = stepped(batch.inputs)
                losses = objective_loss(
                    model,
                    output,
                    batch.labels,
                    batch.groups,
                    params.model,
                    params.train.objective,
                    items=batch.items,
                )
            scaler.scale(losses["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            # detached: a logged loss must not keep the batch's graph alive
            loss_sum += losses["loss"].detach().double() * len(batch)
            rows += len(batch)
            bar.update()
            if progress and (step % 20 == 0 or step == n_batches):  # .item() syncs: not every step
                shown = {"loss": f"{loss_sum.item() / rows:.4f}"}
                if last_auc is not None:
                    shown["valid_auc"] = f"{last_auc:.4f}"
                bar.set_postfix(shown)
    if rank is not None:  # the whole split's loss: every rank's rows
        torch.distributed.all_reduce(loss_sum)
    seconds = time.perf_counter() - started
    return loss_sum.item() / max(len(data), 1), seconds


def _data_parallel(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _shared(
    validate: Any, model: torch.nn.Module, data: DeviceSplit, rank: distributed.Rank | None
) -> tuple[float, float]:
    """Rank 0 validates and broadcasts the scores, so every rank takes the same early-stopping
    decision (the others only wait)."""
    if rank is None:
        return validate(model, data)
    scores = torch.zeros(2, dtype=torch.float64, device=data.device)
    if rank.is_main:
        scores = torch.tensor(validate(model, data), dtype=torch.float64, device=data.device)
    torch.distributed.broadcast(scores, src=0)
    return float(scores[0]), float(scores[1])


def _checkpoint_fingerprint(params: Params, device: torch.device, hashes: dict[str, str]) -> str:
    # the test split does not shape training, so re-encoding only it keeps checkpoints valid;
    # `train` holds nproc and nnodes: another world size is another run
    used = {name: digest for name, digest in hashes.items() if not name.startswith("test.")}
    data = ",".join(f"{name}={digest}" for name, digest in sorted(used.items()))
    return f"{params.fingerprint(CHECKPOINT_KEYS)}:{device.type}:{data}"


def _validate(model: torch.nn.Module, data: DeviceSplit) -> tuple[float, float]:
    """Validation AUC and logloss, in fp32 (early stopping judges what evaluation will see)."""
    if len(data) == 0:
        return float("nan"), float("nan")
    logits = predict_logits(model, data, PREDICT_BATCH)
    labels = data.labels.cpu()
    # float64 sigmoid: in float32, distinct logits near ±15 collapse to tied probabilities
    return auc(labels, logits), logloss(labels, torch.sigmoid(logits.double()))


def _has_both_classes(data: DeviceSplit) -> bool:
    if len(data) == 0:
        return False
    positives = int(data.labels.sum().item())
    return 0 < positives < len(data)
