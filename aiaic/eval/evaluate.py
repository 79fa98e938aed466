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
"reference": {split: {...}}, "unavailable": {"splits": {...}, "variants": {...}}, "lpips": LpipsStatus,
"protocol": {...}, "provenance": {...}}.

run_eval reads as its phases: `_open_splits` (which splits the manifest can give), `_load_variants`
(which variants the run can give), `_evaluate_split` per split (streamed batches, per-image rows,
running means, the grid), then metrics.json and report.md.
"""

from __future__ import annotations

import csv
import logging
import math
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
from aiaic.eval import protocol
from aiaic.eval.grid import GridRow, write_grid
from aiaic.eval.metrics import hasler_colorfulness, load_lpips, psnr, ssim
from aiaic.eval.provenance import provenance
from aiaic.eval.report import write_report
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
PSNR_CAP = 100.0  # dB; identical images (PSNR = inf) enter split means as this value


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

    def __post_init__(self) -> None:
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


class _Accumulator:
    """Running sums of one (split, variant): memory is constant in the number of images."""

    def __init__(self) -> None:
        self.n = 0
        self.sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0, "colorfulness": 0.0, "r": 0.0}
        self.capped = 0

    def add(self, m: dict) -> None:
        self.n += 1
        p = m["psnr"]
        if math.isinf(p):
            self.capped += 1
            p = PSNR_CAP
        self.sums["psnr"] += p
        self.sums["ssim"] += m["ssim"]
        self.sums["colorfulness"] += m["colorfulness"]
        self.sums["r"] += m.get("r") or 0.0
        if m.get("lpips") is not None:
            self.sums["lpips"] += m["lpips"]

    def result(self, with_lpips: bool) -> dict:
        n = max(self.n, 1)
        return {
            "psnr": self.sums["psnr"] / n,
            "ssim": self.sums["ssim"] / n,
            "lpips": self.sums["lpips"] / n if with_lpips else None,
            "colorfulness": self.sums["colorfulness"] / n,
            "mean_r": self.sums["r"] / n,
            "n": self.n,
            "psnr_capped": self.capped,
        }


class _GridPicker:
    """Up to n grid rows, spread over labels: the first sample of each new label is taken, and the
    first other samples fill what is left. Holds at most 2 n rows."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.first: list[GridRow] = []
        self.extra: list[GridRow] = []
        self.labels: set[str] = set()

    def wants(self, label: str) -> bool:
        return (label not in self.labels and len(self.first) < self.n) or len(self.extra) < self.n

    def add(self, row: GridRow) -> None:
        if row.label not in self.labels and len(self.first) < self.n:
            self.labels.add(row.label)
            self.first.append(row)
        elif len(self.extra) < self.n:
            self.extra.append(row)

    def rows(self) -> list[GridRow]:
        return (self.first + self.extra)[: self.n]


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


@torch.no_grad()
def _score_batch(samples, models, lpips_metric, device):
    """Per-image metrics of one batch for every variant and the grey reference."""
    gts = np.stack([protocol.protocol_image(s.image) for s in samples])  # [B, 256, 256, 3]
    L = luminance_uint8(gts, device)
    has = torch.tensor(
        [bool(s.meta.get("has_audio", s.mel is not None)) and s.mel is not None for s in samples]
    )
    preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    grey = join_full_resolution(L, torch.zeros(len(samples), 2, 1, 1, device=device))
    preds["grey_input"] = (grey, np.zeros(len(samples)))
    # the stored log-mel (what training read) and, where the model reads it, the VGGSound spectrogram
    pcm = [s.pcm if h else None for s, h in zip(samples, has.tolist(), strict=True)]
    mels = [s.mel if h else None for s, h in zip(samples, has.tolist(), strict=True)]
    audio_of: dict[int, dict[str, torch.Tensor]] = {}  # variants of one stage share its model and mel stats
    for name, model in models.items():
        if id(model.model) not in audio_of:
            audio_of[id(model.model)] = model.audio_input(pcm, mels=mels)
        audio = audio_of[id(model.model)]
        ab_n, r = model.predict(model_input(L, model.image_size), audio, has.to(device))
        preds[name] = (join_full_resolution(L, ab_n), r.float().cpu().numpy())
    rows: dict[str, list[dict]] = {}
    for name, (images, r) in preds.items():
        lp: list[float | None] = [None] * len(samples)
        if lpips_metric is not None:
            lp = [float(d) for d in lpips_metric.distance(images, gts)]
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
    return gts, preds, rows, has.numpy()


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
    """What one split's evaluation shares: the models, the metric, and where rows and images go."""

    models: dict
    lpips_metric: object
    device: torch.device
    writer: csv.DictWriter
    progress: Progress
    out: Path
    save_images: int


def _evaluate_split(
    ctx: _SplitRun, split: str, urls: list[str], total: int, batch_size: int, max_samples: int | None
) -> tuple[dict, dict, str | None]:
    """(results {variant: means}, reference {grey_input, ground_truth_colorfulness}, grid path or None)
    of one split; per-image rows go to `ctx.writer`."""
    task = ctx.progress.add_task(f"eval {split}", total=min(total, max_samples) if max_samples else total)
    acc = {n: _Accumulator() for n in ["grey_input", *ctx.models]}
    gt_colour, gt_n = 0.0, 0
    grid = _GridPicker(ctx.save_images)
    for batch in _batches(urls, batch_size, max_samples):
        gts, preds, rows, has = _score_batch(batch, ctx.models, ctx.lpips_metric, ctx.device)
        for i, s in enumerate(batch):
            label = str(s.meta.get("label", s.label_id))
            for name, per in rows.items():
                acc[name].add(per[i])
                ctx.writer.writerow(
                    {
                        "split": split,
                        "variant": name,
                        "key": s.key,
                        "label": label,
                        "has_audio": bool(has[i]),
                        **per[i],
                    }
                )
            gt_colour += hasler_colorfulness(gts[i])
            gt_n += 1
            if grid.wants(label):
                imgs = {n: preds[n][0][i] for n in preds} | {"ground_truth": gts[i]}
                r_full = float(preds["full"][1][i]) if "full" in preds else None
                grid.add(GridRow(s.key, label, imgs, r_full))
        ctx.progress.advance(task, len(batch))
    if gt_n == 0:
        raise InputError(urls[0] if urls else split, f"split '{split}' yielded no samples from {urls}")
    with_lpips = ctx.lpips_metric is not None
    results = {n: acc[n].result(with_lpips) for n in ctx.models}
    reference = {
        "grey_input": acc["grey_input"].result(with_lpips),
        "ground_truth_colorfulness": gt_colour / gt_n,
    }
    grid_path = None
    if grid.rows():
        path = write_grid(
            grid.rows(),
            GRID_COLUMNS,
            ctx.out / "grids" / f"{split}.png",
            f"{split}: grey input | baseline | audio-infused (r) | ground truth",
        )
        grid_path = str(path.relative_to(ctx.out))
    return results, reference, grid_path


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
    results: dict = {}
    reference: dict = {}
    grids: dict[str, str] = {}
    csv_path = out / "per_image.csv"
    with atomic_open(csv_path, "w", newline="") as fh, progress_bar(enabled=cfg.progress) as progress:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        ctx = _SplitRun(models, lpips_metric, device, writer, progress, out, cfg.save_images)
        for split, split_urls in urls.items():
            total = manifest.splits[split].samples
            results[split], reference[split], grid = _evaluate_split(
                ctx, split, split_urls, total, cfg.batch_size, cfg.max_samples
            )
            if grid is not None:
                grids[split] = grid
    metrics = {
        **results,
        "splits": list(urls),
        "variants": list(models),
        "backbone": next(iter(models.values())).model.config.backbone,
        "reference": reference,
        "unavailable": {"splits": unavailable_splits, "variants": unavailable_variants},
        "lpips": lpips_status.to_dict(),
        "protocol": protocol.describe(),
        "grids": grids,
        "provenance": provenance(run, shards, manifest, models),
        "config": config_to_dict(cfg),
    }
    write_config_json(out / "metrics.json", metrics)
    write_report(metrics, out / "report.md")
    log.info("wrote %s, %s, %s and %d grid(s)", out / "metrics.json", out / "report.md", csv_path, len(grids))
    return metrics
