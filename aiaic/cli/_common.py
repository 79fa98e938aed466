"""Helpers shared by the Typer apps: logging setup and turning our errors into exit codes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from aiaic.errors import AiaicError

console = Console(stderr=True)

EXIT_USAGE = 2


def setup_logging(verbose: bool = False) -> None:
    """INFO (or DEBUG) logs to stderr through rich; safe to call more than once."""
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        root.addHandler(RichHandler(console=console, show_path=False, rich_tracebacks=False))
    root.setLevel(level)
    logging.getLogger("aiaic").setLevel(level)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn an AiaicError raised inside the block into 'error: <message>' and exit status 2."""
    try:
        yield
    except AiaicError as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}", markup=True, highlight=False)
        raise typer.Exit(EXIT_USAGE) from e
