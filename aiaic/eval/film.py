"""`aiaic-eval film`: how a colourized film compares with its colour reference, frame by frame and over time.

For a colour reference clip and a colourization of its grey version (same size; frames paired in
decoding order), per frame: PSNR, SSIM, LPIPS and colourfulness (`aiaic.eval.metrics`), with the
luminance kept from the reference as for images (the coloured frame's a*b* joined with the reference
frame's L, so only colour is compared, not the video codec's luminance error); and over time CDC
(`aiaic.eval.temporal`) of the coloured frames (L kept) and of the reference itself (the floor).
Shots are found on the reference's grey frames (`aiaic.colorize.shots`); each shot gets its own CDC.
Streamed: memory holds one batch of frame pairs and a few floats per frame.

Output per clip: OUT/<stem>.json (means, shots, per-frame series) and OUT/<stem>.png (JS at d = 1 over
time for the coloured film and the reference, cuts marked). A folder of references is paired with the
coloured folder's files by file stem (any video suffix); OUT/films.json holds every clip and the means
over clips (as TCVC averages CDC over clips).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
import torch

from aiaic.colorize.compose import join_full_resolution, luminance_uint8
from aiaic.colorize.config import VIDEO_SUFFIXES
from aiaic.colorize.shots import CutDetector, rgb_to_grey
from aiaic.errors import InputError
from aiaic.eval.metrics import LpipsMetric, hasler_colorfulness, load_lpips, psnr, ssim
from aiaic.eval.temporal import CdcAccumulator
from aiaic.io import write_json_atomic
from aiaic.lab import normalize_ab, rgb_to_lab
from aiaic.progress import progress_bar

log = logging.getLogger(__name__)

FRAME_METRICS = ("psnr", "ssim", "lpips", "colorfulness")


@dataclass(frozen=True)
class FilmEvalConfig:
    """reference / coloured: a clip each, or a folder each (paired by file stem); out: output folder
    (None: nothing written); lpips_weights / offline as `aiaic-eval`; max_frames: only the first
    frames of each clip; batch_size: frame pairs per LPIPS pass."""

    reference: Path
    coloured: Path
    out: Path | None = None
    lpips_weights: Path | None = None
    offline: bool = False
    device: str = "cpu"
    batch_size: int = 8
    max_frames: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_frames is not None and self.max_frames < 2:
            raise ValueError(f"max_frames must be >= 2 (CDC needs two frames), got {self.max_frames}")


def decode_rgb(path: Path) -> Iterator[np.ndarray]:
    """uint8 RGB frames [H, W, 3] of the first video stream of `path`, in decoding order."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(path, f"cannot be opened as a video ({e})") from e
    with container:
        if not container.streams.video:
            raise InputError(path, "has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise InputError(path, f"video cannot be decoded ({e})") from e


def frame_count(path: Path) -> int | None:
    try:
        with av.open(str(path)) as c:
            return int(c.streams.video[0].frames) or None if c.streams.video else None
    except (av.error.FFmpegError, OSError):
        return None


def keep_reference_l(coloured: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """uint8 RGB [B, H, W, 3]: the coloured frames' a*b* joined with the reference frames' L."""
    rgb = torch.from_numpy(np.ascontiguousarray(coloured)).permute(0, 3, 1, 2).float() / 255.0
    ab_n = normalize_ab(rgb_to_lab(rgb)[:, 1:])
    return join_full_resolution(luminance_uint8(reference), ab_n)


class _ClipScores:
    """Per-frame metrics, CDC of both clips and the cuts, accumulated batch by batch."""

    def __init__(self, lpips_metric: LpipsMetric | None):
        self.lpips = lpips_metric
        self.series: dict[str, list[float | None]] = {k: [] for k in FRAME_METRICS}
        self.cdc = CdcAccumulator()
        self.cdc_reference = CdcAccumulator()
        self.cuts = CutDetector()
        self.frames = 0

    def add(self, refs: list[np.ndarray], cols: list[np.ndarray]) -> None:
        ref, col = np.stack(refs), keep_reference_l(np.stack(cols), np.stack(refs))
        lp = self.lpips.distance(col, ref) if self.lpips is not None else [None] * len(ref)
        for i in range(len(ref)):
            cut = self.cuts.update(rgb_to_grey(ref[i]))
            self.cdc.add(col[i], cut=cut)
            self.cdc_reference.add(ref[i], cut=cut)
            self.series["psnr"].append(psnr(col[i], ref[i]))
            self.series["ssim"].append(ssim(col[i], ref[i]))
            lp_i = lp[i]
            self.series["lpips"].append(None if lp_i is None else float(lp_i))
            self.series["colorfulness"].append(hasler_colorfulness(col[i]))
        self.frames += len(ref)

    def shots(self) -> list[dict]:
        starts = [0, *self.cuts.cuts]
        ends = [*self.cuts.cuts, self.frames]
        return [
            {
                "start": s,
                "end": e,
                "frames": e - s,
                "cdc": c,
                "cdc_reference": cr,
                "psnr": _mean(self.series["psnr"][s:e]),
            }
            for s, e, c, cr in zip(
                starts, ends, self.cdc.shot_values(), self.cdc_reference.shot_values(), strict=True
            )
        ]


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def evaluate_clip(
    reference: Path, coloured: Path, lpips_metric: LpipsMetric | None, cfg: FilmEvalConfig
) -> dict:
    """Scores of one clip pair (see the module docstring); frames beyond the shorter clip are counted,
    not scored."""
    scores = _ClipScores(lpips_metric)
    total = frame_count(reference)
    if cfg.max_frames is not None:
        total = cfg.max_frames if total is None else min(total, cfg.max_frames)
    refs, cols = decode_rgb(reference), decode_rgb(coloured)
    with progress_bar(enabled=cfg.progress) as bar:
        task = bar.add_task(f"film {reference.name}", total=total)
        batch: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        for r, c in zip(refs, cols, strict=False):
            if r.shape != c.shape:
                raise InputError(
                    coloured,
                    f"frame size {c.shape[1]}x{c.shape[0]} differs from "
                    f"{reference}'s {r.shape[1]}x{r.shape[0]}",
                )
            batch[0].append(r)
            batch[1].append(c)
            if len(batch[0]) >= cfg.batch_size:
                scores.add(*batch)
                bar.advance(task, len(batch[0]))
                batch = ([], [])
            if cfg.max_frames is not None and scores.frames + len(batch[0]) >= cfg.max_frames:
                break
        if batch[0]:
            scores.add(*batch)
            bar.advance(task, len(batch[0]))
    if scores.frames < 2:
        raise InputError(reference, f"needs at least 2 frames paired with {coloured}, got {scores.frames}")
    extra_ref, extra_col = sum(1 for _ in refs), sum(1 for _ in cols)
    if cfg.max_frames is None and (extra_ref or extra_col):
        log.warning(
            "%s / %s: frame counts differ; %d + %d unpaired frames left out",
            reference,
            coloured,
            extra_ref,
            extra_col,
        )
    means = {k: _mean(v) for k, v in scores.series.items()}
    series: dict[str, list[float | None]] = {
        **scores.series,
        "js1": list(scores.cdc.per_frame),
        "js1_reference": list(scores.cdc_reference.per_frame),
    }
    return {
        "reference": str(reference),
        "coloured": str(coloured),
        "frames": scores.frames,
        "unpaired_frames": {"reference": extra_ref, "coloured": extra_col}
        if cfg.max_frames is None
        else None,
        **means,
        "cdc": scores.cdc.value(),
        "cdc_reference": scores.cdc_reference.value(),
        "cuts": list(scores.cuts.cuts),
        "shots": scores.shots(),
        "per_frame": {  # JSON has no inf or NaN: None there (PSNR of identical frames, JS of frame 0)
            k: [v if v is not None and math.isfinite(v) else None for v in vals] for k, vals in series.items()
        },
    }


def plot_clip(result: dict, png: Path) -> None:
    """PNG: JS divergence at d = 1 (mean over R, G, B) per frame, coloured vs reference, cuts as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    pf = {k: [math.nan if v is None else v for v in vals] for k, vals in result["per_frame"].items()}
    ax.plot(pf["js1"], lw=1.0, label=f"coloured (CDC {result['cdc']:.4f})")
    ax.plot(
        pf["js1_reference"],
        lw=1.0,
        color="grey",
        label=f"reference floor (CDC {result['cdc_reference']:.4f})",
    )
    for k, cut in enumerate(result["cuts"]):
        ax.axvline(cut, color="red", ls="--", lw=0.8, label="shot cut" if k == 0 else None)
    ax.set_xlabel("frame")
    ax.set_ylabel("JS(t-1, t), nats")
    ax.set_title(Path(result["coloured"]).name)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)


def pair_clips(reference: Path, coloured: Path) -> list[tuple[Path, Path]]:
    """[(reference clip, coloured clip)]: the two files, or the folders' videos paired by file stem."""
    if reference.is_file() and coloured.is_file():
        return [(reference, coloured)]
    for p in (reference, coloured):
        if not p.exists():
            raise InputError(p, "does not exist")
    if not (reference.is_dir() and coloured.is_dir()):
        raise InputError(
            coloured,
            f"give two clips or two folders (reference {reference} is a "
            f"{'folder' if reference.is_dir() else 'file'})",
        )
    col = {p.stem: p for p in sorted(coloured.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}
    refs = [p for p in sorted(reference.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES]
    pairs = [(p, col[p.stem]) for p in refs if p.stem in col]
    missing = [p.name for p in refs if p.stem not in col]
    if missing:
        log.warning("%s: no coloured clip for %s", coloured, ", ".join(missing))
    if not pairs:
        raise InputError(coloured, f"no video whose name matches one in {reference}")
    return pairs


def evaluate_films(cfg: FilmEvalConfig) -> dict:
    """Every clip pair's scores and the means over clips; JSON and plots written under cfg.out."""
    from aiaic.runs.device import resolve_device

    pairs = pair_clips(Path(cfg.reference), Path(cfg.coloured))
    device = resolve_device(cfg.device)
    offline = cfg.offline or os.environ.get("AIAIC_OFFLINE", "") not in ("", "0")
    lpips_metric, lpips_status = load_lpips(cfg.lpips_weights, device, download=not offline)
    clips = []
    for ref, col in pairs:
        res = evaluate_clip(ref, col, lpips_metric, cfg)
        if cfg.out is not None:
            out = Path(cfg.out)
            out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out / f"{col.stem}.json", res)
            plot_clip(res, out / f"{col.stem}.png")
        clips.append(res)
    keys = (*FRAME_METRICS, "cdc", "cdc_reference")
    summary = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "lpips": lpips_status.to_dict(),
        "clips": [{k: c[k] for k in ("reference", "coloured", "frames", *keys)} for c in clips],
        "means": {k: _mean([c[k] for c in clips]) for k in keys},
    }
    if cfg.out is not None:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(cfg.out) / "films.json", summary)
    return summary
