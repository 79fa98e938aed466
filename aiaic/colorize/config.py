"""`ColorizeConfig`: everything `aiaic-colorize` needs, from the recipe's [colorize] table and the flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv")
VIDEO_OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov")


@dataclass(frozen=True)
class ColorizeConfig:
    """Settings of one colorize call. Units: seconds, dBFS, frames.

    inputs: image or video files, or folders (searched recursively).
    run: training run directory (`aiaic-train --out`); variant: which model of it colours ("full" default).
    out: output folder, or an output file when there is exactly one input file.
    audio: a file whose one-second window guides every image (and every second of a video, replacing
      its own soundtrack); audio_start: where that window starts (default: the middle of the audio).
    no_audio: colour with the visual backbone alone (r = 0); a video's soundtrack is still copied.
    smooth_seconds: width of the cross-fade between one second's guidance and the next (0 = none,
      1 = linear from one second's centre to the next; each faded frame runs the model twice).
    silence_db: a second whose RMS is at or below this level (dBFS) counts as silent (r = 0).
    max_seconds: colour only the first seconds of each video (None = all of it).
    crf / preset: libx264 quality and speed for video output.
    backbone: colour with this registered backbone alone (e.g. "ddcolor-tiny"), from its released
      weights `backbone_weights` (a file or a Hugging Face repo id), without a run and without audio.
      With `run`, the run's own backbone and weights are used: a different `backbone` is refused,
      `backbone_weights` is ignored (with a note).
    image_size: the side (pixels) the model colours at (default: the run's training size; for a
      backbone alone its authors' inference size: 512 for DDColor, 256 for DISCO, 224 for ChromaGAN).
    seed: seeds a backbone's own random choices (DISCO's k-means anchors; default: the backbone's own,
      130 for DISCO as its official inference script); a backbone without any ignores it (logged).
    temporal: "stable" (default) colours a film as one film: the guidance cross-fades continuously
      from one second's centre to the next (smooth_seconds is taken as 1) and the output's ab is
      stabilised along the optical flow, reset at shot cuts (`aiaic.colorize.temporal`); "none" colours
      each frame on its own (today's output, for comparison). Still images are unaffected.
    batch_size: video frames per forward pass (at most; fewer for big frames, see `frame_batch`).
    max_pixels: the largest picture accepted (width x height); a bigger one is refused.
    engine: "torch" or "onnxruntime" (the model exported to ONNX and run by ONNX Runtime, `aiaic.engine`).
    precision: "fp32", or "int8" (onnxruntime only: dynamically quantized weights; its cost printed).
    """

    inputs: tuple[Path, ...] = ()
    run: Path | None = None
    out: Path | None = None
    variant: str = "full"
    audio: Path | None = None
    audio_start: float | None = None
    no_audio: bool = False
    device: str = "auto"
    batch_size: int = 8
    smooth_seconds: float = 0.5
    silence_db: float = -60.0
    max_seconds: float | None = None
    crf: int = 18
    preset: str = "veryfast"
    overwrite: bool = False
    progress: bool = True
    backbone: str | None = None
    backbone_weights: Path | None = None
    image_size: int | None = None
    temporal: str = "stable"
    seed: int | None = None
    max_pixels: int = 250_000_000
    engine: str = "torch"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.smooth_seconds <= 1.0:
            raise ValueError(f"smooth_seconds must be in [0, 1], got {self.smooth_seconds}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.audio is not None and self.no_audio:
            raise ValueError("--audio and --no-audio exclude each other")
        if self.audio_start is not None and self.audio is None:
            raise ValueError("--audio-start needs --audio")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if self.backbone is not None and self.run is None and (self.audio is not None):
            raise ValueError(
                "--audio needs --run (a model trained with audio); --backbone alone colours without audio"
            )
        if self.temporal not in ("none", "stable"):
            raise ValueError(f"temporal must be none or stable, got {self.temporal!r}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.engine not in ("torch", "onnxruntime"):
            raise ValueError(f"engine must be torch or onnxruntime, got {self.engine!r}")
        if self.precision not in ("fp32", "int8"):
            raise ValueError(f"precision must be fp32 or int8, got {self.precision!r}")
        if self.precision == "int8" and self.engine != "onnxruntime":
            raise ValueError("--precision int8 needs --engine onnxruntime")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf}")
