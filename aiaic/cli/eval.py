r"""`aiaic-eval`: the paper's Table 1 and Table 2 for a training run, on split shards.

    aiaic-eval --run runs/demo --shards shards/split --split val --split ood --out reports/demo
    aiaic-eval --run runs/vgg --shards shards/vgg --variants baseline,full \
               --lpips-weights alexnet-owt-7be5be79.pth --out reports/vgg --config pipelines/vggsound.toml

Writes OUT/metrics.json, OUT/report.md, OUT/per_image.csv and OUT/grids/<split>.png. Flags override
the recipe's [eval] table.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aiaic.cli._common import setup_logging, user_errors
from aiaic.config import build_config, load_recipe, recipe_section

app = typer.Typer(
    name="aiaic-eval",
    help="Evaluate a run: LPIPS / PSNR / SSIM per split, Tables 1 and 2.",
    add_completion=False,
)


def _summary(metrics: dict) -> None:
    table = Table(title="aiaic-eval")
    for col in ("split", "variant", "n", "LPIPS", "PSNR", "SSIM", "colourfulness", "mean r"):
        table.add_column(col)
    for split in metrics["splits"]:
        for variant, m in metrics[split].items():
            lp = "n/a" if m["lpips"] is None else f"{m['lpips']:.4f}"
            table.add_row(
                split,
                variant,
                str(m["n"]),
                lp,
                f"{m['psnr']:.2f}",
                f"{m['ssim']:.4f}",
                f"{m['colorfulness']:.2f}",
                f"{m['mean_r']:.2f}",
            )
    Console(stderr=True).print(table)


@app.command()
def evaluate(
    run: Path = typer.Option(None, "--run", help="Training run directory (aiaic-train --out)."),
    shards: Path = typer.Option(
        None, "--shards", help="Split directory with manifest.json (aiaic-data split --out)."
    ),
    split: list[str] = typer.Option(
        None, "--split", help="A split to evaluate; repeat for several (default val, ood, test)."
    ),
    variants: str = typer.Option(
        None,
        "--variants",
        help="Comma-separated: baseline,full,full_missing_audio,no_r,no_r_missing_audio,e2e.",
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Output directory for metrics.json, report.md, grids."
    ),
    lpips_weights: Path = typer.Option(
        None, "--lpips-weights", help="ImageNet AlexNet state dict (else the torch hub cache)."
    ),
    save_images: int = typer.Option(
        None, "--save-images", help="Samples per split in the image grid (default 8)."
    ),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda."),
    batch_size: int = typer.Option(None, "--batch-size", help="Samples per forward pass (default 16)."),
    max_samples: int = typer.Option(None, "--max-samples", help="Only the first N samples of each split."),
    config: Path = typer.Option(None, "--config", help="Recipe TOML (pipelines/*.toml); its \\[eval] table."),
    offline: bool = typer.Option(
        None,
        "--offline/--online",
        help="Never download the LPIPS AlexNet weights (default: fetch them into the torch hub cache "
        "when missing; AIAIC_OFFLINE=1 also forbids it).",
    ),
    protocol: str = typer.Option(
        None,
        "--protocol",
        help="crop (short side 256, centre crop; default) | resize (whole frame to 256x256).",
    ),
    gamut: str = typer.Option(
        None,
        "--gamut",
        help="Out-of-gamut colours: grey (mixed with grey, L kept; default) | clip (per channel).",
    ),
    audio: str = typer.Option(
        None, "--audio", help="own (default) | mismatched (also every audio variant hearing another class)."
    ),
    seed: int = typer.Option(None, "--seed", help="Seed of the mismatched-audio derangement (default 0)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Evaluate every available variant of RUN on the requested splits; unavailable ones are listed."""
    setup_logging(verbose)
    with user_errors():
        from aiaic.eval.evaluate import EvalConfig, run_eval

        flags = {
            "run": run,
            "shards": shards,
            "splits": list(split) if split else None,
            "variants": variants,
            "out": out,
            "lpips_weights": lpips_weights,
            "save_images": save_images,
            "device": device,
            "batch_size": batch_size,
            "max_samples": max_samples,
            "offline": offline,
            "protocol": protocol,
            "gamut": gamut,
            "audio": audio,
            "seed": seed,
        }
        cfg = build_config(EvalConfig, recipe_section(load_recipe(config), "eval"), flags)
        metrics = run_eval(cfg)
        _summary(metrics)


if __name__ == "__main__":
    app()
