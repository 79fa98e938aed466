"""The progress bar every long command shows (extract, split, train, eval, colorize), set up in one place."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(
    label: str = "{task.description}",
    *,
    fields: Sequence[str] = (),
    enabled: bool = True,
    transient: bool = False,
) -> Progress:
    """A rich Progress on stderr: `label`, the bar, done/total, `fields`, time elapsed and remaining.

    `label` and each of `fields` are rich TextColumn formats (e.g. "{task.fields[info]}"); a disabled
    bar draws nothing. Use it as a context manager, or call start() and stop().
    """
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(f) for f in fields),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=transient,
    )
