"""`aiaic-data split`: leakage-free train/val/ood/test splits and the manifest (library: aiaic.data.split).

    aiaic-data split --src shards/raw --out shards/split --ood 20 --config pipelines/vggsound.toml
    aiaic-data split --src shards/ave --out shards/ave-split --config pipelines/ave.toml
    # class-list-only path (no videos): the committed category lists under manifests/
    aiaic-data split --class-list ../shared/data/metadata/vggsound/stat.csv \\
        --categories ../shared/data/metadata/vggsound/Common.txt --ood 20 --seed 0 \\
        --list-name vggsound --out manifests
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiaic.cli._common import console, setup_logging, user_errors
from aiaic.config import build_config, load_recipe, recipe_section


def split(
    src: Annotated[
        list[Path] | None,
        typer.Option("--src", help="Raw extraction output (aiaic-data extract --out); repeatable."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (or the lists' folder with --class-list).")
    ] = None,
    ood: Annotated[int | None, typer.Option(help="Number of OOD categories (0 = none).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random choice.")] = None,
    categories: Annotated[
        Path | None,
        typer.Option(
            "--categories",
            "--id-classes",
            help="ID category list, one class per line (e.g. the authors' 164); default: all present.",
        ),
    ] = None,
    ood_list: Annotated[
        Path | None,
        typer.Option("--ood-list", "--ood-classes", help="Fixed OOD category list (instead of drawing)."),
    ] = None,
    ood_samples: Annotated[
        int | None, typer.Option(help="At most this many OOD pairs (default 1000).")
    ] = None,
    val_fraction: Annotated[
        float | None, typer.Option(help="Share of videos in val where the source has no official split.")
    ] = None,
    samples_per_shard: Annotated[int | None, typer.Option(help="Samples per shard (0 = automatic).")] = None,
    ranks: Annotated[int | None, typer.Option(help="DDP ranks the shards must feed (default 2).")] = None,
    workers: Annotated[int | None, typer.Option(help="Loader workers per rank (default 2).")] = None,
    holdout_ids: Annotated[
        Path | None, typer.Option(help="Video ids kept out of train (one per line, or AVE Annotations.txt).")
    ] = None,
    test_datasets: Annotated[
        str | None,
        typer.Option(help="Comma-separated datasets used only for their official test rows (ave)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a previous split in --out.")
    ] = False,
    class_list: Annotated[
        Path | None, typer.Option(help="Class-list-only path: choose categories from this list (stat.csv).")
    ] = None,
    list_name: Annotated[str | None, typer.Option(help="Class-list path: prefix of the list files.")] = None,
    config: Annotated[Path | None, typer.Option(help="Recipe TOML; its \\[split] table is read.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Split extracted shards into train/val/ood/test by video, with a category-level OOD hold-out."""
    setup_logging(verbose)
    with user_errors():
        flags = {
            "src": tuple(src) if src else None,
            "out": out,
            "ood": ood,
            "seed": seed,
            "categories": categories,
            "ood_list": ood_list,
            "ood_samples": ood_samples,
            "val_fraction": val_fraction,
            "samples_per_shard": samples_per_shard,
            "ranks": ranks,
            "workers": workers,
            "holdout_ids": holdout_ids,
            "test_datasets": test_datasets,
            "overwrite": True if overwrite else None,
            "class_list": class_list,
            "list_name": list_name,
        }
        # imported here: `aiaic-data extract` should not pay for torch/webdataset at start-up
        from aiaic.data.split import SplitConfig, run_class_lists, run_split

        cfg = build_config(SplitConfig, recipe_section(load_recipe(config), "split"), flags)
        if cfg.class_list is not None:
            for p in run_class_lists(cfg):
                typer.echo(f"wrote {p}")
            return
        summary = run_split(cfg)
    for line in summary.lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
