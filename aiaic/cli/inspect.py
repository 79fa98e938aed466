"""`aiaic-data inspect`: counts, extraction failures and a contact sheet (library: aiaic.data.inspect).

aiaic-data inspect shards/split -o sheet.png
aiaic-data inspect shards/raw --samples 12 --seed 3
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aiaic.cli._common import console, setup_logging, user_errors
from aiaic.config import build_config


def inspect(
    dir: Annotated[Path, typer.Argument(help="A split folder (aiaic-data split) or extraction output.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Contact sheet PNG (default DIR/contact_sheet.png).")
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", "-n", help="Samples on the sheet (0 = none).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the samples drawn.")] = None,
    split: Annotated[str | None, typer.Option(help="Draw only from this split.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Show what a data folder holds: counts per split and category, failures, random samples."""
    setup_logging(verbose)
    from aiaic.data.inspect import InspectConfig, inspect_data, report_lines  # heavy: loaded on use

    with user_errors():
        cfg = build_config(
            InspectConfig,
            {},
            {"dir": dir, "output": output, "samples": samples, "seed": seed, "split": split},
        )
        report = inspect_data(cfg)
    for line in report_lines(report):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
