"""`aiaic-data inspect` (not yet built)."""

from __future__ import annotations

import typer


def inspect() -> None:
    """Not yet built."""
    typer.echo("aiaic-data inspect: not yet built", err=True)
    raise typer.Exit(1)
