"""`aiaic-eval` (not yet built)."""

from __future__ import annotations

import typer

app = typer.Typer(name="aiaic-eval", help="Not yet built.")


@app.command()
def main() -> None:
    """Not yet built."""
    typer.echo("aiaic-eval: not yet built", err=True)
    raise typer.Exit(1)
