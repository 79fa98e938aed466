"""Atomic file writes: a file appears under its final name complete, or not at all.

Every writer puts its bytes under a temporary name in the same folder (or in a given temporary folder
on the same file system), fsyncs them and renames the file onto its final name, so a run killed at
any moment (even `kill -9`) leaves either the old file or the new one, never half of one. A writer
that fails removes its temporary file.

    write_text_atomic(out / "report.md", text)
    with atomic_path(out / "sheet.png") as tmp:     # for writers that take a file name
        fig.savefig(tmp)
    with atomic_open(out / "per_image.csv", "w", newline="") as f:   # for writers that stream
        csv.writer(f).writerows(rows)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def temporary_name(path: Path, tmp_dir: Path | None = None) -> Path:
    """The temporary file `path` is written under: hidden, unique to this process, same suffix.

    The suffix is kept so that writers choosing a format by it (matplotlib, PIL, PyAV) choose the
    final file's format.
    """
    folder = path.parent if tmp_dir is None else tmp_dir
    return folder / f".{path.stem}.tmp-{os.getpid()}{path.suffix}"


def fsync_file(path: Path) -> None:
    """Flush a written file's data to the disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextmanager
def atomic_path(path: str | Path, *, tmp_dir: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on a normal exit fsync it and rename it onto `path`.

    `tmp_dir` (default: the folder of `path`, which must be on the same file system) holds the
    temporary file. On an exception the temporary file is removed and the exception propagates.
    """
    path = Path(path)
    tmp = temporary_name(path, tmp_dir)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", *, tmp_dir: Path | None = None, **kwargs: Any
) -> Iterator[IO]:
    """`open(path, mode, **kwargs)` for a writer that streams into a file, committed atomically on exit."""
    with atomic_path(path, tmp_dir=tmp_dir) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_bytes_atomic(path: str | Path, data: bytes, *, tmp_dir: Path | None = None) -> None:
    """Write `data` to `path` atomically."""
    with atomic_open(path, "wb", tmp_dir=tmp_dir) as f:
        f.write(data)


def write_text_atomic(path: str | Path, text: str, *, tmp_dir: Path | None = None) -> None:
    """Write `text` (UTF-8, newlines as given) to `path` atomically."""
    with atomic_open(path, "w", tmp_dir=tmp_dir, encoding="utf-8", newline="") as f:
        f.write(text)


def write_json_atomic(path: str | Path, obj: Any, *, tmp_dir: Path | None = None) -> None:
    """Write `obj` as indented JSON with sorted keys and a final newline, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", tmp_dir=tmp_dir)
