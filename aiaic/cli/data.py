"""`aiaic-data`: extract (videos -> WebDataset shards), split (ID/OOD splits + manifest), inspect.

aiaic-data extract --src ../shared/data/mini-vggsound --out shards/raw --workers 2
aiaic-data split --src shards/raw --out shards/split --ood 20 --config pipelines/vggsound.toml
aiaic-data inspect shards/split -o sheet.png
"""

from __future__ import annotations

import typer

from aiaic.cli import extract as _extract
from aiaic.cli import inspect as _inspect
from aiaic.cli import split as _split

app = typer.Typer(
    name="aiaic-data", help="Prepare audio-visual data: extract, split, inspect.", no_args_is_help=True
)
app.command("extract")(_extract.extract)
app.command("split")(_split.split)
app.command("inspect")(_inspect.inspect)
