"""Atomic writes (aiaic.io): a file is replaced whole or not at all, even when the writer is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aiaic.io import atomic_open, atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]


def test_writes_land_whole_under_the_final_name_and_leave_no_temporary(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "one\r\ntwo\n")
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    write_json_atomic(tmp_path / "c.json", {"b": 1, "a": [1.5]})
    with atomic_open(tmp_path / "d.csv", "w", newline="") as f:
        f.write("x,y\n")
    assert (tmp_path / "a.txt").read_bytes() == b"one\r\ntwo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.json").read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'
    assert json.loads((tmp_path / "c.json").read_text()) == {"a": [1.5], "b": 1}
    assert (tmp_path / "d.csv").read_text() == "x,y\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.json", "d.csv"]


def test_a_failing_writer_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "sheet.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp.name.startswith(".")
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]


def test_temporary_folder_holds_the_partial_file(tmp_path):
    spool = tmp_path / ".tmp-part"
    spool.mkdir()
    with atomic_open(tmp_path / "shard.tar", "wb", tmp_dir=spool) as f:
        f.write(b"data")
        assert [p.suffix for p in spool.iterdir()] == [".tar"] and not (tmp_path / "shard.tar").exists()
    assert (tmp_path / "shard.tar").read_bytes() == b"data" and not list(spool.iterdir())


def test_kill_9_during_a_write_leaves_the_previous_file_intact(tmp_path):
    target = tmp_path / "index.csv"
    target.write_text("previous\n")
    writer = (
        "import sys, time\n"
        "from aiaic.io import atomic_open\n"
        "with atomic_open(sys.argv[1], 'w') as f:\n"
        "    f.write('new first half\\n'); f.flush()\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        "    f.write('second half\\n')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", writer, str(target)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        temporaries = [p for p in tmp_path.iterdir() if p.name != "index.csv"]
        assert len(temporaries) == 1 and temporaries[0].read_text() == "new first half\n"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_text() == "previous\n"
