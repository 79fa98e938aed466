"""`colorize(cfg)`: the library entry point of `aiaic-colorize` (images and videos, one call).

    aiaic-colorize ../shared/data/images/bw --run runs/demo -o out/ --audio dog_barking.wav
    aiaic-colorize ../shared/data/clips/moviepy/chaplin_bw_film.mp4 --run runs/demo -o out/chaplin.mp4

Inputs are files or folders (searched recursively for image and video suffixes). Outputs go to
`out/` (images as `<name>.png`, videos as `<name>.mp4`, or `<name>.mkv` when the soundtrack's codec
is not one MP4 players take, such as Vorbis or PCM; a folder's files keep their relative paths),
or to `out` itself when it names a file and there is one input. A summary with the config used is
written beside the outputs (`colorize-summary.json`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aiaic.colorize.audio import read_audio_window
from aiaic.colorize.config import (
    IMAGE_SUFFIXES,
    VIDEO_OUTPUT_SUFFIXES,
    VIDEO_SUFFIXES,
    ColorizeConfig,
)
from aiaic.colorize.guided import guidance_from_pcm, no_guidance
from aiaic.colorize.image import ImageResult, colorize_image
from aiaic.colorize.video import VideoResult, colorize_video, output_suffix
from aiaic.config import config_to_dict, write_config_json
from aiaic.errors import ConfigError, InputError
from aiaic.models.backbones.registry import spec_of
from aiaic.progress import progress_bar
from aiaic.runs.device import resolve_device

log = logging.getLogger(__name__)


@dataclass
class ColorizeSummary:
    images: list[ImageResult] = field(default_factory=list)
    videos: list[VideoResult] = field(default_factory=list)
    summary_path: Path | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Job:
    kind: str  # "image" or "video"
    src: Path
    dst: Path


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def plan_jobs(inputs: tuple[Path, ...], out: Path, overwrite: bool) -> list[Job]:
    """Map inputs (files or folders) to output paths; clear errors for missing or unknown inputs."""
    if not inputs:
        raise ConfigError("no input given: pass image or video files or folders")
    found: list[tuple[Path, Path, str]] = []  # (src, relative output stem, kind)
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and _kind(f) is not None)
            if not files:
                raise InputError(p, "folder holds no image or video files")
            found += [(f, f.relative_to(p).with_suffix(""), _kind(f)) for f in files]  # type: ignore[misc]
        elif p.is_file():
            kind = _kind(p)
            if kind is None:
                raise InputError(
                    p,
                    f"unknown file type '{p.suffix}' (images: {', '.join(IMAGE_SUFFIXES)}; "
                    f"videos: {', '.join(VIDEO_SUFFIXES)})",
                )
            found.append((p, Path(p.stem), kind))
        else:
            raise InputError(p, "does not exist")
    single_file = len(found) == 1 and Path(inputs[0]).is_file()
    jobs: list[Job] = []
    for src, stem, kind in found:
        if single_file and out.suffix:
            dst = out
            ok = IMAGE_SUFFIXES if kind == "image" else VIDEO_OUTPUT_SUFFIXES
            if dst.suffix.lower() not in ok:
                raise ConfigError(f"{dst}: a {kind} output must end in one of {', '.join(ok)}")
        else:
            dst = out / stem.with_suffix(".png" if kind == "image" else output_suffix(src))
        jobs.append(Job(kind, src, dst))
    seen: dict[Path, Path] = {}
    for j in jobs:
        if j.dst.resolve() == j.src.resolve():
            raise ConfigError(f"{j.dst}: output would overwrite its input")
        if j.dst in seen:
            raise ConfigError(f"{seen[j.dst]} and {j.src} would both be written to {j.dst}")
        seen[j.dst] = j.src
        if j.dst.exists() and not overwrite:
            raise ConfigError(f"{j.dst} exists; pass --overwrite to replace it")
    return jobs


def load_model(cfg: ColorizeConfig, device):
    """The InferenceModel that `cfg` asks for: a trained run and its variant (`cfg.run`), or a backbone
    alone from its released weights (`cfg.backbone`, `cfg.backbone_weights`; variant "baseline")."""
    from aiaic.runs.inference import load_backbone, load_inference

    if cfg.run is None:
        if cfg.backbone is None:
            raise ConfigError(
                "--run RUN (a training run directory) or --backbone NAME (with "
                "--backbone-weights FILE) is required"
            )
        if cfg.backbone_weights is None:
            raise ConfigError(
                f"--backbone {cfg.backbone} needs --backbone-weights FILE (its released "
                "weights): a randomly initialised backbone colours nothing"
            )
        size = cfg.image_size or spec_of(cfg.backbone).input_policy().default_size  # its authors' size
        return _for_inference(load_backbone(cfg.backbone, Path(cfg.backbone_weights), size, device), cfg.seed)
    model = load_inference(Path(cfg.run), cfg.variant, device)
    run_backbone = model.model.config.backbone
    if cfg.backbone is not None and cfg.backbone != run_backbone:
        raise ConfigError(
            f"--backbone {cfg.backbone} contradicts --run {cfg.run}, which was trained on "
            f"{run_backbone}; give one of them"
        )
    if cfg.backbone_weights is not None:
        log.info(
            "--backbone-weights %s ignored: the run's own trained weights are used", cfg.backbone_weights
        )
    if cfg.image_size is not None:
        problem = model.model.backbone.input_policy.problem(cfg.image_size, cfg.image_size)
        if problem:
            raise ConfigError(f"--image-size {cfg.image_size}: {problem} for backbone {run_backbone}")
        model.image_size = cfg.image_size
    return _for_inference(model, cfg.seed)


def _for_inference(model, seed: int | None = None):
    """Put a backbone that runs faster in channels-last layout (its spec's
    `runtime.channels_last_inference`) into it; `seed` (if given) seeds the backbone's random choices
    (its `seed` attribute: DISCO's anchors)."""
    backbone = model.model.backbone
    if seed is not None:
        if hasattr(backbone, "seed"):
            backbone.seed = seed
        else:
            log.info("--seed %d ignored: backbone %s makes no random choices", seed, type(backbone).__name__)
    if spec_of(model.model.config.backbone).runtime.channels_last_inference:
        backbone.to(memory_format=torch.channels_last)
    return model


def _backbone_name(model) -> str | None:
    config = getattr(getattr(model, "model", None), "config", None)
    return getattr(config, "backbone", None)


def fixed_guidance(cfg: ColorizeConfig, model):
    """(the guidance of every image, the fixed guidance of every video or None where each video's own
    soundtrack guides it): from `--audio`, or none (`--no-audio`, a baseline model, or no sound)."""
    if cfg.audio is not None:
        pcm, start = read_audio_window(Path(cfg.audio), cfg.audio_start, model.mel_config)
        guidance = guidance_from_pcm(model, pcm, cfg.silence_db)
        silent = " (silent there: r = 0)" if not guidance.has_audio else ""
        log.info("audio guidance: %s, %.2f-%.2f s%s", cfg.audio, start, start + 1.0, silent)
        return guidance, guidance
    if cfg.no_audio or getattr(model, "variant", None) == "baseline":
        guidance = no_guidance(model, "disabled")  # the baseline never uses audio
        return guidance, guidance
    return no_guidance(model, "missing"), None


def _log_video(res: VideoResult) -> None:
    log.info(
        "%s -> %s: %d frames %dx%d @ %.3g fps, %.2f s, audio %s; guided seconds %d, silent %d, "
        "without audio %d, mean r %.2f; %.1f frames/s",
        res.source,
        res.output,
        res.frames,
        res.width,
        res.height,
        res.fps,
        res.duration,
        res.audio,
        res.guided_seconds,
        res.silent_seconds,
        res.unguided_seconds,
        res.mean_r,
        res.frames_per_second,
    )


def _run_jobs(
    jobs: list[Job], cfg: ColorizeConfig, model, device, guidance, video_fixed, summary: ColorizeSummary
) -> None:
    """Colour every job, images first, under one progress bar; results go into `summary`."""
    images = [j for j in jobs if j.kind == "image"]
    fields = ("{task.fields[unit]}", "[cyan]{task.fields[rate]}")
    with progress_bar(fields=fields, enabled=cfg.progress) as progress:
        if images:
            task = progress.add_task("images", total=len(images), unit="images", rate="")
            for j in images:
                summary.images.append(colorize_image(j.src, j.dst, model, guidance, device, cfg.max_pixels))
                progress.advance(task)
        for j in (j for j in jobs if j.kind == "video"):
            task = progress.add_task(j.src.name, total=None, unit="frames", rate="")
            started = time.perf_counter()

            def advance(n: int, task=task, started=started) -> None:
                progress.advance(task, n)
                done = progress.tasks[task].completed
                progress.update(task, rate=f"{done / max(time.perf_counter() - started, 1e-9):.1f} frames/s")

            res = colorize_video(j.src, j.dst, model, cfg, device, fixed=video_fixed, on_frames=advance)
            progress.update(task, total=res.frames)
            summary.videos.append(res)
            _log_video(res)


def _write_summary(summary: ColorizeSummary, cfg: ColorizeConfig, model, jobs: list[Job], out: Path) -> None:
    summary_dir = out if not (len(jobs) == 1 and jobs[0].dst == out) else out.parent
    summary_dir.mkdir(parents=True, exist_ok=True)
    summary.summary_path = summary_dir / "colorize-summary.json"
    model_info = {
        "variant": getattr(model, "variant", None),
        "image_size": model.image_size,
        "backbone": _backbone_name(model),
    }
    write_config_json(
        summary.summary_path,
        {
            "config": config_to_dict(cfg),
            "model": model_info,
            "images": [r.to_dict() for r in summary.images],
            "videos": [r.to_dict() for r in summary.videos],
            "seconds": summary.seconds,
        },
    )


def colorize(cfg: ColorizeConfig, model=None) -> ColorizeSummary:
    """Colorize every input of `cfg` (see the module docstring). `model`: an already loaded InferenceModel."""
    if cfg.out is None:
        raise ConfigError("-o/--out is required")
    out = Path(cfg.out)
    jobs = plan_jobs(tuple(cfg.inputs), out, cfg.overwrite)
    device = resolve_device(cfg.device)
    if model is None:
        model = load_model(cfg, device)
        if cfg.engine == "onnxruntime":
            from aiaic.engine.select import onnx_engine, sample_frames

            frames = sample_frames([j.src for j in jobs], max_pixels=cfg.max_pixels)
            model = onnx_engine(model, cfg.precision, frames)
    guidance, video_fixed = fixed_guidance(cfg, model)
    if any(j.kind == "image" for j in jobs) and not guidance.has_audio:
        log.info("no audio for the images: the visual backbone alone colours them (r = 0)")
    summary = ColorizeSummary()
    t0 = time.perf_counter()
    _run_jobs(jobs, cfg, model, device, guidance, video_fixed, summary)
    summary.seconds = time.perf_counter() - t0
    _write_summary(summary, cfg, model, jobs, out)
    log.info(
        "colorized %d images and %d videos in %.1f s; summary %s",
        len(summary.images),
        len(summary.videos),
        summary.seconds,
        summary.summary_path,
    )
    return summary
