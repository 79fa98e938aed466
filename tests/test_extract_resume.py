"""Interruption, resumption, --part I/N, the process pool, and the source parsers."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.fixtures_av import make_clip

from aiaic.data.distributor import run_pool
from aiaic.data.extract import ExtractConfig, run_extract
from aiaic.data.sources import list_source, parse_part
from aiaic.data.writer import plan_shards, select_part

CLI = [sys.executable, "-c", "from aiaic.cli.data import app; app()", "extract"]
EXPECTED_NAMES = {"index.csv", "recipe.json", "failures.jsonl"}


@pytest.fixture(scope="module")
def many_clips(tmp_path_factory):
    src = tmp_path_factory.mktemp("many")
    for k in range(36):
        d = src / f"class{k % 3}"
        d.mkdir(exist_ok=True)
        make_clip(d / f"v{k:02d}.mp4", seconds=2 + (k % 2), fps=10, width=32, height=24)
    (src / "class0" / "broken.mp4").write_bytes(b"garbage" * 100)
    return src


def snapshot(out: Path) -> dict[str, object]:
    """name -> content of every file in `out`, hidden ones included (there must be none): sha256 of shards,
    index and failures; stats without their timing; the recipe's hashed part (the rest records the
    command)."""
    snap: dict[str, object] = {}
    for p in sorted(out.iterdir()):
        if p.name.endswith(".stats.json"):
            snap[p.name] = {k: v for k, v in json.loads(p.read_text()).items() if k != "seconds"}
        elif p.name == "recipe.json":
            r = json.loads(p.read_text())
            snap[p.name] = (r["recipe_hash"], r["extract"], r["mel_config"], r["labels"])
        else:
            snap[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def check_clean(out: Path) -> None:
    names = {p.name for p in out.iterdir()}
    assert not [n for n in names if n.startswith(".") or "tmp" in n], f"temporary files left: {names}"
    for n in names - EXPECTED_NAMES:
        assert n.startswith("shard-") and (n.endswith(".tar") or n.endswith(".stats.json")), n


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(many_clips, tmp_path):
    args = ["--src", str(many_clips), "--samples-per-shard", "20", "--size", "24", "--workers", "2"]
    ref = tmp_path / "ref"
    subprocess.run([*CLI, *args, "--out", str(ref)], check=True, capture_output=True)
    check_clean(ref)
    n_shards = len(list(ref.glob("*.stats.json")))
    assert n_shards == 19  # 37 inputs, 2 per shard

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [*CLI, *args, "--out", str(out), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(out.glob("*.stats.json"))) < 3:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker processes, at once
    finally:
        proc.wait()
    done = len(list(out.glob("*.stats.json")))
    assert 3 <= done < n_shards, "the run should have been killed part-way"
    assert proc.returncode == -signal.SIGKILL

    res = subprocess.run([*CLI, *args, "--out", str(out)], check=True, capture_output=True, text=True)
    summary = " ".join(res.stderr.split())
    assert f"{n_shards - done} written, {done} already done" in summary
    check_clean(out)
    assert snapshot(out) == snapshot(ref)  # same shards byte for byte, same index, same failures
    with (out / "index.csv").open() as f:
        keys = [r["key"] for r in csv.DictReader(f)]
    assert len(keys) == len(set(keys)) == 36 * 2 + 18

    res = subprocess.run([*CLI, *args, "--out", str(out)], check=True, capture_output=True, text=True)
    assert f"0 written, {n_shards} already done" in " ".join(res.stderr.split())
    assert snapshot(out) == snapshot(ref)


def test_parts_write_into_one_folder_without_clashing(many_clips, tmp_path):
    whole = tmp_path / "whole"
    run_extract(
        ExtractConfig(src=many_clips, out=whole, workers=2, samples_per_shard=40, size=24), progress=False
    )
    shared = tmp_path / "parts"
    totals = []
    for i in range(3):
        s = run_extract(
            ExtractConfig(
                src=many_clips, out=shared, workers=1, samples_per_shard=40, size=24, part=f"{i}/3"
            ),
            progress=False,
        )
        totals.append(s.total_samples)
    assert sum(totals) == 36 * 2 + 18
    check_clean(shared)
    assert snapshot(shared) == snapshot(whole)


def test_shard_plan_is_deterministic_and_parts_are_disjoint():
    plans = plan_shards(10, 3)
    assert [p.items for p in plans] == [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9,)]
    parts = [select_part(plans, (i, 3)) for i in range(3)]
    assert sorted(p.index for ps in parts for p in ps) == [0, 1, 2, 3]
    assert [p.index for p in parts[0]] == [0, 3]
    assert parse_part("2/5") == (2, 5)
    for bad in ("5/5", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError):
            parse_part(bad)


# -- the pool: a result for every task, whatever happens to the worker --------------------------------


def _square(x: int) -> int:
    return x * x


def _misbehave(x: str) -> str:
    if x == "raise":
        raise ValueError("bad input")
    if x == "crash":
        os._exit(3)
    if x == "hang":
        time.sleep(60)
    return x.upper()


def _on_error(task, error, message):
    return (error, message)


def test_pool_returns_a_result_for_every_task():
    got = dict(run_pool(_square, list(range(20)), workers=2, time_limit=30, on_error=_on_error))
    assert got == {i: i * i for i in range(20)}
    tasks = ["a", "raise", "b", "crash", "c", "hang", "d"]
    t0 = time.monotonic()
    got = dict(run_pool(_misbehave, tasks, workers=2, time_limit=2.0, on_error=_on_error))
    assert time.monotonic() - t0 < 20
    assert [got[i] for i in (0, 2, 4, 6)] == ["A", "B", "C", "D"]
    assert got[1][0] == "worker_error" and "ValueError: bad input" in got[1][1]
    assert got[3][0] == "worker_crash" and "exit code 3" in got[3][1]
    assert got[5][0] == "timeout"


# -- sources ----------------------------------------------------------------------------------------


def test_vggsound_csv_parsing(tmp_path):
    (tmp_path / "vggsound.csv").write_text(
        '# ytid,start,label,split\n-a-b,0,"x, y",train\n--c,12,z,test\n\n-a-b,0,"x, y",train\n'
    )
    (tmp_path / "-a-b_000000.mp4").write_bytes(b"x")
    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "--c_000012.webm").write_bytes(b"x")
    lst = list_source(tmp_path)
    assert lst.layout == "vggsound" and lst.labels == ["x, y", "z"]
    assert [(it.video_id, it.start, it.label, it.label_id, it.split, it.source) for it in lst.items] == [
        ("-a-b", 0, "x, y", 0, "train", "-a-b_000000.mp4"),
        ("--c", 12, "z", 1, "test", "video/--c_000012.webm"),
    ]


def test_ave_zero_length_event_and_layout_detection(tmp_path, shared_data):
    lst = list_source(shared_data / "mini-ave")
    assert lst.layout == "ave" and len(lst.items) == 12 and {it.split for it in lst.items} == {"test"}
    assert len(lst.labels) == len({it.label for it in lst.items})
    meta = shared_data / "metadata" / "ave"
    (tmp_path / "Annotations.txt").write_text((meta / "Annotations.txt").read_text())
    for f in ("trainSet.txt", "valSet.txt", "testSet.txt"):
        (tmp_path / f).write_text((meta / f).read_text())
    (tmp_path / "AVE").mkdir()
    lines = (meta / "Annotations.txt").read_text().splitlines()[1:]
    zero = next(x for x in lines if x.split("&")[3] == x.split("&")[4])
    vid = zero.split("&")[1]
    (tmp_path / "AVE" / f"{vid}.mp4").write_bytes(b"x")
    lst = list_source(tmp_path, "ave")
    assert len(lst.labels) == 28 and lst.missing_videos == len({x.split("&")[1] for x in lines}) - 1
    (it,) = lst.items
    assert it.event[0] == it.event[1] and it.split in ("train", "val", "test")


def test_folder_labels(tmp_path):
    for rel in ("b/x.mp4", "a/deep/er/y.MKV", "z.avi", "b/.hidden.mp4", "b/readme.md", "c/v.mp4", "c/v.webm"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    lst = list_source(tmp_path)
    assert lst.layout == "folder" and lst.labels == ["a/deep/er", "b", "c", "unlabeled"]
    assert [(it.source, it.label, it.label_id, it.video_id) for it in lst.items] == [
        ("a/deep/er/y.MKV", "a/deep/er", 0, "a__deep__er__y"),
        ("b/x.mp4", "b", 1, "b__x"),
        ("c/v.mp4", "c", 2, "c__v_mp4"),
        ("c/v.webm", "c", 2, "c__v_webm"),
        ("z.avi", "unlabeled", 3, "z"),
    ]
