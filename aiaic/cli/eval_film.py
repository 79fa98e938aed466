r"""`aiaic-eval film`: a colourized film against its colour reference (PSNR, SSIM, LPIPS, CDC, per shot).

    aiaic-eval film reference.mp4 coloured.mp4 -o reports/film
    aiaic-eval film references/ coloured/ -o reports/films      # paired by file stem; means over clips

Writes OUT/<stem>.json and OUT/<stem>.png per clip and OUT/films.json. `aiaic-eval` without `film`
is the run evaluation (`aiaic.cli.eval`), unchanged: `main` is the console script's entry point and
sends `film` to this app.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aiaic.cli._common import setup_logging, user_errors

app = typer.Typer(
    name="aiaic-eval film",
    help="Score a colourized film against its colour reference, frame by frame and over time (CDC).",
    add_completion=False,
)


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _summary(summary: dict) -> None:
    table = Table(title="aiaic-eval film")
    for col in ("clip", "frames", "PSNR", "SSIM", "LPIPS", "colourfulness", "CDC", "CDC reference"):
        table.add_column(col)
    rows = [(Path(c["coloured"]).name, str(c["frames"]), c) for c in summary["clips"]]
    if len(rows) > 1:
        rows.append(("mean", "", summary["means"]))
    for name, n, m in rows:
        table.add_row(
            name,
            n,
            _fmt(m["psnr"], ".2f"),
            _fmt(m["ssim"], ".4f"),
            _fmt(m["lpips"], ".4f"),
            _fmt(m["colorfulness"], ".2f"),
            _fmt(m["cdc"], ".5f"),
            _fmt(m["cdc_reference"], ".5f"),
        )
    Console(stderr=True).print(table)
    if not summary["lpips"]["available"]:
        Console(stderr=True).print(f"LPIPS unavailable: {summary['lpips']['reason']}")


@app.command()
def film(
    reference: Path = typer.Argument(..., help="Colour reference clip, or a folder of them."),
    coloured: Path = typer.Argument(..., help="Its colourization (or a folder, paired by file stem)."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Output folder for <stem>.json, <stem>.png, films.json."
    ),
    lpips_weights: Path = typer.Option(
        None, "--lpips-weights", help="ImageNet AlexNet state dict (else the torch hub cache)."
    ),
    offline: bool = typer.Option(
        False, "--offline/--online", help="Never download the LPIPS AlexNet weights (AIAIC_OFFLINE=1 too)."
    ),
    device: str = typer.Option("cpu", "--device", help="auto | cpu | cuda (LPIPS)."),
    max_frames: int = typer.Option(None, "--max-frames", help="Only the first N frames of each clip."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Score COLOURED against REFERENCE (two clips, or two folders)."""
    setup_logging(verbose)
    with user_errors():
        from aiaic.eval.film import FilmEvalConfig, evaluate_films

        cfg = FilmEvalConfig(
            reference=reference,
            coloured=coloured,
            out=out,
            lpips_weights=lpips_weights,
            offline=offline,
            device=device,
            max_frames=max_frames,
        )
        _summary(evaluate_films(cfg))


def main(argv: list[str] | None = None) -> None:
    """The `aiaic-eval` console script: `aiaic-eval film ...` runs this app, anything else the run
    evaluation (`aiaic.cli.eval.app`) exactly as before."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "film":
        app(args=args[1:], prog_name="aiaic-eval film")
    else:
        from aiaic.cli.eval import app as eval_app

        eval_app(args=args, prog_name="aiaic-eval")


if __name__ == "__main__":
    main()
