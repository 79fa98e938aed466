"""`run_training(plan)`: the library function behind `aiaic-train` (one stage or all of them).

    aiaic-train --shards data/split --out runs/demo --stage all --config pipelines/demo.toml
    python -m torch.distributed.run --nproc_per_node 2 -m aiaic.cli.train --shards data/split --out runs/ddp

For each stage (baseline, stage1, stage2, rnet, stage3 for "all", then the recipe's ablation chains
no_r_stage1..3 and e2e; see `aiaic.train.stages`):
a stage already complete in RUN/<stage>/ is skipped; otherwise the model is built from the
`ModelConfig`, the previous stage's finished weights are loaded, components are frozen or trained as
the stage says, and `aiaic.train.loop.train_loop` runs it. RUN/<stage>/ receives model.safetensors,
state.pt, config.json ("complete": true at the end), metrics.jsonl and loss.png. Only rank 0 writes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from aiaic.config import config_to_dict, recipe_hash, write_json_atomic
from aiaic.data.loader import LoaderConfig, SplitSource, make_loader, open_split, read_manifest
from aiaic.errors import ConfigError, RecipeMismatchError, RunError
from aiaic.models.colorizer import AudioInfusedColorizer, build_colorizer
from aiaic.models.pretrained import load_relevance_encoders
from aiaic.runs import checkpoint as ckpt
from aiaic.train.config import StageConfig, TrainPlan
from aiaic.train.distributed import DistInfo, barrier, setup_distributed, teardown
from aiaic.train.loop import LoopState, mean_terms, to_device, train_loop
from aiaic.train.metrics import MetricsLog, plot_losses, read_metrics
from aiaic.train.objectives import StageObjective
from aiaic.train.stages import STAGES, StageSpec, apply_stage_modes, trainable_parameters

log = logging.getLogger(__name__)

VAL_BATCHES = 20  # validation batches per rank at each epoch end (a cap; small splits use all)


@dataclass(frozen=True)
class StageResult:
    stage: str
    status: str  # "trained", "resumed", "skipped"
    steps: int
    seconds: float
    last: dict[str, float]


def make_optimizer(cfg: StageConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    betas = (cfg.betas[0], cfg.betas[1])
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: StageConfig, optimizer: torch.optim.Optimizer, total_steps: int):
    if cfg.lr_schedule == "constant":
        return None
    total = max(1, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total))
    )


def _stage_record(plan: TrainPlan, spec: StageSpec, manifest: dict, dist_info: DistInfo,
                  source: SplitSource, encoders: list[str], complete: bool, steps: int) -> dict[str, Any]:
    stats = manifest.get("audio_stats", {})
    return {
        "stage": spec.name,
        "description": spec.description,
        "complete": complete,
        "steps": steps,
        "image_size": plan.train.image_size,
        "model": config_to_dict(plan.model),
        "model_hash": recipe_hash(plan.model),
        "train": config_to_dict(plan.stages[spec.name]),
        "run": config_to_dict(plan.train),
        "init_from": spec.init_from,
        "trains": list(spec.trains),
        "mel_mean": list(source.mel_mean),
        "mel_std": list(source.mel_std),
        "mel_config": manifest.get("mel_config", {}),
        "mel_stats_computed_on": stats.get("computed_on"),
        "split_dir": str(plan.train.shards),
        "split_recipe_hash": recipe_hash(manifest.get("recipe", {})),
        "label_ids": manifest.get("label_ids", {}),
        "world_size": dist_info.world_size,
        "encoders": encoders,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _check_same_model(plan: TrainPlan, stage_dir: Path, saved: dict | None) -> None:
    if saved is not None and saved.get("model") != config_to_dict(plan.model):
        raise RecipeMismatchError(
            f"{stage_dir}: trained with a different [model] config (hash {saved.get('model_hash')}, now "
            f"{recipe_hash(plan.model)}); use another --out or the recipe it was made with"
        )


def _evaluator(objective: StageObjective, model: AudioInfusedColorizer, loader, device: torch.device,
               dist_info: DistInfo):
    def evaluate() -> dict[str, float]:
        model.eval()
        sums: dict[str, torch.Tensor] = {}
        n = 0
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if i >= VAL_BATCHES:
                    break
                out = objective(to_device(batch, device))
                for k, v in out.items():
                    sums[k] = sums.get(k, torch.zeros((), device=device)) + v.detach().float()
                n += 1
        if n == 0:
            return {}
        return mean_terms({k: v / n for k, v in sums.items()}, dist_info)

    return evaluate


def run_stage(plan: TrainPlan, name: str, dist_info: DistInfo, manifest: dict,
              train_src: SplitSource, val_src: SplitSource | None) -> StageResult:
    """Train one stage into RUN/<name>/ (or skip it when complete)."""
    spec, cfg, run = STAGES[name], plan.stages[name], plan.train
    stage_dir = Path(run.out) / name
    t0 = time.perf_counter()
    if ckpt.is_complete(stage_dir):
        log.info("%s: already complete in %s, skipped (delete the folder to train it again)", name, stage_dir)
        return StageResult(name, "skipped", int((ckpt.read_config(stage_dir) or {}).get("steps", 0)), 0.0, {})
    if dist_info.is_main and stage_dir.is_dir():
        ckpt.recover(stage_dir)  # finish (or drop) a checkpoint write interrupted by a kill
    barrier(dist_info)
    saved = ckpt.read_config(stage_dir)
    resuming = ckpt.has_checkpoint(stage_dir)
    started = resuming or (stage_dir / "metrics.jsonl").is_file()
    if started and not run.resume:
        raise RunError(f"{stage_dir} holds an unfinished run of {name}: pass --resume to continue it, "
                       "or choose another --out")
    _check_same_model(plan, stage_dir, saved)
    if resuming and saved is not None and saved.get("image_size") != run.image_size:
        raise RecipeMismatchError(f"{stage_dir}: trained at image_size {saved.get('image_size')}, "
                                  f"now {run.image_size}")

    torch.manual_seed(run.seed)  # the same initial weights on every rank
    model = build_colorizer(plan.model)
    encoders: list[str] = []
    if spec.init_from is not None:
        prev = Path(run.out) / spec.init_from
        if not ckpt.is_complete(prev):
            raise RunError(f"stage {name} starts from {spec.init_from}, which is not complete in {prev}; "
                           f"train it first (--stage all does it in order)")
        prev_cfg = ckpt.read_config(prev)
        _check_same_model(plan, prev, prev_cfg)
        ckpt.load_weights(prev / ckpt.WEIGHTS, model)
        encoders = list((prev_cfg or {}).get("encoders", []))
    if "relevance" in spec.trains and not resuming:  # rnet, and e2e's jointly trained relevance net
        encoders = load_relevance_encoders(model)
    elif resuming and saved is not None:
        encoders = list(saved.get("encoders", encoders))
    model.to(dist_info.device)
    apply_stage_modes(model, spec, True)  # before DDP: it tracks the parameters that require grad

    params = trainable_parameters(model, spec)
    optimizer = make_optimizer(cfg, params)
    loader_cfg = LoaderConfig(image_size=run.image_size, batch_size=cfg.batch_size, workers=run.workers,
                              train=True, seed=run.seed, epoch=0,
                              mask_prob=cfg.mask_prob if spec.uses_mask else 0.0)
    loader = make_loader(train_src, loader_cfg, rank=dist_info.rank, world_size=dist_info.world_size)
    scheduler = make_scheduler(cfg, optimizer, cfg.epochs * len(loader))
    state = LoopState()
    if resuming:
        st = ckpt.load_checkpoint(stage_dir, model, dist_info.device)
        optimizer.load_state_dict(st["optimizer"])
        if scheduler is not None and st.get("scheduler"):
            scheduler.load_state_dict(st["scheduler"])
        ckpt.set_rng_state(st["rng"])
        state = LoopState(int(st["step"]), int(st["epoch"]), int(st["batch_in_epoch"]))
        log.info("%s: resuming at step %d (epoch %d, batch %d)", name, state.step, state.epoch,
                 state.batch_in_epoch)

    metrics = None
    if dist_info.is_main:
        stage_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(stage_dir / "config.json",
                          _stage_record(plan, spec, manifest, dist_info, train_src, encoders, False,
                                        state.step))
        metrics = MetricsLog(stage_dir)
        if started:  # killed before its first checkpoint: it restarts at step 0, and says so
            metrics.write({"event": "resume", "step": state.step})
    log.info("%s: %s; trains %s; %d batches/epoch x %d epochs", name, spec.description,
             ", ".join(spec.trains), len(loader), cfg.epochs)

    objective = StageObjective(model, spec, cfg)
    wrapped: nn.Module = objective
    if dist_info.initialized:
        wrapped = DistributedDataParallel(
            objective, device_ids=[dist_info.device.index] if dist_info.device.type == "cuda" else None
        )

    def checkpoint(s: LoopState) -> None:
        if dist_info.is_main:
            ckpt.save_checkpoint(stage_dir, model, {
                "step": s.step, "epoch": s.epoch, "batch_in_epoch": s.batch_in_epoch,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "rng": ckpt.rng_state(), "world_size": dist_info.world_size,
            }, name)

    def epoch_loader(epoch: int):
        loader.set_epoch(epoch)
        return loader

    evaluate = None
    val_loader = None
    if val_src is not None:
        val_cfg = replace(loader_cfg, train=False, mask_prob=0.0, workers=min(run.workers, 1))
        try:
            val_loader = make_loader(val_src, val_cfg, rank=dist_info.rank, world_size=dist_info.world_size)
        except ConfigError as e:  # e.g. fewer val shards than ranks: train on, and say so
            log.warning("%s: no validation during training (%s)", name, e)
        else:
            evaluate = _evaluator(objective, model, val_loader, dist_info.device, dist_info)
    try:
        state = train_loop(
            objective=wrapped, optimizer=optimizer, scheduler=scheduler, epoch_loader=epoch_loader,
            epochs=cfg.epochs, device=dist_info.device, dist_info=dist_info, state=state,
            set_modes=lambda: apply_stage_modes(model, spec, True), parameters=params,
            checkpoint=checkpoint, metrics=metrics, evaluate=evaluate, save_every=run.save_every,
            log_every=run.log_every, grad_clip=cfg.grad_clip, batch_size=cfg.batch_size,
            description=name,
        )
    finally:
        loader.close()
        if val_loader is not None:
            val_loader.close()
        if metrics is not None:
            metrics.close()
    log.info("rank %d finished %s after %d steps", dist_info.rank, name, state.step)
    last: dict[str, float] = {}
    if dist_info.is_main:
        plot_losses(stage_dir / "metrics.jsonl", stage_dir / "loss.png", title=f"{name}: {spec.description}")
        write_json_atomic(stage_dir / "config.json",
                          _stage_record(plan, spec, manifest, dist_info, train_src, encoders, True,
                                        state.step))
        rows = [r for r in read_metrics(stage_dir / "metrics.jsonl") if "event" not in r]
        last = {k: v for k, v in (rows[-1] if rows else {}).items() if isinstance(v, float)}
    barrier(dist_info)  # the next stage reads these weights
    return StageResult(name, "resumed" if resuming else "trained", state.step, time.perf_counter() - t0, last)


def run_training(plan: TrainPlan) -> list[StageResult]:
    """Train the stages of `plan.train.stage` in order; returns one result per stage."""
    dist_info = setup_distributed(plan.train.device)
    try:
        if dist_info.device.type == "cpu" and dist_info.world_size > 1:
            torch.set_num_threads(max(1, torch.get_num_threads() // dist_info.world_size))
        manifest = read_manifest(plan.train.shards)
        train_src = open_split(plan.train.shards, "train")
        val_src = open_split(plan.train.shards, "val") if "val" in manifest.get("splits", {}) else None
        if dist_info.is_main:
            Path(plan.train.out).mkdir(parents=True, exist_ok=True)
        barrier(dist_info)
        return [run_stage(plan, name, dist_info, manifest, train_src, val_src)
                for name in plan.train.stages()]
    finally:
        teardown(dist_info)
