"""`run_eval(cfg)`: the paper's evaluation of a training run on split shards (`aiaic.eval.protocol`).

    aiaic-eval --run runs/demo --shards shards/split --split val --split ood --out reports/demo

For every requested split and variant (`aiaic.runs.variants`: baseline, full, full_missing_audio,
no_r, no_r_missing_audio, e2e; the old name missing_audio is accepted) the samples are streamed from
the split's shards (memory does not grow with the split), put through the protocol
(`aiaic.eval.protocol`) and scored with PSNR, SSIM, LPIPS and colourfulness. Splits the manifest
lacks and variants the run cannot provide (a stage not trained) are listed in `unavailable` with
the reason, never dropped silently. Two reference rows come for free: "grey_input" (ab = 0) and
the ground truth's own colourfulness.

Outputs in `out/`: metrics.json, per_image.csv, grids/<split>.png, report.md, eval-config.json.
metrics.json = {split: {variant: {"psnr", "ssim", "lpips" (null when unavailable), "colorfulness",
"n", "mean_r", "psnr_capped"}}, "splits": [...], "variants": [...], "backbone": name,
"reference": {split: {...}}, "unavailable": {"splits": {...}, "variants": {...}, "mismatched": {split: why}},
"lpips": LpipsStatus, "protocol": {...}, "segments": {split: {"in_event" | "background": {variant: ...}}},
"mismatched": {"seed", "window", "variants"} or null, "provenance": {...}}.

Settings (`EvalConfig`): `protocol` "crop" | "resize" and `gamut` "clip" | "grey" (`aiaic.eval.protocol`);
`audio` "own" | "mismatched": with "mismatched" every variant that hears the sample's own audio (full,
no_r, e2e) is also scored hearing the second of a sample of another class (`aiaic.eval.mismatch`: a
fixed derangement drawn from `seed`), as `<variant>_mismatched_audio`. A split whose samples carry AVE's
annotation (dataset "ave", or any segment outside its event) is also scored on its in-event and its
background segments separately ("segments").

run_eval reads as its phases: `_open_splits` (which splits the manifest can give), `_load_variants`
(which variants the run can give), `_evaluate_split` per split (streamed batches, per-image rows,
running means, the grid), then metrics.json and report.md.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from rich.progress import Progress

from aiaic.colorize.compose import join_full_resolution, luminance_uint8, model_input
from aiaic.config import config_to_dict, write_config_json
from aiaic.data.manifest import Manifest, SplitEntry, read_manifest
from aiaic.data.sample import decode_sample
from aiaic.data.tars import iter_samples
from aiaic.errors import ConfigError, InputError, RunError
from aiaic.eval import mismatch, protocol
from aiaic.eval.grid import write_grid
from aiaic.eval.metrics import LpipsMetric, hasler_colorfulness, load_lpips, psnr, ssim
from aiaic.eval.provenance import provenance
from aiaic.eval.report import write_report
from aiaic.eval.scores import SplitScores
from aiaic.eval.setting import collect_setting
from aiaic.io import atomic_open
from aiaic.progress import progress_bar
from aiaic.runs.device import resolve_device
from aiaic.runs.variants import VARIANTS as VARIANT_TABLE
from aiaic.runs.variants import canonical_name

if TYPE_CHECKING:
    from aiaic.runs.inference import InferenceModel

log = logging.getLogger(__name__)

VARIANTS = tuple(VARIANT_TABLE)
DEFAULT_SPLITS = ("val", "ood", "test")


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation.

    run: training run directory (`aiaic-train --out`). shards: split directory holding manifest.json.
    out: output directory. splits / variants: what to evaluate (those not available are listed; the
    old variant name missing_audio means full_missing_audio).
    lpips_weights: an ImageNet AlexNet state dict (else the torch hub cache; else downloaded into it
        unless `offline` or the environment sets AIAIC_OFFLINE=1; else LPIPS unavailable).
    save_images: samples per split shown in the grid. batch_size: samples per forward pass.
    max_samples: evaluate only the first N samples of each split (None = all).
    protocol: "crop" (short side to 256, centre crop) or "resize" (the whole frame to 256 x 256, the
        paper's backbones' preparation); gamut: "grey" (mixed with the grey of equal L) or "clip" (per
        channel, the usual convention). See `aiaic.eval.protocol`.
    audio: "own" (each sample's own second) or "mismatched" (also `<variant>_mismatched_audio`: every
        picture hears a second of another class; `aiaic.eval.mismatch`). seed: draws that derangement.
    """

    run: Path | None = None
    shards: Path | None = None
    out: Path | None = None
    splits: tuple[str, ...] = DEFAULT_SPLITS
    variants: tuple[str, ...] = VARIANTS
    lpips_weights: Path | None = None
    save_images: int = 8
    device: str = "auto"
    batch_size: int = 16
    max_samples: int | None = None
    progress: bool = True
    offline: bool = False
    protocol: str = "crop"
    gamut: str = "grey"
    audio: str = "own"
    seed: int = 0

    def __post_init__(self) -> None:
        protocol.check_setting(self.protocol, self.gamut)
        if self.audio not in ("own", "mismatched"):
            raise ValueError(f"audio must be 'own' or 'mismatched', got {self.audio!r}")
        object.__setattr__(self, "variants", tuple(dict.fromkeys(canonical_name(v) for v in self.variants)))
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise ValueError(f"unknown variants {bad}; known: {list(VARIANTS)}")
        if not self.variants or not self.splits:
            raise ValueError("at least one split and one variant are needed")
        if self.batch_size < 1 or self.save_images < 0:
            raise ValueError("batch_size must be >= 1 and save_images >= 0")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {self.max_samples}")


def _split_urls(shards: Path, split: str, entry: SplitEntry) -> list[str]:
    urls = []
    for rel in entry.shards:
        p = Path(shards) / rel
        if not p.is_file():
            raise InputError(p, f"shard of split '{split}' listed in the manifest is missing")
        urls.append(str(p))
    return urls


def _batches(urls: list[str], batch_size: int, limit: int | None):
    """Decoded samples of the shards, in shard order, in lists of `batch_size`."""
    batch, seen = [], 0
    for url in urls:
        for raw in iter_samples(url):
            try:
                batch.append(decode_sample(raw))
            except (ValueError, KeyError, OSError) as e:
                raise InputError(url, f"sample {raw.get('__key__')!r} cannot be decoded ({e})") from e
            seen += 1
            if len(batch) == batch_size:
                yield batch
                batch = []
            if limit is not None and seen >= limit:
                if batch:
                    yield batch
                return
    if batch:
        yield batch


def _load_variants(cfg: EvalConfig, run: Path, device: torch.device) -> tuple[dict, dict]:
    from aiaic.runs.inference import load_inference, stage_dir_for

    models, missing = {}, {}
    by_stage: dict[Path, InferenceModel] = {}  # variants of one stage share its weights
    for v in cfg.variants:
        try:
            stage_dir = stage_dir_for(run, v)
            if stage_dir in by_stage:
                models[v] = replace(by_stage[stage_dir], variant=v)
            else:
                models[v] = by_stage[stage_dir] = load_inference(run, v, device)
        except RunError as e:
            missing[v] = str(e)
            log.warning("variant %s not available: %s", v, e)
    if not models:
        raise RunError(
            f"{cfg.run}: none of the variants {list(cfg.variants)} can be loaded: "
            + "; ".join(f"{k}: {m}" for k, m in missing.items())
        )
    return models, missing


def _own_audio(samples) -> tuple[list, list, torch.Tensor]:
    """(pcm, log-mels, has_audio bool [B]) of the samples themselves (None where a sample has none)."""
    has = torch.tensor(
        [bool(s.meta.get("has_audio", s.mel is not None)) and s.mel is not None for s in samples]
    )
    pcm = [s.pcm if h else None for s, h in zip(samples, has.tolist(), strict=True)]
    mels = [s.mel if h else None for s, h in zip(samples, has.tolist(), strict=True)]
    return pcm, mels, has


def _hears_own_audio(variant: str) -> bool:
    spec = VARIANT_TABLE[variant]
    return spec.c == "audio" and spec.audio == "given"


@torch.no_grad()
def _predict(ctx: _SplitRun, L: torch.Tensor, models: dict, pcm: list, mels: list, has: torch.Tensor) -> dict:
    """{variant: (uint8 RGB [B, 256, 256, 3], r [B])} of `models` hearing (pcm, mels)."""
    preds = {}
    audio_of: dict[int, dict[str, torch.Tensor]] = {}  # variants of one stage share its model and mel stats
    for name, model in models.items():
        if id(model.model) not in audio_of:
            audio_of[id(model.model)] = model.audio_input(pcm, mels=mels)
        audio = audio_of[id(model.model)]
        ab_n, r = model.predict(model_input(L, model.image_size), audio, has.to(ctx.device))
        preds[name] = (join_full_resolution(L, ab_n, ctx.gamut), r.float().cpu().numpy())
    return preds


@torch.no_grad()
def _score_batch(ctx: _SplitRun, samples, donors=None):
    """Per-image metrics of one batch for every variant and the grey reference; with `donors` (the
    samples whose audio each one hears instead of its own), also `<variant>_mismatched_audio` for
    every variant that hears its own audio."""
    gts = np.stack([protocol.protocol_image(s.image, protocol=ctx.protocol) for s in samples])
    L = luminance_uint8(gts, ctx.device)  # [B, 1, 256, 256]
    pcm, mels, has = _own_audio(samples)
    grey = join_full_resolution(L, torch.zeros(len(samples), 2, 1, 1, device=ctx.device), ctx.gamut)
    preds: dict[str, tuple[np.ndarray, np.ndarray]] = {"grey_input": (grey, np.zeros(len(samples)))}
    preds |= _predict(ctx, L, ctx.models, pcm, mels, has)
    if donors is not None:
        hearing = {v: m for v, m in ctx.models.items() if _hears_own_audio(v)}
        pcm, mels, has = _own_audio(donors)
        mismatched = _predict(ctx, L, hearing, pcm, mels, has)
        preds |= {mismatch.mismatched_name(v): p for v, p in mismatched.items()}
    rows: dict[str, list[dict]] = {}
    for name, (images, r) in preds.items():
        lp: list[float | None] = [None] * len(samples)
        if ctx.lpips_metric is not None:
            lp = [float(d) for d in ctx.lpips_metric.distance(images, gts)]
        rows[name] = [
            {
                "psnr": psnr(images[i], gts[i]),
                "ssim": ssim(images[i], gts[i]),
                "colorfulness": hasler_colorfulness(images[i]),
                "lpips": lp[i],
                "r": float(r[i]),
            }
            for i in range(len(samples))
        ]
    return gts, preds, rows, _own_audio(samples)[2].numpy()


def _open_splits(
    cfg: EvalConfig, shards: Path, manifest: Manifest
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """({split: shard urls} of the requested splits the manifest has, {split: why not} of the others);
    InputError when none is left."""
    unavailable: dict[str, str] = {}
    for split in cfg.splits:
        entry = manifest.splits.get(split)
        if entry is None:
            there = sorted(manifest.splits)
            unavailable[split] = f"not in {shards / 'manifest.json'} (splits there: {there})"
        elif not entry.shards or not entry.samples:
            unavailable[split] = "the manifest lists no samples for it"
    for split, why in unavailable.items():
        log.warning("split %s not available: %s", split, why)
    splits = [s for s in cfg.splits if s not in unavailable]
    if not splits:
        raise InputError(
            shards,
            f"none of the splits {list(cfg.splits)} can be evaluated: "
            + "; ".join(f"{k}: {m}" for k, m in unavailable.items()),
        )
    return {s: _split_urls(shards, s, manifest.splits[s]) for s in splits}, unavailable


CSV_FIELDS = ["split", "variant", "key", "label", "has_audio", "r", "psnr", "ssim", "lpips", "colorfulness"]
GRID_COLUMNS = [
    ("grey_input", "grey input"),
    ("baseline", "baseline"),
    ("full", "audio-infused"),
    ("ground_truth", "ground truth"),
]


@dataclass
class _SplitRun:
    """What one split's evaluation shares: the models, the metric, the protocol, and where rows and
    images go."""

    models: dict
    lpips_metric: LpipsMetric | None
    device: torch.device
    writer: csv.DictWriter
    progress: Progress
    out: Path
    cfg: EvalConfig

    @property
    def protocol(self) -> str:
        return self.cfg.protocol

    @property
    def gamut(self) -> str:
        return self.cfg.gamut


def _scored_batches(ctx: _SplitRun, split: str, urls: list[str], mismatched: bool):
    """(batch, scores) of the split, in batches of `cfg.batch_size`; with `mismatched`, each window of
    `mismatch.WINDOW` samples gets its derangement first (`mismatch.donors`)."""
    cfg = ctx.cfg
    if not mismatched:
        for batch in _batches(urls, cfg.batch_size, cfg.max_samples):
            yield batch, _score_batch(ctx, batch)
        return
    for w, window in enumerate(mismatch.windows(_batches(urls, mismatch.WINDOW, cfg.max_samples))):
        _, _, has = _own_audio(window)
        try:
            donor = mismatch.donors(
                [s.label_id for s in window], has.tolist(), mismatch.window_rng(cfg.seed, w)
            )
        except ValueError as e:  # the first window was checked (_mismatch_possible); a later one fails here
            raise InputError(urls[0], f"split '{split}', samples {w * mismatch.WINDOW}..: {e}") from e
        for start in range(0, len(window), cfg.batch_size):
            batch = window[start : start + cfg.batch_size]
            donors = [window[int(j)] for j in donor[start : start + cfg.batch_size]]
            yield batch, _score_batch(ctx, batch, donors)


def _mismatch_possible(ctx: _SplitRun, urls: list[str]) -> str | None:
    """Why the split cannot be scored with mismatched audio (its first window has no derangement), or None."""
    first = next(mismatch.windows(_batches(urls, mismatch.WINDOW, ctx.cfg.max_samples)), [])
    _, _, has = _own_audio(first)
    try:
        mismatch.donors([s.label_id for s in first], has.tolist(), mismatch.window_rng(ctx.cfg.seed, 0))
    except ValueError as e:
        return str(e)
    return None


def _evaluate_split(ctx: _SplitRun, split: str, urls: list[str], total: int, mismatched: bool) -> dict:
    """{"results": {entry: means}, "reference": {grey_input, ground_truth_colorfulness}, "segments":
    {segment: {entry: means}}, "grid": path or None} of one split; per-image rows go to `ctx.writer`."""
    cfg = ctx.cfg
    task = ctx.progress.add_task(
        f"eval {split}", total=min(total, cfg.max_samples) if cfg.max_samples else total
    )
    names = [*ctx.models] + [
        mismatch.mismatched_name(v) for v in ctx.models if mismatched and _hears_own_audio(v)
    ]
    scores = SplitScores(["grey_input", *names], cfg.save_images)
    for batch, scored in _scored_batches(ctx, split, urls, mismatched):
        scores.add(ctx.writer, split, batch, scored)
        ctx.progress.advance(task, len(batch))
    if scores.gt_n == 0:
        raise InputError(urls[0] if urls else split, f"split '{split}' yielded no samples from {urls}")
    with_lpips = ctx.lpips_metric is not None
    grid_path = None
    if scores.grid.rows():
        path = write_grid(
            scores.grid.rows(),
            GRID_COLUMNS,
            ctx.out / "grids" / f"{split}.png",
            f"{split}: grey input | baseline | audio-infused (r) | ground truth",
        )
        grid_path = str(path.relative_to(ctx.out))
    return {
        "results": {n: scores.acc[n].result(with_lpips) for n in names},
        "reference": {
            "grey_input": scores.acc["grey_input"].result(with_lpips),
            "ground_truth_colorfulness": scores.gt_colour / scores.gt_n,
        },
        "segments": {
            seg: {n: acc[n].result(with_lpips) for n in ["grey_input", *names] if n in acc}
            for seg, acc in sorted(scores.segments.items())
        },
        "grid": grid_path,
    }


def run_eval(cfg: EvalConfig) -> dict:
    """Evaluate (see the module docstring); returns the metrics.json content."""
    if cfg.run is None or cfg.shards is None or cfg.out is None:
        raise ConfigError("--run, --shards and --out are required")
    run, shards, out = Path(cfg.run), Path(cfg.shards), Path(cfg.out)
    if not run.is_dir():
        raise InputError(run, "run directory not found")
    manifest = read_manifest(shards)
    device = resolve_device(cfg.device)
    urls, unavailable_splits = _open_splits(cfg, shards, manifest)
    models, unavailable_variants = _load_variants(cfg, run, device)
    offline = cfg.offline or os.environ.get("AIAIC_OFFLINE", "") not in ("", "0")
    lpips_metric, lpips_status = load_lpips(cfg.lpips_weights, device, download=not offline)
    if not lpips_status.available:
        log.warning("LPIPS unavailable: %s", lpips_status.reason)

    out.mkdir(parents=True, exist_ok=True)
    write_config_json(out / "eval-config.json", cfg)
    per_split: dict[str, dict] = {}
    unavailable_mismatched: dict[str, str] = {}
    csv_path = out / "per_image.csv"
    with atomic_open(csv_path, "w", newline="") as fh, progress_bar(enabled=cfg.progress) as progress:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        ctx = _SplitRun(models, lpips_metric, device, writer, progress, out, cfg)
        for split, split_urls in urls.items():
            mismatched = cfg.audio == "mismatched"
            why = _mismatch_possible(ctx, split_urls) if mismatched else None
            if why is not None:
                unavailable_mismatched[split] = why
                log.warning("split %s: no mismatched audio: %s", split, why)
            total = manifest.splits[split].samples
            per_split[split] = _evaluate_split(ctx, split, split_urls, total, mismatched and why is None)
    metrics = {
        **{split: r["results"] for split, r in per_split.items()},
        "splits": list(urls),
        "variants": list(models),
        "backbone": next(iter(models.values())).model.config.backbone,
        "reference": {split: r["reference"] for split, r in per_split.items()},
        "segments": {split: r["segments"] for split, r in per_split.items() if r["segments"]},
        "mismatched": (
            {
                "seed": cfg.seed,
                "window": mismatch.WINDOW,
                "variants": [v for v in models if _hears_own_audio(v)],
            }
            if cfg.audio == "mismatched"
            else None
        ),
        "unavailable": {
            "splits": unavailable_splits,
            "variants": unavailable_variants,
            "mismatched": unavailable_mismatched,
        },
        "lpips": lpips_status.to_dict(),
        "protocol": protocol.describe(protocol.EVAL_SIZE, cfg.protocol, cfg.gamut),
        "grids": {split: r["grid"] for split, r in per_split.items() if r["grid"] is not None},
        "setting": collect_setting(run, manifest, models),
        "provenance": provenance(run, shards, manifest, models),
        "config": config_to_dict(cfg),
    }
    write_config_json(out / "metrics.json", metrics)
    write_report(metrics, out / "report.md")
    log.info("wrote %s, %s, %s", out / "metrics.json", out / "report.md", csv_path)
    return metrics
