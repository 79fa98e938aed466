"""Helpers for the aiaic-app tests: a real server process, an audio-only file, colour measures.

`AppServer(run, tmp)` starts `python -m aiaic.cli.app --run RUN --port 0` (a free port, 127.0.0.1),
reads the address it prints, and `stop()` terminates it and waits (no process is left behind).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from skimage.color import rgb2lab

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 3.0
APP_FLAGS = ("--max-upload-mb", str(LIMIT_MB))  # every app test module uses this one server


def subprocess_env() -> dict[str, str]:
    """The server's environment: torch uses as many threads as in this process, where the reference
    `aiaic-colorize` runs, so both compute the same floats."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    env["PYTHONUNBUFFERED"] = "1"
    return env


class AppServer:
    """`aiaic-app` in its own process; `url` ends with "/"."""

    def __init__(self, run: Path | None, log_path: Path, *extra: str, startup_timeout: float = 120.0):
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "aiaic.cli.app", "--port", "0", "--device", "cpu"]
        if run is not None:  # else `extra` names a backbone alone (--backbone, --backbone-weights)
            cmd += ["--run", str(run)]
        self.proc = subprocess.Popen(
            [*cmd, *extra],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=subprocess_env(),
        )
        self.url = ""
        found = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                if "serving on " in line and not self.url:
                    self.url = line.split("serving on ", 1)[1].split()[0]
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        t0 = time.monotonic()
        while not found.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() - t0 > startup_timeout:
                self.stop()
                raise RuntimeError(f"aiaic-app did not start; its log:\n{log_path.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def alive(self) -> bool:
        return self.proc.poll() is None


_SERVERS: dict[tuple, AppServer] = {}


def shared_server(config, run: Path, tmp_dir: Path, *extra: str) -> AppServer:
    """One server per (run, flags) for the whole pytest session (the test modules share it; it
    starts slowly on a loaded machine); stopped when pytest ends (`config.add_cleanup`)."""
    key = (str(run), extra)
    if key not in _SERVERS or not _SERVERS[key].alive():
        srv = AppServer(run, tmp_dir / "server.log", *extra)
        _SERVERS[key] = srv
        config.add_cleanup(srv.stop)
    return _SERVERS[key]


def reference_colorize(run: Path, src: Path, out: Path, *args: str) -> Path:
    """`aiaic-colorize SRC --run RUN -o OUT ARGS`, the command itself (through Typer, in this process)."""
    from typer.testing import CliRunner

    from aiaic.cli.colorize import app

    res = CliRunner().invoke(app, [str(src), "--run", str(run), "-o", str(out), "--device", "cpu", *args])
    assert res.exit_code == 0, res.output
    return out


def write_audio_only(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """An AAC file in an MP4 container with a 440 Hz tone and no video stream."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.4 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None]
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=rate, layout="mono")
        for k in range(0, pcm.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, k : k + 1024]), format="flt", layout="mono"
            )
            frame.sample_rate = rate
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def lab(path_or_array) -> np.ndarray:
    """CIE Lab [H, W, 3] (skimage, D65) of an image file or uint8 RGB array."""
    if isinstance(path_or_array, (str, Path)):
        with Image.open(path_or_array) as im:
            path_or_array = np.asarray(im.convert("RGB"))
    return rgb2lab(np.asarray(path_or_array))


def mean_chroma(lab_image: np.ndarray) -> float:
    """Mean of sqrt(a^2 + b^2) over the image (0 for a grey image)."""
    return float(np.hypot(lab_image[..., 1], lab_image[..., 2]).mean())
