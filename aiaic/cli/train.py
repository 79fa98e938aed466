"""`aiaic-train`: the baseline, the three stages, the relevance net and the end-to-end ablation.

    aiaic-train --shards data/split --out runs/demo --stage all --config pipelines/demo.toml
    aiaic-train --shards data/split --out runs/demo --stage 3 --resume
    python -m torch.distributed.run --nproc_per_node 2 -m aiaic.cli.train --shards data/split --out runs/ddp
    torchrun --nproc_per_node 8 $(which aiaic-train) --shards S --out R --device cuda \
        --config pipelines/vggsound-ddcolor.toml --precision bf16 --activation-checkpointing

Flags override the recipe's [model], [train] and [train.<stage>] tables. `--batch-size` (and the
recipe's batch_size) is the global batch: each of R torchrun ranks takes batch_size / R per step.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aiaic.cli._common import setup_logging, user_errors
from aiaic.config import load_recipe

app = typer.Typer(
    name="aiaic-train", help="Train the audio-infused colorizer (one stage or all).", add_completion=False
)


def _summary(results) -> None:
    table = Table(title="aiaic-train")
    for col in ("stage", "status", "steps", "seconds", "last logged"):
        table.add_column(col)
    for r in results:
        last = ", ".join(
            f"{k} {v:.4g}" for k, v in sorted(r.last.items()) if k not in {"lr", "samples_per_s"}
        )[:90]
        table.add_row(r.stage, r.status, str(r.steps), f"{r.seconds:.1f}", last)
    Console(stderr=True).print(table)


@app.command()
def train(
    shards: Path = typer.Option(
        None, "--shards", help="Split directory (aiaic-data split --out), with manifest.json."
    ),
    out: Path = typer.Option(None, "--out", help="Run directory; each stage writes RUN/<stage>/."),
    stage: str = typer.Option(
        None, "--stage", help="baseline | 1 | 2 | rnet | 3 | no_r | e2e | all (default all)."
    ),
    epochs: int = typer.Option(
        None, "--epochs", help="Epochs of every stage that runs (overrides the recipe)."
    ),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        help="Global batch of every stage: samples per step summed over ranks (must divide by them).",
    ),
    image_size: int = typer.Option(None, "--image-size", help="Training crop side in pixels."),
    lr: float = typer.Option(None, "--lr", help="Learning rate of every stage that runs."),
    workers: int = typer.Option(None, "--workers", help="Loader worker processes per rank."),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda."),
    resume: bool = typer.Option(
        None, "--resume/--no-resume", help="Continue an unfinished stage from its checkpoint."
    ),
    save_every: int = typer.Option(
        None, "--save-every", help="Also checkpoint every N steps (0 = epoch ends only)."
    ),
    seed: int = typer.Option(None, "--seed", help="Seed of the initial weights and the loader."),
    backbone: str = typer.Option(None, "--backbone", help="Backbone name from the registry (default unet)."),
    precision: str = typer.Option(
        None,
        "--precision",
        help="fp32 | bf16 (autocast; CPU or GPU) | fp16 (autocast + gradient scaling; CUDA).",
    ),
    activation_checkpointing: bool = typer.Option(
        None,
        "--activation-checkpointing/--no-activation-checkpointing",
        help="Recompute activations in the backward pass (less memory; for large backbones on GPUs).",
    ),
    vgg16_bn_weights: Path = typer.Option(
        None,
        "--vgg16-bn-weights",
        help="torchvision's vgg16_bn-6c64b313.pth for the perceptual loss term (default: torch hub cache).",
    ),
    config: Path = typer.Option(None, "--config", help="Recipe TOML (pipelines/*.toml)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Train a colorizer on a split directory; prints a summary of each stage."""
    setup_logging(verbose)
    with user_errors():
        from aiaic.train.config import build_train_plan
        from aiaic.train.distributed import launcher_rank
        from aiaic.train.runner import run_training

        flags = {
            "shards": shards,
            "out": out,
            "stage": stage,
            "epochs": epochs,
            "batch_size": batch_size,
            "image_size": image_size,
            "lr": lr,
            "workers": workers,
            "device": device,
            "resume": resume,
            "save_every": save_every,
            "seed": seed,
            "backbone": backbone,
            "precision": precision,
            "activation_checkpointing": activation_checkpointing,
            "vgg16_bn_weights": vgg16_bn_weights,
        }
        plan = build_train_plan(load_recipe(config), flags)
        results = run_training(plan)
        if launcher_rank() == 0:
            _summary(results)


def main() -> None:  # python -m aiaic.cli.train (used under torchrun)
    app()


if __name__ == "__main__":
    main()
