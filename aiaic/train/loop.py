"""The training loop: explicit objects in, no globals; the same loop for every stage.

    state = train_loop(LoopConfig(epochs=20, log_every=50), Optimisation(objective, optimizer, params),
                       epoch_loader, LoopState(), dist_info, LoopCallbacks(checkpoint=save))

`train_loop` runs epochs of `objective(batch)["loss"]` minimisation from a `LoopState` (so a resumed
run continues at the same step and batch), under the mixed precision of `Optimisation.amp`. After each
optimizer step an optional second step runs on the objective's output (the discriminator of an
adversarial colour loss). It logs the mean over ranks of every scalar the steps return, and calls
`callbacks.checkpoint(state)` every `save_every` steps and at each epoch's end. Every rank runs exactly
`len(loader)` steps per epoch (the loader guarantees equal counts), so nothing waits at an epoch end.
A run resumed in the middle of an epoch re-reads and discards that epoch's batches already trained
(the loader is deterministic for a seed and epoch), so it continues with exactly the next batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import torch
from torch import nn

from aiaic.errors import RunError
from aiaic.progress import progress_bar
from aiaic.train.distributed import DistInfo, all_reduce_mean
from aiaic.train.metrics import MetricsLog
from aiaic.train.precision import MixedPrecision

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


@dataclass(frozen=True)
class LoopConfig:
    """How the loop runs.

    Attributes:
        epochs: train until the end of epoch `epochs - 1`.
        device: where batches go.
        grad_clip: max global gradient norm of the optimised parameters (0 = off).
        save_every: also checkpoint every N steps (0 = at epoch ends only).
        log_every: log (and show) the terms every N steps, and at each epoch's last step.
        batch_size: samples per step on this rank (for samples/s).
        precision: "fp32", "bf16" or "fp16" (see `aiaic.train.precision`).
        description: the stage's name in logs and errors.
        show_progress: a progress bar on rank 0.
    """

    epochs: int
    device: torch.device = torch.device("cpu")
    grad_clip: float = 0.0
    save_every: int = 0
    log_every: int = 10
    batch_size: int = 1
    precision: str = "fp32"
    description: str = "train"
    show_progress: bool = True


StepOutput = dict[str, torch.Tensor]


@dataclass
class Optimisation:
    """What one step updates.

    Attributes:
        objective: module (possibly DDP-wrapped) mapping a batch on the device to {"loss", terms...}.
        optimizer: steps `parameters` (the clipped ones).
        scheduler: stepped after every optimizer step (None = constant lr).
        second_step: called with the objective's output after the optimizer step; returns more
            terms to log (the discriminator's step). None = no second step.
        amp: the mixed precision shared by both steps; None = built from `LoopConfig.precision`.
    """

    objective: nn.Module
    optimizer: torch.optim.Optimizer
    parameters: list[nn.Parameter]
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    second_step: Callable[[StepOutput], StepOutput] | None = None
    amp: MixedPrecision | None = None


@dataclass
class LoopCallbacks:
    """Hooks of the loop (each runs on every rank; they decide which rank writes).

    Attributes:
        checkpoint: called with the state after `save_every` steps and at each epoch end.
        set_modes: puts trained components in train mode and frozen ones in eval mode (each epoch,
            and after `evaluate`).
        evaluate: returns validation terms at each epoch end.
        on_step: called after every step with the state and the step's output.
    """

    checkpoint: Callable[[LoopState], None]
    set_modes: Callable[[], None] = field(default=lambda: None)
    evaluate: Callable[[], dict[str, float]] | None = None
    on_step: Callable[[LoopState, StepOutput], None] | None = None


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a batch to `device` (non-tensors such as "key" stay)."""
    return {
        k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()
    }


def scalar_terms(out: StepOutput) -> StepOutput:
    """The 0-dim tensors of a step's output (images and other tensors left out)."""
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor) and v.dim() == 0}


def mean_terms(out: StepOutput, dist_info: DistInfo) -> dict[str, float]:
    """Each scalar tensor of `out`, averaged over ranks, as floats."""
    scalars = scalar_terms(out)
    names = sorted(scalars)
    stacked = torch.stack([scalars[k].detach().float().reshape(()) for k in names])
    mean = all_reduce_mean(stacked, dist_info)
    return {k: float(v) for k, v in zip(names, mean.tolist(), strict=True)}


def train_step(
    cfg: LoopConfig, opt: Optimisation, amp: MixedPrecision, batch: dict[str, Any], step: int
) -> StepOutput:
    """Forward, backward and optimizer step on one batch (then the second step); returns the outputs."""
    with amp.autocast():
        out = opt.objective(to_device(batch, cfg.device))
    loss = out["loss"]
    if not torch.isfinite(loss):
        raise RunError(f"{cfg.description}: loss is {loss.item()} at step {step}")
    if not loss.requires_grad:  # e.g. DISCO's guidance learns from its perceptual term only
        raise RunError(
            f"{cfg.description}: the loss does not depend on any trained parameter (its terms: "
            f"{sorted(k for k in out if k.startswith('loss_'))}); a term switched off for want of its "
            "pretrained network (the stage's config.json: disabled_terms) may be the only one reaching them"
        )
    opt.optimizer.zero_grad(set_to_none=True)
    amp.backward(loss)
    amp.step(opt.optimizer, opt.parameters, cfg.grad_clip)
    if opt.second_step is not None:
        out = {**out, **opt.second_step(out)}
    amp.update()
    if opt.scheduler is not None:
        opt.scheduler.step()
    return out


def _log_step(
    cfg: LoopConfig,
    opt: Optimisation,
    state: LoopState,
    out: StepOutput,
    dist_info: DistInfo,
    window: tuple[float, int],
    metrics: MetricsLog | None,
    bar: Callable[..., None],
) -> None:
    terms = mean_terms(out, dist_info)
    elapsed = max(time.perf_counter() - window[0], 1e-9)
    record = {
        "step": state.step,
        "epoch": state.epoch,
        **terms,
        "lr": opt.optimizer.param_groups[0]["lr"],
        "samples_per_s": window[1] * cfg.batch_size * dist_info.world_size / elapsed,
        "world_size": dist_info.world_size,
    }
    if metrics is not None:
        metrics.write(record)
    info = f"loss {terms['loss']:.4f}  {record['samples_per_s']:.1f} samples/s"
    bar(completed=state.batch_in_epoch, info=info)


def _run_epoch(
    cfg: LoopConfig,
    opt: Optimisation,
    amp: MixedPrecision,
    loader: Batches,
    state: LoopState,
    dist_info: DistInfo,
    callbacks: LoopCallbacks,
    metrics: MetricsLog | None,
    bar: Callable[..., None],
) -> None:
    n_batches = len(loader)
    iterator = iter(loader)
    for _ in range(state.batch_in_epoch):  # resumed mid-epoch: the same batches, skipped
        next(iterator)
    window_t0, window_steps = time.perf_counter(), 0
    for _ in range(state.batch_in_epoch, n_batches):
        try:
            batch = next(iterator)
        except StopIteration as e:
            raise RunError(
                f"{cfg.description}: loader ended after {state.batch_in_epoch} of "
                f"{n_batches} batches in epoch {state.epoch}"
            ) from e
        out = train_step(cfg, opt, amp, batch, state.step)
        state.step += 1
        state.batch_in_epoch += 1
        window_steps += 1
        last = state.batch_in_epoch == n_batches
        if callbacks.on_step is not None:
            callbacks.on_step(state, out)
        if state.step % cfg.log_every == 0 or last:
            _log_step(cfg, opt, state, out, dist_info, (window_t0, window_steps), metrics, bar)
            window_t0, window_steps = time.perf_counter(), 0
        bar(completed=state.batch_in_epoch)
        if last:
            state.epoch += 1
            state.batch_in_epoch = 0
        elif cfg.save_every and state.step % cfg.save_every == 0:
            callbacks.checkpoint(state)


def _validate(
    cfg: LoopConfig,
    state: LoopState,
    callbacks: LoopCallbacks,
    dist_info: DistInfo,
    metrics: MetricsLog | None,
) -> None:
    if callbacks.evaluate is None:
        return
    val = callbacks.evaluate()
    callbacks.set_modes()
    if metrics is not None and val:
        metrics.write({"step": state.step, "epoch": state.epoch - 1, "split": "val", **val})
    if val and dist_info.is_main:
        log.info(
            "%s epoch %d val: %s",
            cfg.description,
            state.epoch,
            ", ".join(f"{k} {v:.4f}" for k, v in sorted(val.items()) if math.isfinite(v)),
        )


def train_loop(
    cfg: LoopConfig,
    opt: Optimisation,
    epoch_loader: Callable[[int], Batches],
    state: LoopState,
    dist_info: DistInfo,
    callbacks: LoopCallbacks,
    metrics: MetricsLog | None = None,
) -> LoopState:
    """Train from `state` to the end of epoch `cfg.epochs - 1`; returns the final state.

    Args:
        epoch_loader: epoch index -> iterable of batches with `len()` = batches per epoch on this rank.
        metrics: rank 0's log (None elsewhere).
    """
    amp = opt.amp if opt.amp is not None else MixedPrecision(cfg.precision, cfg.device)
    if amp.precision != cfg.precision:
        raise ValueError(f"the loop runs at {cfg.precision} but its MixedPrecision is {amp.precision}")
    label, info = "[bold]{task.description}", "{task.fields[info]}"
    with progress_bar(label, fields=(info,), enabled=cfg.show_progress and dist_info.is_main) as progress:
        while state.epoch < cfg.epochs:
            loader = epoch_loader(state.epoch)
            if len(loader) < 1:
                raise RunError(
                    f"{cfg.description}: the loader yields no batch in epoch {state.epoch} "
                    "(fewer samples than one batch per rank?)"
                )
            task = progress.add_task(
                f"{cfg.description} epoch {state.epoch + 1}/{cfg.epochs}",
                total=len(loader),
                completed=state.batch_in_epoch,
                info="",
            )
            callbacks.set_modes()
            bar = partial(progress.update, task)  # this epoch's bar: completed=..., info=...
            _run_epoch(cfg, opt, amp, loader, state, dist_info, callbacks, metrics, bar)
            _validate(cfg, state, callbacks, dist_info, metrics)
            callbacks.checkpoint(state)
    return state
