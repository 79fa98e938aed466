"""Peak memory of a big picture (default 12000 x 12000, 144 megapixels) through aiaic-colorize and the app.

    python -m benchmarks.run bigpicture
    AIAIC_BENCH_BIG_SIDE=6000 python -m benchmarks.run bigpicture

The picture is generated here: a grey JPEG tiled from a 1000 x 1000 pattern (ramps, discs, noise),
written strip by strip by Pillow from a uint8 array. The model: DDColor-T with random weights in the
official layout at 256 px (`--backbone ddcolor-tiny --backbone-weights FILE`; memory does not depend
on the values). aiaic-colorize runs as a child process: its peak resident memory is the child's
ru_maxrss. aiaic-app runs as a child server; the picture is uploaded through its HTTP API and the
server's peak (VmHWM of /proc/PID/status) read once the job is done; "before" is its VmHWM just
before the upload (the model loaded). Goal (issue 21): under 2 GB each.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIDE = int(os.environ.get("AIAIC_BENCH_BIG_SIDE", "12000"))
GOAL_GB = 2.0
BIN = Path(sys.executable).parent


def big_picture(path: Path, side: int = SIDE) -> Path:
    """A side x side grey JPEG tiled from a 1000 x 1000 pattern."""
    from PIL import Image

    t = 1000
    y, x = np.mgrid[0:t, 0:t] / t
    tile = 0.5 + 0.3 * np.sin(11 * x) * np.cos(5 * y) + 0.2 * (((x - 0.5) ** 2 + (y - 0.5) ** 2) < 0.08)
    tile = np.clip(tile * 255 + np.random.default_rng(0).normal(0, 6, tile.shape), 0, 255).astype(np.uint8)
    row = np.tile(tile, (1, -(-side // t)))[:, :side]
    full = np.tile(row, (-(-side // t), 1))[:side]
    Image.fromarray(full).save(path, quality=90)
    return path


def _weights(tmp: Path) -> Path:
    import torch

    from aiaic.models.backbones import build_backbone
    from aiaic.models.config import ModelConfig

    torch.manual_seed(0)
    net = build_backbone("ddcolor-tiny", ModelConfig(backbone="ddcolor-tiny"))
    path = tmp / "ddcolor_tiny_random.pth"
    torch.save({"params": net.state_dict()}, path)
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "2"}


def colorize_peak(picture: Path, weights: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in GB of an aiaic-colorize child, seconds)."""
    args = [str(BIN / "aiaic-colorize"), str(picture), "-o", str(out), "--backbone", "ddcolor-tiny"]
    args += ["--backbone-weights", str(weights), "--image-size", "256", "--overwrite"]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(args, check=True, env=_env(), capture_output=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("ru_maxrss of children did not grow: an earlier child was bigger")
    return peak / 1024**2, time.perf_counter() - t0


def _vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    raise RuntimeError("no VmHWM")


def app_peak(picture: Path, weights: Path) -> tuple[float, float, float]:
    """(server's peak RSS GB before the upload, after the job, seconds of the job) of aiaic-app."""
    import requests

    args = [str(BIN / "aiaic-app"), "--port", "0", "--backbone", "ddcolor-tiny", "--image-size", "256"]
    args += ["--backbone-weights", str(weights), "--max-upload-mb", "4096"]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            if "serving on" in line:
                url = line.split("serving on", 1)[1].split()[0]
                break
        if not url:
            raise RuntimeError("aiaic-app did not start")
        before = _vm_hwm(proc.pid)
        t0 = time.perf_counter()
        with open(picture, "rb") as f:
            r = requests.post(url + "api/jobs", files={"media": (picture.name, f, "image/jpeg")}, timeout=600)
        r.raise_for_status()
        job = r.json()
        while job["state"] in ("queued", "running"):
            time.sleep(1.0)
            job = requests.get(url + f"api/jobs/{job['id']}", timeout=60).json()
        if job["state"] != "done":
            raise RuntimeError(f"job {job['state']}: {job['message']}")
        return before, _vm_hwm(proc.pid), time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(30)


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        picture = big_picture(tmp / "big.jpg")
        weights = _weights(tmp)
        mp = SIDE * SIDE / 1e6
        cli_gb, cli_s = colorize_peak(picture, weights, tmp / "out.png")
        before, app_gb, app_s = app_peak(picture, weights)
    note = f"{SIDE} x {SIDE} grey JPEG ({mp:.0f} MP), ddcolor-tiny 256 px; goal < {GOAL_GB} GB"
    return [
        {"benchmark": "bigpicture", "metric": "aiaic-colorize peak RSS", "value": cli_gb, "unit": "GB",
         "note": f"{note}; {cli_s:.0f} s"},
        {"benchmark": "bigpicture", "metric": "aiaic-app peak RSS", "value": app_gb, "unit": "GB",
         "note": f"{note}; {before:.2f} GB before the upload; job {app_s:.0f} s"},
    ]  # fmt: skip


if __name__ == "__main__":
    for r in run():
        print(r)
