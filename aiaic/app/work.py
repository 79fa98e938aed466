"""Colour one job of the app through the functions `aiaic-colorize` uses, so results are identical.

A photo goes through `aiaic.colorize.run.colorize` itself (same config, same model object): the PNG
the page offers is the one `aiaic-colorize PHOTO [--audio SOUND | --no-audio]` writes, byte for byte.
A film goes through `colorize_video` with the guidance `colorize` would build (a dropped sound guides
every second; otherwise the film's own soundtrack, second by second), plus a progress callback that
also carries cancellation.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from aiaic.app.jobs import Job
from aiaic.colorize.config import ColorizeConfig
from aiaic.colorize.guided import colorize_batch, no_guidance
from aiaic.colorize.run import colorize, fixed_guidance
from aiaic.colorize.video import colorize_video, output_suffix

log = logging.getLogger(__name__)


class JobColorizer:
    """Holds the loaded model; `__call__(job, on_frames)` colours a job into its folder.

    base: the colorize settings the server was started with (model choice, device, batch size,
      smoothing, silence level, video quality); each job replaces inputs, output, audio and no_audio.
    model: the `InferenceModel` `aiaic.colorize.run.load_model(base, device)` returned.
    """

    def __init__(self, base: ColorizeConfig, model, device: torch.device):
        self.base, self.model, self.device = base, model, device

    def warm_up(self) -> None:
        """Colour one tiny grey frame so the first user's photo does not wait for kernel compilation."""
        frame = np.full((1, 16, 16, 3), 128, np.uint8)
        colorize_batch(self.model, frame, [no_guidance(self.model, "missing")], self.device)

    def job_config(self, job: Job, dst: Path) -> ColorizeConfig:
        audio = job.audio if job.use_audio else None
        return dataclasses.replace(
            self.base,
            inputs=(job.source,),
            out=dst,
            audio=audio,
            audio_start=None,
            no_audio=not job.use_audio,
            overwrite=True,
            progress=False,
        )

    def __call__(self, job: Job, on_frames: Callable[[int], None]) -> None:
        if job.kind == "image":
            self.colour_image(job, on_frames)
        else:
            self.colour_video(job, on_frames)

    def colour_image(self, job: Job, on_frames: Callable[[int], None]) -> None:
        dst = job.folder / "result.png"
        summary = colorize(self.job_config(job, dst), model=self.model)
        res = summary.images[0]
        job.result, job.r, job.guidance = dst, res.r, res.guidance
        on_frames(1)

    def colour_video(self, job: Job, on_frames: Callable[[int], None]) -> None:
        dst = job.folder / f"result{output_suffix(job.source)}"
        cfg = self.job_config(job, dst)
        # as `colorize`: the dropped sound, none (no audio, a baseline model), or else the film's own
        _, fixed = fixed_guidance(cfg, self.model)
        res = colorize_video(job.source, dst, self.model, cfg, self.device, fixed=fixed, on_frames=on_frames)
        job.result, job.r, job.r_per_second = dst, res.mean_r, [round(r, 4) for r in res.r_per_second]
        job.total_frames = res.frames
        if fixed is not None:
            job.guidance = fixed.why
        elif res.guided_seconds:
            job.guidance = "soundtrack"
        else:
            job.guidance = "silent" if res.silent_seconds else "missing"
