"""Real processes: `aiaic-train` killed with SIGKILL and resumed; a two-rank gloo run under torchrun."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support.model_configs import TINY_MODEL
from support.split_fixtures import write_split_dir
from support.train_fixtures import write_recipe

pytestmark = pytest.mark.slow  # real processes: kill -9 and resume, torchrun

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "COLUMNS": "250", "PYTHONUNBUFFERED": "1"})
    return env


def _train_cmd(split: Path, out: Path, recipe: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aiaic.cli.train",
        "--shards",
        str(split),
        "--out",
        str(out),
        "--config",
        str(recipe),
        "--device",
        "cpu",
        *extra,
    ]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("psplit") / "split"
    return write_split_dir(root, classes=2, videos_per_class=3, seconds=4, size=32, shards_per_split=4)


def test_resume_after_kill_9_continues_the_step_count(split, tmp_path):
    # 16 train samples, batch 2 -> 8 steps per epoch, 30 epochs = 240 steps; checkpoint every 3 steps
    recipe = write_recipe(
        tmp_path / "r.toml",
        {
            "model": TINY_MODEL,
            "train": {
                "image_size": 32,
                "epochs": 30,
                "batch_size": 2,
                "lr": 1e-3,
                "log_every": 1,
                "save_every": 3,
            },
        },
    )
    run = tmp_path / "run"
    metrics = run / "baseline" / "metrics.jsonl"
    proc = subprocess.Popen(
        _train_cmd(split, run, recipe, "--stage", "baseline"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if metrics.is_file() and any(r.get("step", 0) >= 20 for r in _rows(metrics)):
                break
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}")
            time.sleep(0.05)
        else:
            pytest.fail("the run did not reach step 20 in time")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(r["step"] for r in _rows(metrics) if "step" in r and "event" not in r)
    assert killed_at < 240
    before = metrics.read_text()
    # without --resume the unfinished stage is refused, and nothing is touched
    refused = subprocess.run(
        _train_cmd(split, run, recipe, "--stage", "baseline"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "--resume" in " ".join(refused.stderr.split())
    assert metrics.read_text() == before

    done = subprocess.run(
        _train_cmd(split, run, recipe, "--stage", "baseline", "--resume"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = metrics.read_text()
    assert text.startswith(before.rsplit("\n", 1)[0])  # append-only (a torn last line may be dropped)
    rows = _rows(metrics)
    resume = [i for i, r in enumerate(rows) if r.get("event") == "resume"]
    assert len(resume) == 1
    k = rows[resume[0]]["step"]
    assert 0 < k <= killed_at and killed_at - k < 3 + 1  # the last checkpoint: at most save_every back
    after = [r["step"] for r in rows[resume[0] + 1 :] if r.get("split") is None]
    assert after == list(range(k + 1, 241))  # continues at k + 1, never from 0
    cfg = json.loads((run / "baseline" / "config.json").read_text())
    assert cfg["complete"] is True and cfg["steps"] == 240

    # the resumed run ends with the weights of an uninterrupted one (same batches, optimizer, RNG)
    ref = tmp_path / "ref"
    clean = subprocess.run(
        _train_cmd(split, ref, recipe, "--stage", "baseline"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert clean.returncode == 0, clean.stderr[-3000:]
    a = load_file(str(run / "baseline" / "model.safetensors"))
    b = load_file(str(ref / "baseline" / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max(float((a[n].double() - b[n].double()).abs().max()) for n in a if a[n].is_floating_point())
    assert worst < 1e-4, worst


def test_two_rank_gloo_run_under_torchrun(split, tmp_path):
    # the recipe's batch is global: 4 = 2 ranks x 2; the adversarial term puts a discriminator in DDP too
    recipe = write_recipe(
        tmp_path / "r.toml",
        {
            "model": TINY_MODEL,
            "train": {
                "image_size": 32,
                "epochs": 2,
                "batch_size": 4,
                "lr": 1e-3,
                "log_every": 1,
                "disc_channels": 8,
                "disc_blocks": 2,
            },
        },
    )
    with recipe.open("a") as f:
        f.write("[train.baseline]\nloss = { huber = 1.0, adversarial = 0.1 }\n")
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "aiaic.cli.train",
        "--shards",
        str(split),
        "--out",
        str(run),
        "--config",
        str(recipe),
        "--device",
        "cpu",
        "--stage",
        "baseline",
    ]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    log = " ".join(res.stderr.split())
    # 16 samples / (2 ranks x batch 2) = 4 steps per epoch on every rank
    assert "rank 0: baseline takes 2 samples per step of a global batch of 4" in log
    assert "rank 1: baseline takes 2 samples per step of a global batch of 4" in log
    assert "rank 0 finished baseline after 8 steps" in log
    assert "rank 1 finished baseline after 8 steps" in log
    rows = _rows(run / "baseline" / "metrics.jsonl")
    train_rows = [r for r in rows if r.get("split") is None]
    assert [r["step"] for r in train_rows] == list(range(1, 9))  # one writer: no duplicated lines
    assert all(r["world_size"] == 2 for r in train_rows)
    assert all({"d_loss", "d_real", "d_fake", "loss_adversarial"} <= r.keys() for r in train_rows)
    cfg = json.loads((run / "baseline" / "config.json").read_text())
    assert cfg["complete"] is True and cfg["world_size"] == 2 and cfg["steps"] == 8
    assert (cfg["batch_size_global"], cfg["batch_size_per_rank"]) == (4, 2)
    # rank 0 alone wrote these; TensorBoard events only where tensorboard is installed (an optional extra)
    expected = ["config.json", "loss.png", "metrics.jsonl", "model.safetensors", "state.pt"]
    if importlib.util.find_spec("tensorboard") is not None:
        expected.append("tensorboard")
    assert sorted(p.name for p in (run / "baseline").iterdir() if not p.name.startswith(".")) == expected
    state = torch.load(run / "baseline" / "state.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 8
    assert state["discriminator"]["optimizer"]["state"]  # the DDP-wrapped discriminator trained
