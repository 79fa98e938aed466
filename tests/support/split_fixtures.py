"""Shard folders with known content for the tests; the builders live in `aiaic.demo.shards`
(the benchmarks use them too).

    from support.split_fixtures import write_split_dir, read_split, make_raw, raw_video
"""

from aiaic.demo.shards import (
    CLASS_NAMES,
    CLASS_RGB,
    SAMPLE_RATE,
    make_raw,
    raw_video,
    read_split,
    sample_mel,
    write_split_dir,
)

__all__ = [
    "CLASS_NAMES",
    "CLASS_RGB",
    "SAMPLE_RATE",
    "make_raw",
    "raw_video",
    "read_split",
    "sample_mel",
    "write_split_dir",
]
