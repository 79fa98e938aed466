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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aiaic.config import config_to_dict, recipe_hash, write_json_atomic
from aiaic.data.loader import LoaderConfig, SplitSource, make_loader, open_split, read_manifest
from aiaic.errors import ConfigError, RecipeMismatchError, RunError
from aiaic.models.backbones.registry import spec_of
from aiaic.models.colorizer import AudioInfusedColorizer, build_colorizer
from aiaic.models.pretrained import load_audio_encoder, load_backbone_weights, load_relevance_encoders
from aiaic.runs import checkpoint as ckpt
from aiaic.train.config import StageConfig, TrainPlan
from aiaic.train.discriminator import build_discriminator_trainer
from aiaic.train.distributed import DistInfo, barrier, per_rank_batch, setup_distributed, teardown, wrap_ddp
from aiaic.train.loop import (
    LoopCallbacks,
    LoopConfig,
    LoopState,
    Optimisation,
    mean_terms,
    scalar_terms,
    to_device,
    train_loop,
)
from aiaic.train.losses import build_color_loss
from aiaic.train.metrics import MetricsLog, plot_losses, read_metrics
from aiaic.train.objectives import StageObjective
from aiaic.train.precision import MixedPrecision
from aiaic.train.stages import STAGES, StageSpec, apply_stage_modes, trainable_parameters
from aiaic.train.terms import get_term

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
    """The stage's optimizer; `cfg` resolved (`aiaic.train.config.resolve_stage`: no None left)."""
    if cfg.lr is None or cfg.betas is None or cfg.weight_decay is None or cfg.optimizer is None:
        raise ConfigError(f"the stage's optimizer settings are not resolved: {cfg}")
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


def _stage_record(
    st: _Stage, manifest: dict, source: SplitSource, complete: bool, steps: int
) -> dict[str, Any]:
    plan = st.plan
    stats = manifest.get("audio_stats", {})
    record = {
        "stage": st.name,
        "description": st.spec.description,
        "complete": complete,
        "steps": steps,
        "image_size": plan.train.image_size,
        "model": config_to_dict(plan.model),
        "model_hash": recipe_hash(plan.model),
        "train": config_to_dict(st.cfg),
        "run": config_to_dict(plan.train),
        "init_from": st.spec.init_from,
        "trains": list(st.spec.trains),
        "batch_size_global": st.cfg.batch_size,
        "batch_size_per_rank": st.batch_per_rank,
        "precision": plan.train.precision,
        "loader": config_to_dict(plan.loader),
        "mel_mean": list(source.mel_mean),
        "mel_std": list(source.mel_std),
        "mel_config": manifest.get("mel_config", {}),
        "spec_config": None if plan.model.spectrogram is None else plan.model.spectrogram.to_dict(),
        "mel_stats_computed_on": stats.get("computed_on"),
        "split_dir": str(plan.train.shards),
        "split_recipe_hash": recipe_hash(manifest.get("recipe", {})),
        "label_ids": manifest.get("label_ids", {}),
        "world_size": st.dist_info.world_size,
        "encoders": st.encoders,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if st.spec.colours:
        record["loss_terms"] = {
            k: w for k, w in st.cfg.loss_terms().items() if w > 0 and k not in st.disabled_terms
        }
        record["disabled_terms"] = dict(st.disabled_terms)
    return record


# how the model runs, not what it is: a run may change them between stages or on resume
_RUNTIME_MODEL_KEYS = ("activation_checkpointing",)


def _model_identity(model: dict) -> dict:
    return {k: v for k, v in model.items() if k not in _RUNTIME_MODEL_KEYS}


def _check_same_model(plan: TrainPlan, stage_dir: Path, saved: dict | None) -> None:
    if saved is not None and _model_identity(saved.get("model") or {}) != _model_identity(
        config_to_dict(plan.model)
    ):
        raise RecipeMismatchError(
            f"{stage_dir}: trained with a different [model] config (hash {saved.get('model_hash')}, now "
            f"{recipe_hash(plan.model)}); use another --out or the recipe it was made with"
        )


def _evaluator(
    objective: StageObjective,
    model: AudioInfusedColorizer,
    loader,
    device: torch.device,
    dist_info: DistInfo,
    amp: MixedPrecision,
):
    disc = objective.adversary.module if objective.adversary is not None else None

    def evaluate() -> dict[str, float]:
        model.eval()
        if disc is not None:  # no spectral-norm power iteration on validation batches
            disc.eval()
        sums: dict[str, torch.Tensor] = {}
        n = 0
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if i >= VAL_BATCHES:
                    break
                with amp.autocast():
                    out = scalar_terms(objective(to_device(batch, device)))
                for k, v in out.items():
                    sums[k] = sums.get(k, torch.zeros((), device=device)) + v.detach().float()
                n += 1
        if disc is not None:
            disc.train()  # as a resumed run's fresh discriminator is: both continue alike
        if n == 0:
            return {}
        return mean_terms({k: v / n for k, v in sums.items()}, dist_info)

    return evaluate


@dataclass
class _Stage:
    """What the phases of `run_stage` hand each other."""

    name: str
    spec: StageSpec
    cfg: StageConfig  # with the backbone's defaults filled in
    plan: TrainPlan
    dist_info: DistInfo
    dir: Path
    resuming: bool = False
    started: bool = False
    saved: dict | None = None
    batch_per_rank: int = 1
    encoders: list[str] = field(default_factory=list)
    disabled_terms: dict[str, str] = field(default_factory=dict)


def _open_stage_dir(st: _Stage) -> StageResult | None:
    """Skip a complete stage (returns its result); otherwise check that it may start or resume here."""
    run = st.plan.train
    if ckpt.is_complete(st.dir):
        log.info("%s: already complete in %s, skipped (delete the folder to train it again)", st.name, st.dir)
        return StageResult(st.name, "skipped", int((ckpt.read_config(st.dir) or {}).get("steps", 0)), 0.0, {})
    if st.dist_info.is_main and st.dir.is_dir():
        ckpt.recover(st.dir)  # finish (or drop) a checkpoint write interrupted by a kill
    barrier(st.dist_info)
    st.saved = ckpt.read_config(st.dir)
    st.resuming = ckpt.has_checkpoint(st.dir)
    st.started = st.resuming or (st.dir / "metrics.jsonl").is_file()
    if st.started and not run.resume:
        raise RunError(
            f"{st.dir} holds an unfinished run of {st.name}: pass --resume to continue it, "
            "or choose another --out"
        )
    _check_same_model(st.plan, st.dir, st.saved)
    if st.resuming and st.saved is not None and st.saved.get("image_size") != run.image_size:
        raise RecipeMismatchError(
            f"{st.dir}: trained at image_size {st.saved.get('image_size')}, now {run.image_size}"
        )
    return None


def _build_model(st: _Stage) -> AudioInfusedColorizer:
    """The model with the previous stage's weights (and, for rnet, the configured encoders)."""
    run = st.plan.train
    torch.manual_seed(run.seed)  # the same initial weights on every rank
    model = build_colorizer(st.plan.model)
    if st.spec.init_from is None and not st.resuming:  # baseline, stage 1, e2e: from the released weights
        loaded = load_backbone_weights(model)
        if loaded is not None:
            st.encoders.append(loaded)
    if st.spec.init_from is not None:
        prev = Path(run.out) / st.spec.init_from
        if not ckpt.is_complete(prev):
            raise RunError(
                f"stage {st.name} starts from {st.spec.init_from}, which is not complete in "
                f"{prev}; train it first (--stage all does it in order)"
            )
        prev_cfg = ckpt.read_config(prev)
        _check_same_model(st.plan, prev, prev_cfg)
        ckpt.load_weights(prev / ckpt.WEIGHTS, model)
        st.encoders = list((prev_cfg or {}).get("encoders", []))
    if "audio" in st.spec.trains and not st.resuming:  # stage 2, e2e: E_a starts from its pretrained file
        st.encoders = st.encoders + load_audio_encoder(model)
    if "relevance" in st.spec.trains and not st.resuming:  # rnet, and e2e's jointly trained relevance net
        st.encoders = st.encoders + load_relevance_encoders(model)
    elif st.resuming and st.saved is not None:
        st.encoders = list(st.saved.get("encoders", st.encoders))
    model.to(st.dist_info.device)
    apply_stage_modes(model, st.spec, True)  # before DDP: it tracks the parameters that require grad
    return model


def _build_objective(st: _Stage, model: AudioInfusedColorizer, amp: MixedPrecision) -> StageObjective:
    """The stage's objective: for a colour stage, its ColorLoss (and discriminator when adversarial)."""
    if not st.spec.colours:
        return StageObjective(model, st.spec, st.cfg)
    terms = st.cfg.loss_terms()
    critic = spec_of(model.config.backbone).critic
    adversary = None
    if critic is not None and any(w > 0 and get_term(k).needs.critic for k, w in terms.items()):
        cfg = st.cfg
        assert cfg.disc_channels is not None and cfg.disc_blocks is not None  # resolve_stage filled them
        assert cfg.disc_lr is not None and cfg.disc_betas is not None
        adversary = build_discriminator_trainer(
            cfg.disc_channels, cfg.disc_blocks, cfg.disc_lr, cfg.disc_betas, amp, st.dist_info, critic
        )
    color, st.disabled_terms = build_color_loss(
        terms,
        huber_delta=st.cfg.huber_delta,
        vgg16_bn_weights=st.plan.train.vgg16_bn_weights,
        network_weights=st.plan.train.network_weights,
        discriminator=adversary.module if adversary is not None else None,
        critic=critic,
        device=st.dist_info.device,
    )
    return StageObjective(model, st.spec, st.cfg, color, adversary)


def _restore(st: _Stage, model: nn.Module, opt: Optimisation, objective: StageObjective) -> LoopState:
    """The checkpoint's weights, optimizer, scheduler, scaler, discriminator and RNG; or a fresh state."""
    if not st.resuming:
        return LoopState()
    saved = ckpt.load_checkpoint(st.dir, model, st.dist_info.device)
    opt.optimizer.load_state_dict(saved["optimizer"])
    if opt.scheduler is not None and saved.get("scheduler"):
        opt.scheduler.load_state_dict(saved["scheduler"])
    if opt.amp is not None:
        opt.amp.load_state_dict(saved.get("scaler", {}))
    if objective.adversary is not None:
        if "discriminator" not in saved:
            raise RunError(f"{st.dir / ckpt.STATE}: no discriminator state to resume the adversarial term")
        objective.adversary.load_state_dict(saved["discriminator"])
    ckpt.set_rng_state(saved["rng"])
    state = LoopState(int(saved["step"]), int(saved["epoch"]), int(saved["batch_in_epoch"]))
    log.info(
        "%s: resuming at step %d (epoch %d, batch %d)", st.name, state.step, state.epoch, state.batch_in_epoch
    )
    return state


def _checkpointer(st: _Stage, model: nn.Module, opt: Optimisation, objective: StageObjective):
    def checkpoint(s: LoopState) -> None:
        if not st.dist_info.is_main:
            return
        state: dict[str, Any] = {
            "step": s.step,
            "epoch": s.epoch,
            "batch_in_epoch": s.batch_in_epoch,
            "optimizer": opt.optimizer.state_dict(),
            "scheduler": opt.scheduler.state_dict() if opt.scheduler is not None else {},
            "scaler": opt.amp.state_dict() if opt.amp is not None else {},
            "rng": ckpt.rng_state(),
            "world_size": st.dist_info.world_size,
        }
        if objective.adversary is not None:
            state["discriminator"] = objective.adversary.state_dict()
        ckpt.save_checkpoint(st.dir, model, state, st.name)

    return checkpoint


def _open_metrics(st: _Stage, source: SplitSource, manifest: dict, step: int) -> MetricsLog | None:
    """Rank 0: config.json (not complete yet) and the metrics log, with a resume mark when restarted."""
    if not st.dist_info.is_main:
        return None
    st.dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(st.dir / "config.json", _stage_record(st, manifest, source, False, step))
    metrics = MetricsLog(st.dir)
    if st.started:  # killed before its first checkpoint: it restarts at step 0, and says so
        metrics.write({"event": "resume", "step": step})
    return metrics


def _validation(
    st: _Stage,
    objective: StageObjective,
    model: AudioInfusedColorizer,
    val_src: SplitSource | None,
    loader_cfg: LoaderConfig,
    amp: MixedPrecision,
):
    """(evaluate callback, val loader) or (None, None) without a val split (or too few val shards)."""
    if val_src is None:
        return None, None
    run = st.plan.train
    val_cfg = replace(loader_cfg, train=False, mask_prob=0.0, workers=min(run.workers, 1))
    try:
        val_loader = make_loader(val_src, val_cfg, rank=st.dist_info.rank, world_size=st.dist_info.world_size)
    except ConfigError as e:  # e.g. fewer val shards than ranks: train on, and say so
        log.warning("%s: no validation during training (%s)", st.name, e)
        return None, None
    return _evaluator(objective, model, val_loader, st.dist_info.device, st.dist_info, amp), val_loader


def _finish(st: _Stage, manifest: dict, source: SplitSource, steps: int) -> dict[str, float]:
    """Rank 0: the loss plot and the final config.json ("complete": true); the last logged terms."""
    if not st.dist_info.is_main:
        return {}
    plot_losses(st.dir / "metrics.jsonl", st.dir / "loss.png", title=f"{st.name}: {st.spec.description}")
    write_json_atomic(st.dir / "config.json", _stage_record(st, manifest, source, True, steps))
    rows = [r for r in read_metrics(st.dir / "metrics.jsonl") if "event" not in r]
    return {k: v for k, v in (rows[-1] if rows else {}).items() if isinstance(v, float)}


def _optimisation(
    st: _Stage, objective: StageObjective, params: list[nn.Parameter], steps: int, amp: MixedPrecision
) -> Optimisation:
    """The optimizer, schedule, DDP wrapper and discriminator step of the stage's training step."""
    optimizer = make_optimizer(st.cfg, params)
    unused = spec_of(objective.model.config.backbone).runtime.unused_parameters
    wrapped = wrap_ddp(objective, st.dist_info, find_unused_parameters=unused)
    second = objective.discriminator_step if objective.adversary is not None else None
    return Optimisation(wrapped, optimizer, params, make_scheduler(st.cfg, optimizer, steps), second, amp)


def _loader_config(st: _Stage) -> LoaderConfig:
    """The training loader of the stage: the recipe's [loader] table with this rank's share of the batch."""
    run = st.plan.train
    return replace(
        st.plan.loader,
        image_size=run.image_size,
        batch_size=st.batch_per_rank,
        workers=run.workers,
        train=True,
        seed=run.seed,
        epoch=0,
        mask_prob=st.cfg.mask_prob if st.spec.uses_mask else 0.0,
        spectrogram=st.plan.model.spectrogram,
    )


def _loop_config(st: _Stage) -> LoopConfig:
    run = st.plan.train
    return LoopConfig(
        epochs=st.cfg.epochs,
        device=st.dist_info.device,
        grad_clip=st.cfg.grad_clip,
        save_every=run.save_every,
        log_every=run.log_every,
        batch_size=st.batch_per_rank,
        precision=run.precision,
        description=st.name,
    )


def run_stage(
    plan: TrainPlan,
    name: str,
    dist_info: DistInfo,
    manifest: dict,
    train_src: SplitSource,
    val_src: SplitSource | None,
) -> StageResult:
    """Train one stage into RUN/<name>/ (or skip it when complete).

    The stage's `batch_size` is the global batch: each of the world's R ranks takes batch_size / R.
    """
    t0 = time.perf_counter()
    st = _Stage(name, STAGES[name], plan.stages[name], plan, dist_info, Path(plan.train.out) / name)
    skipped = _open_stage_dir(st)
    if skipped is not None:
        return skipped
    run = plan.train
    st.batch_per_rank = per_rank_batch(st.cfg.batch_size, dist_info.world_size, f"[train.{name}] batch_size")
    log.info(
        "rank %d: %s takes %d samples per step of a global batch of %d",
        dist_info.rank,
        name,
        st.batch_per_rank,
        st.cfg.batch_size,
    )
    model = _build_model(st)
    amp = MixedPrecision(run.precision, dist_info.device)
    objective = _build_objective(st, model, amp)
    loader_cfg = _loader_config(st)
    loader = make_loader(train_src, loader_cfg, rank=dist_info.rank, world_size=dist_info.world_size)
    val_loader = metrics = None
    try:
        params = trainable_parameters(model, st.spec)
        opt = _optimisation(st, objective, params, st.cfg.epochs * len(loader), amp)
        state = _restore(st, model, opt, objective)
        metrics = _open_metrics(st, train_src, manifest, state.step)
        log.info(
            "%s: %s; trains %s; %d batches/epoch x %d epochs",
            name,
            st.spec.description,
            ", ".join(st.spec.trains),
            len(loader),
            st.cfg.epochs,
        )
        evaluate, val_loader = _validation(st, objective, model, val_src, loader_cfg, amp)
        callbacks = LoopCallbacks(
            checkpoint=_checkpointer(st, model, opt, objective),
            set_modes=lambda: apply_stage_modes(model, st.spec, True),
            evaluate=evaluate,
        )

        def epoch_loader(epoch: int):
            loader.set_epoch(epoch)
            return loader

        state = train_loop(_loop_config(st), opt, epoch_loader, state, dist_info, callbacks, metrics)
    finally:
        loader.close()
        if val_loader is not None:
            val_loader.close()
        if metrics is not None:
            metrics.close()
    log.info("rank %d finished %s after %d steps", dist_info.rank, name, state.step)
    last = _finish(st, manifest, train_src, state.step)
    barrier(dist_info)  # the next stage reads these weights
    status = "resumed" if st.resuming else "trained"
    return StageResult(name, status, state.step, time.perf_counter() - t0, last)


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
        return [
            run_stage(plan, name, dist_info, manifest, train_src, val_src) for name in plan.train.stages()
        ]
    finally:
        teardown(dist_info)
