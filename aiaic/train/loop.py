"""The training loop: explicit objects in, no globals; the same loop for every stage.

`train_loop` runs epochs of `objective(batch)["loss"]` minimisation from a `LoopState` (so a resumed
run continues at the same step and batch), logs the mean over ranks of every returned term, and
calls `checkpoint(state)` every `save_every` steps and at each epoch's end. Every rank runs exactly
`len(loader)` steps per epoch (the loader guarantees equal counts), so nothing waits at an epoch end.
A run resumed in the middle of an epoch re-reads and discards that epoch's batches already trained
(the loader is deterministic for a seed and epoch), so it continues with exactly the next batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from aiaic.errors import RunError
from aiaic.progress import progress_bar
from aiaic.train.distributed import DistInfo, all_reduce_mean
from aiaic.train.metrics import MetricsLog

log = logging.getLogger(__name__)


class Batches(Protocol):
    """What an epoch's loader must be: iterable, with `len()` = batches on this rank."""

    def __iter__(self) -> Iterator[dict]: ...

    def __len__(self) -> int: ...


@dataclass
class LoopState:
    """Progress of a stage: optimizer steps done, the current epoch, batches done in it."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a batch to `device` (non-tensors such as "key" stay)."""
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}


def mean_terms(out: dict[str, torch.Tensor], dist_info: DistInfo) -> dict[str, float]:
    """Each scalar tensor of `out`, averaged over ranks, as floats."""
    names = sorted(out)
    stacked = torch.stack([out[k].detach().float().reshape(()) for k in names])
    mean = all_reduce_mean(stacked, dist_info)
    return {k: float(v) for k, v in zip(names, mean.tolist(), strict=True)}


def train_loop(
    *,
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    epoch_loader: Callable[[int], Batches],
    epochs: int,
    device: torch.device,
    dist_info: DistInfo,
    state: LoopState,
    set_modes: Callable[[], None],
    parameters: list[nn.Parameter],
    checkpoint: Callable[[LoopState], None],
    metrics: MetricsLog | None = None,
    evaluate: Callable[[], dict[str, float]] | None = None,
    save_every: int = 0,
    log_every: int = 10,
    grad_clip: float = 0.0,
    batch_size: int = 1,
    description: str = "train",
    show_progress: bool = True,
) -> LoopState:
    """Train from `state` to the end of epoch `epochs - 1`; returns the final state.

    Args:
        objective: module (possibly DDP-wrapped) mapping a batch on `device` to {"loss", terms...}.
        epoch_loader: epoch index -> iterable of batches with `len()` = batches per epoch on this rank.
        set_modes: puts trained components in train mode and frozen ones in eval mode.
        parameters: the optimised parameters (for gradient clipping).
        checkpoint: called with the state after `save_every` steps and at each epoch end (it decides
            which rank writes).
        evaluate: optional; returns validation terms at each epoch end (run on every rank).
        batch_size: per-rank batch size (for samples/s).
    """
    progress = None
    if show_progress and dist_info.is_main:
        progress = progress_bar("[bold]{task.description}", fields=("{task.fields[info]}",))
        progress.start()
    try:
        while state.epoch < epochs:
            loader = epoch_loader(state.epoch)
            n_batches = len(loader)
            if n_batches < 1:
                raise RunError(f"{description}: the loader yields no batch in epoch {state.epoch} "
                               "(fewer samples than one batch per rank?)")
            task = None
            if progress is not None:
                task = progress.add_task(f"{description} epoch {state.epoch + 1}/{epochs}", total=n_batches,
                                         completed=state.batch_in_epoch, info="")
            set_modes()
            iterator = iter(loader)
            for _ in range(state.batch_in_epoch):  # resumed mid-epoch: the same batches, skipped
                next(iterator)
            window_t0, window_steps = time.perf_counter(), 0
            for _ in range(state.batch_in_epoch, n_batches):
                try:
                    batch = next(iterator)
                except StopIteration as e:
                    raise RunError(f"{description}: loader ended after {state.batch_in_epoch} of "
                                   f"{n_batches} batches in epoch {state.epoch}") from e
                out = objective(to_device(batch, device))
                loss = out["loss"]
                if not torch.isfinite(loss):
                    raise RunError(f"{description}: loss is {loss.item()} at step {state.step}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                state.step += 1
                state.batch_in_epoch += 1
                window_steps += 1
                last = state.batch_in_epoch == n_batches
                if state.step % log_every == 0 or last:
                    terms = mean_terms(out, dist_info)
                    elapsed = max(time.perf_counter() - window_t0, 1e-9)
                    record = {"step": state.step, "epoch": state.epoch, **terms,
                              "lr": optimizer.param_groups[0]["lr"],
                              "samples_per_s": window_steps * batch_size * dist_info.world_size / elapsed,
                              "world_size": dist_info.world_size}
                    if metrics is not None:
                        metrics.write(record)
                    if progress is not None and task is not None:
                        progress.update(task, info=f"loss {terms['loss']:.4f}  "
                                        f"{record['samples_per_s']:.1f} samples/s")
                    window_t0, window_steps = time.perf_counter(), 0
                if progress is not None and task is not None:
                    progress.update(task, completed=state.batch_in_epoch)
                if last:
                    state.epoch += 1
                    state.batch_in_epoch = 0
                if save_every and state.step % save_every == 0 and not last:
                    checkpoint(state)
            if evaluate is not None:
                val = evaluate()
                set_modes()
                if metrics is not None and val:
                    metrics.write({"step": state.step, "epoch": state.epoch - 1, "split": "val", **val})
                if val and dist_info.is_main:
                    log.info("%s epoch %d val: %s", description, state.epoch,
                             ", ".join(f"{k} {v:.4f}" for k, v in sorted(val.items()) if math.isfinite(v)))
            checkpoint(state)
    finally:
        if progress is not None:
            progress.stop()
    return state
