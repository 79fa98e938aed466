"""aiaic.data.tars: the streaming reader, the random-access index and the header count read a shard alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.split_fixtures import write_split_dir

from aiaic.data.manifest import read_manifest
from aiaic.data.tars import TarIndex, count_samples, iter_samples
from aiaic.errors import InputError


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> str:
    """One val shard of 2 classes x 1 video x 3 s (6 samples, pcm stored)."""
    root = write_split_dir(
        tmp_path_factory.mktemp("tars"), classes=2, seconds=3, shards_per_split=1, with_pcm=True
    )
    return str(root / read_manifest(root).splits["val"].shards[0])


def test_three_readers_agree(shard):
    streamed = list(iter_samples(shard))
    keys = [s["__key__"] for s in streamed]
    assert len(keys) == len(set(keys)) == 6 == count_samples(shard)
    assert all(s["__url__"] == shard for s in streamed)
    assert set(streamed[0]) == {"__key__", "__url__", "png", "json", "cls", "mel.npy", "pcm.npy"}
    index = TarIndex()
    try:
        assert list(index.keys(shard)) == keys  # tar order
        for s in streamed:
            assert index.read(shard, s["__key__"]) == {k: v for k, v in s.items() if k != "__url__"}
    finally:
        index.close()
    only = list(iter_samples(shard, frozenset({"json", "mel.npy"})))
    assert [set(s) for s in only] == [{"__key__", "__url__", "json", "mel.npy"}] * 6
    assert [s["json"] for s in only] == [s["json"] for s in streamed]


def test_a_broken_shard_is_named_by_every_reader(shard, tmp_path):
    data = Path(shard).read_bytes()
    bad = tmp_path / "bad-000000.tar"
    bad.write_bytes(data[:1200] + b"\x07" * 300 + data[1500:])  # a corrupt member header
    with pytest.raises(InputError, match="bad-000000.tar: cannot read shard: .*bad checksum"):
        list(iter_samples(str(bad)))
    with pytest.raises(InputError, match="bad-000000.tar: cannot read shard: bad checksum"):
        count_samples(bad)
    with pytest.raises(InputError, match="bad-000000.tar: cannot read shard: bad checksum"):
        TarIndex().keys(bad)
    with pytest.raises(InputError, match="missing-000000.tar: cannot open shard"):
        list(iter_samples(str(tmp_path / "missing-000000.tar")))
    with pytest.raises(InputError, match="sample 'nope'.*is not in this shard"):
        TarIndex().read(shard, "nope")
