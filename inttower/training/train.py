"""The training loop: seeded, resumable, early-stopped on validation AUC."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
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
from inttower.training.batching import Batch, DeviceSplit, epoch_seed, predict_logits
from inttower.training.card import TrainSummary, TrainTimings, model_card
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
) -> TrainSummary | None:
    """Train `model.name` early-stopped on validation AUC: best weights + model card, a checkpoint
    per epoch, train_history.json. `resume` continues a matching checkpoint to the same result.
    With more than one process (`train.nproc`, `train.nnodes`) it launches torchrun and returns
    rank 0's summary (`launcher`: how, default a subprocess; Dagster launches through Pipes);
    inside a torchrun worker it is one rank (inttower/training/distributed.py), and only rank 0
    returns a summary (the others None). `on_epoch(epoch, valid_auc)` hears each epoch's
    validation (one process only): a tuner reports it and may stop the run by raising."""
    if distributed.world_size(params) > 1 and not distributed.in_worker():
        return TrainSummary.from_json((launcher or distributed.launch)(params, paths, resume))
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
) -> TrainSummary | None:
    if rank is not None and device.type == "cuda":
        device = torch.device("cuda", rank.local_rank)
    started = time.perf_counter()
    with reproducible(params, device), reused_host_memory(device):
        trainer = Trainer.start(params, paths, device, rank, resume, progress)
        while not trainer.state.finished:
            trainer.epoch(on_epoch)
        if not trainer.main:
            return None
        card = trainer.finish()
    return trainer.summary(card, time.perf_counter() - started)


@dataclass
class Trainer:
    """One training run: the model (and its DDP wrapper), optimiser, loss scaler, precision, the
    splits on the device and the state a checkpoint keeps; `epoch` runs one, `finish` keeps the
    best weights, calibrated, with their card. Built inside `reproducible`: its seed makes the
    weights."""

    params: Params
    paths: Paths
    device: torch.device
    rank: distributed.Rank | None
    precision: Precision
    model: torch.nn.Module
    stepped: torch.nn.Module  # what runs the forward: the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    train_data: DeviceSplit
    valid_data: DeviceSplit
    hashes: dict[str, str]  # the encoded files' md5s: the card's data lineage
    fingerprint: str  # what a checkpoint must match to be resumed
    state: TrainingState
    best_state: dict[str, torch.Tensor]
    progress: bool
    resumed_from: int | None = None
    epoch_seconds: list[float] = field(default_factory=list)  # this process's (the run log's)

    @classmethod
    def start(
        cls,
        params: Params,
        paths: Paths,
        device: torch.device,
        rank: distributed.Rank | None,
        resume: bool,
        progress: bool,
    ) -> Trainer:
        """Load the splits, build the model from the seed, and resume a matching checkpoint (or
        clear stale ones)."""
        main = rank is None or rank.is_main
        precision = Precision.for_device(device, params.train.precision)
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
        trainer = cls(
            params=params,
            paths=paths,
            device=device,
            rank=rank,
            precision=precision,
            model=model,
            stepped=stepped,
            optimizer=optimizer,
            scaler=scaler,
            train_data=DeviceSplit(train_split, device),
            valid_data=DeviceSplit(valid_split, device),
            hashes=hashes,
            fingerprint=fingerprint,
            state=state,
            best_state=best_state,
            progress=progress and main,
            resumed_from=state.epoch if restored is not None else None,
        )
        if not trainer.monitor_valid and main:
            logger.warning(
                "validation split lacks a label class: no early stopping, last epoch kept"
            )
        return trainer

    @classmethod
    def around(
        cls,
        params: Params,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        precision: Precision,
        train_data: DeviceSplit,
        stepped: torch.nn.Module | None = None,
    ) -> Trainer:
        """A trainer over a model built elsewhere, to time its epochs (benchmarks/): one process,
        no checkpoints, no validation; `finish` is not for it."""
        return cls(
            params=params,
            paths=Paths(data=Path(os.devnull)),
            device=train_data.device,
            rank=None,
            precision=precision,
            model=model,
            stepped=model if stepped is None else stepped,
            optimizer=optimizer,
            scaler=scaler,
            train_data=train_data,
            valid_data=train_data,
            hashes={},
            fingerprint="",
            state=TrainingState(),
            best_state={},
            progress=False,
        )

    @property
    def main(self) -> bool:
        return self.rank is None or self.rank.is_main

    @property
    def world(self) -> int:
        return 1 if self.rank is None else self.rank.world_size

    @cached_property
    def monitor_valid(self) -> bool:
        return _has_both_classes(self.valid_data)

    def epoch(self, on_epoch: Callable[[int, float], None] | None = None) -> None:
        """Train one epoch, validate, keep the weights if they are the best yet, checkpoint."""
        params, state = self.params, self.state
        epoch = state.epoch + 1
        epoch_started = time.perf_counter()
        mean_loss, train_seconds = self.train_epoch(epoch)
        if not math.isfinite(mean_loss):
            raise TrainingError(
                f"training diverged in epoch {epoch}: mean loss is {mean_loss}; "
                f"lower train.lr (now {params.train.lr:g})"
            )
        # the pass over a mapped split is done: its pages go back to the file cache, so
        # peak RSS is one pass's, not the train and valid splits' together
        release_file_pages(split_path(self.paths["encoded"], "train"))
        valid_auc, valid_logloss = _shared(_validate, self.model, self.valid_data, self.rank)
        release_file_pages(split_path(self.paths["encoded"], "valid"))
        improved = not self.monitor_valid or _beats(valid_auc, state.best_auc)
        if improved:
            state.best_epoch, state.best_auc = epoch, finite_or_none(valid_auc)
            state.epochs_without_gain = 0
            self.best_state = model_state(self.model)
        else:
            state.epochs_without_gain += 1
        state.epoch = epoch
        state.finished = _stopped_early(state, params) or epoch >= params.train.epochs
        state.train_seconds += train_seconds
        state.samples_seen += len(self.train_data)
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
        self.epoch_seconds.append(round(seconds, 4))
        if not self.main:
            return
        save_checkpoint(
            self.paths.checkpoints,
            self.fingerprint,
            state,
            self.model,
            self.optimizer,
            self.scaler,
            self.best_state,
        )
        best = " best" if improved else ""
        logger.info(
            "epoch %d/%d loss=%.5f valid_auc=%.5f valid_logloss=%.5f (%.1fs)%s",
            *(epoch, params.train.epochs, mean_loss, valid_auc, valid_logloss, seconds, best),
        )
        if on_epoch is not None:
            on_epoch(epoch, valid_auc)
        if _stopped_early(state, params):
            logger.info(
                "early stop: no validation-AUC gain for %d epochs; keeping epoch %d",
                params.train.patience,
                state.best_epoch,
            )

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the shuffled train split (this rank's shard of every batch); the mean
        loss over the whole split and the seconds spent."""
        params, data = self.params, self.train_data
        # dropout draws from the global generator: reseed it per epoch so a resumed run matches
        torch.manual_seed(
            epoch_seed(params.seed, epoch, 0 if self.rank is None else self.rank.rank)
        )
        self.model.train()
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=data.device, dtype=torch.float64)
        rows = 0
        n_batches = data.n_batches(params.train.batch_size)
        last_auc = self.state.history[-1]["valid_auc"] if self.state.history else None
        bar = tqdm(
            total=n_batches,
            desc=f"epoch {epoch}/{params.train.epochs}",
            file=sys.stderr,
            disable=not (self.progress and sys.stderr.isatty()),  # bars fill non-terminal logs
            leave=False,
            dynamic_ncols=True,
        )
        shard = None if self.rank is None else self.rank.shard
        batches = data.shuffled(params.train.batch_size, params.seed, epoch, shard)
        with bar:
            for step, batch in enumerate(batches, start=1):
                loss = self.step(batch)
                # detached: a logged loss must not keep the batch's graph alive
                loss_sum += loss.detach().double() * len(batch)
                rows += len(batch)
                bar.update()
                if self.progress and (step % 20 == 0 or step == n_batches):  # .item() syncs
                    shown = {"loss": f"{loss_sum.item() / rows:.4f}"}
                    if last_auc is not None:
                        shown["valid_auc"] = f"{last_auc:.4f}"
                    bar.set_postfix(shown)
        if self.rank is not None:  # the whole split's loss: every rank's rows
            torch.distributed.all_reduce(loss_sum)
        seconds = time.perf_counter() - started
        return loss_sum.item() / max(len(data), 1), seconds

    def step(self, batch: Batch) -> torch.Tensor:
        """One optimiser step on a batch; its total loss."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            output = self.stepped(batch.inputs)
            losses = objective_loss(
                self.model,
                output,
                batch.labels,
                batch.groups,
                self.params.model,
                self.params.train.objective,
                items=batch.items,
            )
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return losses["loss"]

    def finish(self) -> dict[str, Any]:
        """Rank 0: the best epoch's weights, calibrated on valid, written with their card and the
        history; the card."""
        params, paths, state = self.params, self.paths, self.state
        self.model.load_state_dict(self.best_state)
        # post-hoc calibration of the kept weights, on validation only (test stays unseen)
        valid_logits = predict_logits(self.model, self.valid_data, PREDICT_BATCH).numpy()
        calibration = fit_calibration(
            valid_logits, self.valid_data.labels.cpu().numpy(), params.train.calibration
        )
        card = model_card(
            params,
            self.hashes,
            state,
            stopped_early=_stopped_early(state, params),
            n_parameters=self.model.n_parameters(),
            n_train=len(self.train_data),
            n_valid=len(self.valid_data),
            device=self.device,
            world_size=self.world,
            precision=self.precision.name,
        )
        with atomic_path(paths["model.weights"]) as temporary:
            save_file(self.best_state, str(temporary), metadata={"model": params.model.name})
        write_json(calibration.to_json(), paths["model.calibration"])
        write_json(card, paths["model.card"])
        write_json(state.history, paths["train.history"])
        return card

    def summary(self, card: dict[str, Any], wall_seconds: float) -> TrainSummary:
        """What the stage returns: the card's headline, and this process's timings (the run log
        keeps them, never a versioned file)."""
        state = self.state
        keys = ("best_epoch", "epochs_run", "stopped_early", "n_parameters", "device")
        # every rank saw a shard of each epoch: samples_seen counts the whole split, all ranks
        samples_per_second = round(state.samples_seen / max(state.train_seconds, 1e-9), 1)
        return TrainSummary(
            **{key: card[key] for key in (*keys, "world_size")},
            precision=self.precision.name,
            valid_auc=card["valid"]["auc"],
            valid_logloss=card["valid"]["logloss"],
            model_path=str(self.paths["model.weights"]),
            timing=TrainTimings(
                samples_per_second=samples_per_second,
                train_seconds=round(state.train_seconds, 3),
                epoch_seconds=self.epoch_seconds,
                wall_seconds=round(wall_seconds, 3),
                resumed_from_epoch=self.resumed_from,
            ),
        )


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
