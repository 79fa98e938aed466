"""`aiaic-data extract` (not yet built)."""

from __future__ import annotations

import typer


def extract() -> None:
    """Not yet built."""
    typer.echo("aiaic-data extract: not yet built", err=True)
    raise typer.Exit(1)
