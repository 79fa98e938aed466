"""Reading WebDataset tar shards, one way for every reader.

A member `KEY.FIELD` belongs to sample KEY (WebDataset's rule, `base_plus_ext`: the key ends at the
first dot of the file name). Three readers share that rule and the error they raise (InputError naming
the shard: "cannot open shard" / "cannot read shard"):

    for raw in iter_samples(url):              # stream, in tar order (local paths or URLs)
        raw["__key__"], raw["json"], ...
    tars = TarIndex(); tars.read(path, key)    # random access by key (local shards)
    count_samples(path)                        # samples of a local shard, from its headers
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, BinaryIO

from webdataset.gopen import gopen
from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_expander

from aiaic.errors import InputError


def _has_field(fname: str, fields: frozenset[str]) -> bool:
    return base_plus_ext(fname)[1] in fields


def iter_samples(url: str, fields: frozenset[str] | None = None) -> Iterator[dict[str, Any]]:
    """The samples of one shard in tar order, as {"__key__", "__url__", field: bytes}; only `fields`
    are read when given (the others are skipped in the stream)."""
    try:
        stream = gopen(url, "rb")
    except (OSError, ValueError) as e:
        raise InputError(url, f"cannot open shard: {e}") from e
    try:
        keep = None if fields is None else partial(_has_field, fields=fields)
        yield from group_by_keys(tar_file_expander([{"url": url, "stream": stream}], select_files=keep))
    except (tarfile.TarError, OSError, ValueError) as e:
        raise InputError(url, f"cannot read shard: {e}") from e
    finally:
        stream.close()


def tar_members(path: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """{key: {field: (offset, size)}} of a local shard, read from its member headers."""
    members: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        with tarfile.open(path, "r:") as tf:
            for m in tf:
                key, field = base_plus_ext(m.name)
                if m.isreg() and key is not None:
                    members.setdefault(key, {})[field] = (m.offset_data, m.size)
    except (tarfile.TarError, OSError) as e:
        raise InputError(path, f"cannot read shard: {e}") from e
    return members


@lru_cache(maxsize=4096)
def _count(path: str, size: int, mtime_ns: int) -> int:
    return len(tar_members(Path(path)))


def count_samples(path: str | Path) -> int:
    """Samples in a local shard, read from its headers (cached while its size and mtime are unchanged)."""
    try:
        st = Path(path).stat()
    except OSError as e:
        raise InputError(path, f"cannot read shard: {e}") from e
    return _count(str(path), st.st_size, st.st_mtime_ns)


class TarIndex:
    """Random access to the samples of local shards: each shard's members indexed once, then read by seek."""

    def __init__(self, max_open: int = 64):
        self._members: dict[Path, dict[str, dict[str, tuple[int, int]]]] = {}
        self._files: dict[Path, BinaryIO] = {}
        self._max_open = max_open

    def keys(self, path: Path) -> dict[str, dict[str, tuple[int, int]]]:
        """{key: {field: (offset, size)}} of a shard (indexed once)."""
        path = Path(path)
        if path not in self._members:
            self._members[path] = tar_members(path)
        return self._members[path]

    def read(self, path: Path, key: str) -> dict[str, bytes]:
        """The sample `key` of shard `path` as {"__key__": key, field: bytes}."""
        path = Path(path)
        fields = self.keys(path).get(key)
        if fields is None:
            raise InputError(path, f"sample {key!r} (listed in index.csv) is not in this shard")
        f = self._files.get(path)
        if f is None:
            if len(self._files) >= self._max_open:
                oldest = next(iter(self._files))
                self._files.pop(oldest).close()
            f = self._files[path] = path.open("rb")
        sample: dict[str, bytes] = {"__key__": key}  # type: ignore[dict-item]
        for name, (offset, size) in sorted(fields.items()):
            f.seek(offset)
            sample[name] = f.read(size)
        return sample

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
