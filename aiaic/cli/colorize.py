r"""`aiaic-colorize`: colour grey photos and old films (guided by their own soundtrack) with a trained run.

    aiaic-colorize ../shared/data/images/bw --run runs/demo -o out/ --audio dog_barking.wav
    aiaic-colorize ../shared/data/clips/moviepy/chaplin_bw_film.mp4 --run runs/demo -o out/chaplin.mp4
    aiaic-colorize film.mkv --run runs/vgg -o out/ --device cuda --batch-size 32 \
        --config pipelines/vggsound.toml
    aiaic-colorize photo.jpg --backbone ddcolor-tiny --backbone-weights ddcolor_paper_tiny.pth -o out/

Images keep their full resolution and luminance; videos keep size, frame count, frame rate, length
and their audio stream. Flags override the recipe's [colorize] table.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aiaic.cli._common import setup_logging, user_errors
from aiaic.config import build_config, load_recipe, recipe_section

app = typer.Typer(
    name="aiaic-colorize",
    help="Colorize images and videos with a trained run, or a pretrained backbone alone.",
    add_completion=False,
)


@app.command()
def colorize(
    inputs: list[Path] = typer.Argument(None, help="Image or video files, or folders (recursive)."),
    run: Path = typer.Option(None, "--run", help="Training run directory (aiaic-train --out)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder, or output file for a single input."),
    audio: Path = typer.Option(
        None, "--audio", help="Audio file (any PyAV-readable) guiding images (and videos)."
    ),
    audio_start: float = typer.Option(
        None, "--audio-start", help="Start (s) of the one-second window (default: middle)."
    ),
    no_audio: bool = typer.Option(None, "--no-audio/--with-audio", help="Visual backbone alone (r = 0)."),
    variant: str = typer.Option(None, "--variant", help="Model variant of the run (default full)."),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda."),
    batch_size: int = typer.Option(None, "--batch-size", help="Frames per forward pass (default 8)."),
    max_seconds: float = typer.Option(
        None, "--max-seconds", help="Colour only the first seconds of each video."
    ),
    smooth_seconds: float = typer.Option(
        None,
        "--smooth-seconds",
        help="Cross-fade width between seconds (0..1, default 0.5; --temporal stable uses 1).",
    ),
    temporal: str = typer.Option(
        None,
        "--temporal",
        help="Films: stable (default; colours held over time along the motion, reset at cuts) | none "
        "(each frame on its own).",
    ),
    overwrite: bool = typer.Option(None, "--overwrite/--no-overwrite", help="Replace existing outputs."),
    backbone: str = typer.Option(
        None, "--backbone", help="Colour with this backbone alone (e.g. ddcolor-tiny), no run, no audio."
    ),
    backbone_weights: Path = typer.Option(
        None,
        "--backbone-weights",
        help="The backbone's released weights (.pth, pytorch_model.bin, or a Hugging Face repo id).",
    ),
    image_size: int = typer.Option(
        None,
        "--image-size",
        help="Side (px) the model colours at (backbone alone: its own, DDColor 512, DISCO 256).",
    ),
    seed: int = typer.Option(
        None, "--seed", help="Seed of the backbone's random choices (DISCO's anchors; default 130)."
    ),
    max_pixels: int = typer.Option(
        None, "--max-pixels", help="Largest picture accepted, width x height (default 250000000)."
    ),
    engine: str = typer.Option(None, "--engine", help="torch | onnxruntime (the model exported to ONNX)."),
    precision: str = typer.Option(
        None, "--precision", help="fp32 | int8 (onnxruntime: quantized weights; its cost printed)."
    ),
    config: Path = typer.Option(
        None, "--config", help="Recipe TOML (pipelines/*.toml); its \\[colorize] table."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Colorize INPUT... into OUT; writes OUT/colorize-summary.json with the config used."""
    setup_logging(verbose)
    with user_errors():
        from aiaic.colorize.config import ColorizeConfig
        from aiaic.colorize.run import colorize as run_colorize

        flags = {
            "inputs": list(inputs) if inputs else None,
            "run": run,
            "out": out,
            "audio": audio,
            "audio_start": audio_start,
            "no_audio": no_audio,
            "variant": variant,
            "device": device,
            "batch_size": batch_size,
            "max_seconds": max_seconds,
            "smooth_seconds": smooth_seconds,
            "temporal": temporal,
            "overwrite": overwrite,
            "backbone": backbone,
            "backbone_weights": backbone_weights,
            "image_size": image_size,
            "seed": seed,
            "max_pixels": max_pixels,
            "engine": engine,
            "precision": precision,
        }
        cfg = build_config(ColorizeConfig, recipe_section(load_recipe(config), "colorize"), flags)
        run_colorize(cfg)


if __name__ == "__main__":
    app()
