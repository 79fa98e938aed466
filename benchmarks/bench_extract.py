"""Benchmark `aiaic-data extract` against the common research recipe, side by side in one run.

    python -m benchmarks.run extract

On `../shared/data/mini-vggsound` (19 real 10 s clips):
- baseline: the ffmpeg CLI recipe many VGGSound papers use, one ffmpeg per clip in a loop:
  `ffmpeg -i clip.mp4 -vf fps=1 frames/%02d.jpg -vn -ac 1 -ar 16000 audio.wav`
  (`ffmpeg` from PATH, else the binary the `imageio-ffmpeg` wheel ships; skipped with a note where
  neither exists);
- ours: `aiaic-data extract --workers 2` (VGGSound mode: the middle second, seeking), as a subprocess, so
  process start-up is counted for both.
The two alternate (ours, ffmpeg, ours, ffmpeg, ...) and the best of `REPEATS` is kept for each, since the
machine is shared. Rows: both wall times, the ratio, AVE-mode samples/s on `mini-ave`, and peak memory
(max RSS of the extract process tree: the parent and its workers, from `resource.getrusage`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data"))
REPEATS = 3


def find_ffmpeg() -> str | None:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def ffmpeg_recipe(ffmpeg: str, videos: list[Path], out: Path) -> float:
    """Wall seconds of the per-clip ffmpeg loop (1 fps frames as JPEG + a 16 kHz mono wav)."""
    t0 = time.perf_counter()
    for v in videos:
        d = out / v.stem
        d.mkdir(parents=True, exist_ok=True)
        # './' prefix: ids that begin with '-' must never reach a command line as bare arguments
        subprocess.run(
            [
                ffmpeg,
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                f"./{v}" if not v.is_absolute() else str(v),
                "-vf",
                "fps=1",
                "-q:v",
                "2",
                str(d / "%02d.jpg"),
                "-vn",
                "-ac",
                "1",
                "-ar",
                "16000",
                str(d / "audio.wav"),
            ],
            check=True,
        )
    return time.perf_counter() - t0


def ours(src: Path, out: Path, extra: list[str]) -> tuple[float, int]:
    """(wall seconds, samples) of `aiaic-data extract` run as a subprocess."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-c",
        "from aiaic.cli.data import app; app()",
        "extract",
        "--src",
        str(src),
        "--out",
        str(out),
        *extra,
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    with (out / "index.csv").open() as f:
        samples = sum(1 for _ in f) - 1
    return dt, samples


LIBRARY_RUN = """
import resource, sys, time
t0 = time.perf_counter()
from pathlib import Path
from aiaic.data.extract import ExtractConfig, run_extract
cfg = ExtractConfig(src=Path(sys.argv[1]), out=Path(sys.argv[2]), workers=int(sys.argv[3]))
run_extract(cfg, progress=False)
dt = time.perf_counter() - t0
# VmHWM: this process's own peak (ru_maxrss would include what it inherited from the benchmark before exec)
me = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM")) / 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(dt, me, kids)
"""


def ours_library(src: Path, out: Path, workers: int) -> tuple[float, float, float]:
    """(wall s, parent max RSS MiB, largest worker max RSS MiB) of `run_extract` in a fresh process that
    imports only the extract library: the extraction itself, without the start-up of the `aiaic-data`
    command (which imports every subcommand, torch included)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-c", LIBRARY_RUN, str(src), str(out), str(workers)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    dt, me, kids = (float(x) for x in res.stdout.split())
    return dt, me, kids


def _row(metric: str, value, unit: str, note: str, ratio: float | None = None) -> dict:
    r = {"benchmark": "extract", "metric": metric, "value": value, "unit": unit, "note": note}
    if ratio is not None:
        r["ratio"] = ratio
    return r


def run() -> list[dict]:
    vgg, ave = DATA / "mini-vggsound", DATA / "mini-ave"
    if not vgg.is_dir():
        return [_row("skipped", f"no data at {vgg}", "", "needs ../shared/data")]
    rows: list[dict] = []
    videos = sorted((vgg / "video").glob("*.mp4"))
    ffmpeg = find_ffmpeg()
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp_s:
        tmp = Path(tmp_s)
        cli_t, lib_t, ff_t, n = [], [], [], 0
        parent_mib = worker_mib = 0.0
        for _ in range(REPEATS):  # interleaved, so both see the same load on a shared machine
            dt, n = ours(vgg, tmp / "ours", ["--workers", "2"])
            cli_t.append(dt)
            dt, me, kids = ours_library(vgg, tmp / "lib", 2)
            lib_t.append(dt)
            parent_mib, worker_mib = max(parent_mib, me), max(worker_mib, kids)
            if ffmpeg:
                shutil.rmtree(tmp / "ff", ignore_errors=True)
                ff_t.append(ffmpeg_recipe(ffmpeg, videos, tmp / "ff"))
        cli, lib = min(cli_t), min(lib_t)
        note = f"{len(videos)} clips -> {n} samples (middle second), best of {REPEATS}"
        rows.append(_row("mini-vggsound wall, aiaic-data extract --workers 2", round(cli, 3), "s", note))
        rows.append(
            _row(
                "mini-vggsound wall, run_extract(workers=2) in a fresh process",
                round(lib, 3),
                "s",
                "the extraction without the aiaic-data command's import of its other subcommands",
            )
        )
        if ffmpeg:
            base = min(ff_t)
            rows.append(
                _row(
                    "mini-vggsound wall, ffmpeg -vf fps=1 + 16 kHz wav per clip",
                    round(base, 3),
                    "s",
                    f"{Path(ffmpeg).name}, one ffmpeg per clip in a loop, best of {REPEATS}",
                )
            )
            rows.append(
                _row(
                    "speed-up over the ffmpeg recipe (whole command)",
                    round(base / cli, 2),
                    "x",
                    "target >= 3x on 2 cores; same run",
                    base / cli,
                )
            )
            rows.append(
                _row(
                    "speed-up over the ffmpeg recipe (extraction only)",
                    round(base / lib, 2),
                    "x",
                    "run_extract in a fresh process; same run",
                    base / lib,
                )
            )
        else:
            rows.append(
                _row("ffmpeg baseline", "skipped", "", "no ffmpeg on PATH and imageio-ffmpeg not installed")
            )
        rows.append(
            _row("mini-vggsound throughput", round(n / cli, 2), "samples/s", "aiaic-data extract --workers 2")
        )
        if ave.is_dir():
            dt, me, kids = ours_library(ave, tmp / "ave", 2)
            with (tmp / "ave" / "index.csv").open() as f:
                n_ave = sum(1 for _ in f) - 1
            rows.append(
                _row(
                    "mini-ave throughput (all mode)",
                    round(n_ave / dt, 2),
                    "samples/s",
                    f"{n_ave} samples in {dt:.2f} s, run_extract(workers=2), start-up included",
                )
            )
            worker_mib = max(worker_mib, kids)
        rows.append(
            _row("peak memory, extract parent", round(parent_mib, 1), "MiB", "max RSS, run_extract process")
        )
        rows.append(
            _row(
                "peak memory, extract worker",
                round(worker_mib, 1),
                "MiB",
                "max RSS of the largest worker process (mini-vggsound 720p, mini-ave)",
            )
        )
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
