"""`aiaic-data split` (not yet built)."""

from __future__ import annotations

import typer


def split() -> None:
    """Not yet built."""
    typer.echo("aiaic-data split: not yet built", err=True)
    raise typer.Exit(1)
