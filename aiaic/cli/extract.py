"""`aiaic-data extract`: videos -> WebDataset shards (one frame + one second of audio per sample).

aiaic-data extract --src ../shared/data/mini-vggsound --out shards/raw --workers 2
aiaic-data extract --src ../shared/data/mini-ave --out shards/ave --config pipelines/ave.toml
aiaic-data extract --src /data/vggsound --out /data/raw --part 3/16    # job 3 of 16 (0-based)
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from aiaic.cli._common import console, setup_logging, user_errors
from aiaic.config import build_config, load_recipe, recipe_section
from aiaic.data.audio import MelConfig
from aiaic.data.extract import ExtractConfig, ExtractSummary, run_extract


def print_summary(s: ExtractSummary) -> None:
    """The end-of-run summary: inputs, samples, failures by class, throughput."""
    t = Table(title=f"extract -> {s.out}", show_header=False)
    t.add_row("layout / mode", f"{s.layout} / {s.mode} (recipe {s.recipe_hash})")
    t.add_row(
        "inputs", f"{s.inputs} ({s.processed_inputs} processed, {s.skipped_inputs} in shards already done)"
    )
    t.add_row("samples", f"{s.samples} written now, {s.total_samples} in this part's shards")
    t.add_row("shards", f"{s.shards_written} written, {s.shards_skipped} already done")
    fails = ", ".join(f"{k}: {v}" for k, v in s.failures.items()) or "none"
    t.add_row("failures", f"{sum(s.failures.values())} ({fails}); see failures.jsonl")
    if s.missing_videos or s.unlisted_videos:
        t.add_row(
            "not extracted",
            f"{s.missing_videos} annotated videos absent, {s.unlisted_videos} videos unannotated",
        )
    t.add_row("throughput", f"{s.samples_per_second:.1f} samples/s, {s.seconds:.1f} s")
    console.print(t)


def extract(
    src: Path = typer.Option(
        ..., "--src", help="Folder with the videos (VGGSound tree, AVE tree or any folder)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder for shards, stats, index.csv, failures.jsonl."
    ),
    layout: str | None = typer.Option(None, "--layout", help="auto|vggsound|ave|folder (default: auto)"),
    mode: str | None = typer.Option(
        None,
        "--mode",
        help="auto|middle|all: middle = one pair per clip, all = every whole second (default: auto)",
    ),
    workers: int | None = typer.Option(None, "--workers", help="Worker processes (default: one per CPU)."),
    samples_per_shard: int | None = typer.Option(
        None, "--samples-per-shard", help="Target samples per shard."
    ),
    part: str | None = typer.Option(None, "--part", help="I/N: this job's share of the inputs (0-based I)."),
    size: int | None = typer.Option(
        None, "--size", help="Short side of the stored frame in pixels (default: 256)."
    ),
    image_format: str | None = typer.Option(None, "--image-format", help="jpg|png|webp (default: jpg)"),
    allow_missing_audio: bool = typer.Option(
        False, "--allow-missing-audio", help="Keep videos without audio (has_audio false, no mel/pcm)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Recipe TOML; its extract table sets the defaults."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace outputs made with a different recipe."
    ),
) -> None:
    """Extract one frame and one second of audio per segment into WebDataset shards (resumable)."""
    setup_logging()
    with user_errors():
        flags = {
            "src": src,
            "out": out,
            "layout": layout,
            "mode": mode,
            "workers": workers,
            "samples_per_shard": samples_per_shard,
            "part": part,
            "size": size,
            "image_format": image_format,
            "allow_missing_audio": True if allow_missing_audio else None,
            "overwrite": True if overwrite else None,
        }
        recipe = load_recipe(config)
        cfg = build_config(ExtractConfig, recipe_section(recipe, "extract"), flags)
        summary = run_extract(cfg, mel=build_config(MelConfig, recipe_section(recipe, "extract.mel")))
    print_summary(summary)
