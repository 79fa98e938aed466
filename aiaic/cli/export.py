r"""`aiaic-export`: write a trained run's colorizer (or a backbone alone) as ONNX, checked against PyTorch.

    aiaic-export --run runs/demo -o out/demo-onnx --frames ../shared/data/images/bw
    aiaic-export --backbone ddcolor-tiny --backbone-weights ddcolor_paper_tiny.pth --image-size 256 \
        -o out/ddcolor-tiny-onnx --frames ../shared/data/clips/moviepy/chaplin_bw_film.mp4
    aiaic-export --run runs/demo -o out/demo-int8 --precision int8 --frames photos/

The folder gets color.onnx (and guidance.onnx for a model guided by audio; see aiaic.engine.export).
The export is checked on real frames (--frames: images, films or folders; without them, a built-in
grey test picture) and refused, with nothing written, if ONNX Runtime's ab differs from PyTorch's by
more than --tolerance (ab / 110 units). int8 prints its quality cost against fp32 on the same frames.
Needs the onnx extra: pip install "aiaic[onnx]".
"""

from __future__ import annotations

from pathlib import Path

import typer

from aiaic.cli._common import console, setup_logging, user_errors

app = typer.Typer(
    name="aiaic-export",
    help="Export a run or a backbone to ONNX (checked against PyTorch).",
    add_completion=False,
)


def _frame_files(paths: list[Path]) -> list[Path]:
    from aiaic.colorize.config import IMAGE_SUFFIXES, VIDEO_SUFFIXES
    from aiaic.errors import InputError

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(p, "does not exist")
    return files


@app.command()
def export(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (color.onnx, guidance.onnx)."),
    run: Path = typer.Option(None, "--run", help="Training run directory (aiaic-train --out)."),
    variant: str = typer.Option("full", "--variant", help="Model variant of the run."),
    backbone: str = typer.Option(None, "--backbone", help="Export this backbone alone (e.g. ddcolor-tiny)."),
    backbone_weights: Path = typer.Option(
        None, "--backbone-weights", help="The backbone's released weights."
    ),
    image_size: int = typer.Option(None, "--image-size", help="Side (px) the model colours at."),
    frames: list[Path] = typer.Option(
        None, "--frames", help="Images/films/folders for the check (repeatable)."
    ),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | int8 (quantized colour graph)."),
    tolerance: float = typer.Option(1e-3, "--tolerance", help="Largest |ab_n difference| accepted (fp32)."),
    overwrite: bool = typer.Option(False, "--overwrite/--no-overwrite", help="Replace an existing folder."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Export to OUT and print the check's max and mean |difference|."""
    setup_logging(verbose)
    with user_errors():
        from aiaic.colorize.config import ColorizeConfig
        from aiaic.colorize.run import load_model
        from aiaic.engine.export import export_onnx
        from aiaic.engine.select import _check_batch, check_pattern, sample_frames
        from aiaic.errors import ConfigError

        if precision not in ("fp32", "int8"):
            raise ConfigError(f"--precision must be fp32 or int8, got {precision!r}")
        cfg = ColorizeConfig(
            run=run, variant=variant, backbone=backbone, backbone_weights=backbone_weights,
            image_size=image_size, device="cpu",
        )  # fmt: skip
        model = load_model(cfg, "cpu")
        files = _frame_files(list(frames or []))
        shots = sample_frames(files) if files else list(check_pattern())
        target = out if precision == "fp32" else out.with_name(out.name + ".fp32")
        report = export_onnx(model, target, _check_batch(shots, model.image_size), None, tolerance, overwrite)
        console.print(
            f"ONNX vs PyTorch on {report.frames} frames{'' if files else ' (built-in test picture)'}: "
            f"max |d ab_n| {report.max_diff:.3g}, mean {report.mean_diff:.3g} (bound {tolerance:g})"
        )
        if precision == "int8":
            from aiaic.engine.ort import load_onnx
            from aiaic.engine.quantize import int8_cost, quantize_export

            quantize_export(target, out)
            cost = int8_cost(load_onnx(target), load_onnx(out), shots)
            console.print(cost.line())
        typer.echo(f"wrote {out} ({', '.join(report.files)}; {report.metadata['checksum']})")


if __name__ == "__main__":
    app()
