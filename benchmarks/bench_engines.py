"""Engines side by side, against the compute floor: DDColor-T (256 px; 512 with AIAIC_BENCH_ENGINES_SIZES)
and the default U-Net, on frames of the Chaplin film, in one run.

    python -m benchmarks.run engines
    AIAIC_BENCH_ENGINES_SIZES=256,512 AIAIC_BENCH_ENGINES_FRAMES=16 AIAIC_BENCH_ENGINES_COMPILE=1 \
        python -m benchmarks.run engines

Per model and size, frames/s of the network (L_n [B, 1, S, S] -> ab_n, batch AIAIC_BENCH_ENGINES_BATCH)
for: torch eager (NCHW), torch channels-last, torch.compile (only with AIAIC_BENCH_ENGINES_COMPILE=1:
minutes of compiling on a small CPU), ONNX Runtime fp32 and int8 (`aiaic.engine`), and, for DDColor,
the official pipeline (one frame at a time, fp32, the released forward on grey RGB, plus its own
Lab conversions at the frame's size: bench_ddcolor's `_official_frame`). End to end (frames at 640 x
360 -> coloured uint8, `colorize_guided`) for torch and ONNX Runtime.

The floor: the network's multiply-adds per frame (`torch.utils.flop_counter`, FLOPs / 2) divided by
this CPU's dense fp32 matmul throughput measured in the same run (torch.mm, 1024 x 1024, the same
threads); every engine's time per frame is given as a multiple of it ("x floor"). int8's quality
cost: PSNR of its RGB against fp32's on the shared photos (random weights in the official layout:
speed does not depend on the values, the quality cost does somewhat; see the note).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data"))
SIZES = tuple(int(s) for s in os.environ.get("AIAIC_BENCH_ENGINES_SIZES", "256").split(","))
FRAMES = int(os.environ.get("AIAIC_BENCH_ENGINES_FRAMES", "8"))
BATCH = int(os.environ.get("AIAIC_BENCH_ENGINES_BATCH", "4"))
COMPILE = os.environ.get("AIAIC_BENCH_ENGINES_COMPILE") == "1"
MODELS = tuple(os.environ.get("AIAIC_BENCH_ENGINES_MODELS", "ddcolor-tiny,unet").split(","))


def _frames(count: int) -> np.ndarray:
    """uint8 RGB [count, H, W, 3]: Chaplin frames (or generated grey noise where the data is absent)."""
    film = DATA / "clips" / "moviepy" / "chaplin_bw_film.mp4"
    if not film.is_file():
        return np.random.default_rng(0).integers(0, 255, (count, 360, 640, 3), dtype=np.uint8)
    out = []
    with av.open(str(film)) as c:
        for k, f in enumerate(c.decode(video=0)):
            if k % 5 == 0:
                out.append(f.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return np.stack(out)


def matmul_flops(seconds: float = 1.0, n: int = 1024) -> float:
    """This CPU's dense fp32 matmul throughput (FLOP/s, best of repeated n x n x n products)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def model_flops(net: Callable, L_n: torch.Tensor) -> float:
    """FLOPs of one forward on L_n (torch.utils.flop_counter counts 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:  # with autograd on: no_grad / inference_mode break the counter's module hooks
        net(L_n.clone())
    return float(counter.get_total_flops())


def _best_per_frame(fn: Callable[[], object], frames: int, repeats: int = 2) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / frames


def _torch_engines(model, L_n: torch.Tensor) -> dict[str, Callable[[], object]]:
    net = model.model

    def eager() -> None:
        with torch.inference_mode():
            for i in range(0, len(L_n), BATCH):
                net(L_n[i : i + BATCH])

    out: dict[str, Callable[[], object]] = {"torch eager": eager}
    cl = [x.contiguous(memory_format=torch.channels_last) for x in L_n.split(BATCH)]

    def channels_last() -> None:
        net.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            for x in cl:
                net(x)
        net.to(memory_format=torch.contiguous_format)

    out["torch channels-last"] = channels_last
    if COMPILE:
        compiled = torch.compile(net)

        def comp() -> None:
            with torch.inference_mode():
                for x in L_n.split(BATCH):
                    compiled(x)

        out["torch.compile"] = comp
    return out


def _ort_engines(model, frames: np.ndarray, L_n: torch.Tensor, tmp: Path):
    from aiaic.engine.export import export_onnx
    from aiaic.engine.ort import load_onnx
    from aiaic.engine.quantize import int8_cost, quantize_export
    from aiaic.engine.select import _check_batch

    fp32_dir = tmp / f"{model.model.config.backbone}-{model.image_size}"
    report = export_onnx(model, fp32_dir, _check_batch(list(frames[:2]), model.image_size))
    threads = torch.get_num_threads()  # ONNX Runtime on as many threads as torch
    fp32 = load_onnx(fp32_dir, threads=threads)
    int8 = load_onnx(quantize_export(fp32_dir, tmp / f"{fp32_dir.name}-int8"), threads=threads)

    def run(engine) -> Callable[[], None]:
        def go() -> None:
            for i in range(0, len(L_n), BATCH):
                engine.predict_guided(L_n[i : i + BATCH], None, torch.zeros(0))

        return go

    photos = _photos()
    cost = int8_cost(fp32, int8, photos) if photos else None
    return {"onnxruntime fp32": run(fp32), "onnxruntime int8": run(int8)}, (fp32, int8), report, cost


def _photos() -> list[np.ndarray]:
    from aiaic.colorize.image import read_image

    folder = DATA / "images" / "bw" / "deoldify"
    return [read_image(p) for p in sorted(folder.glob("*.jpg"))[:4]] if folder.is_dir() else []


def _official(net, frames: np.ndarray, size: int) -> Callable[[], None]:
    from benchmarks.bench_ddcolor import _official_frame

    def go() -> None:
        for f in frames:
            _official_frame(net, f, size)

    return go


def _end_to_end(engine, frames: np.ndarray) -> Callable[[], None]:
    from aiaic.colorize.guided import colorize_guided

    def go() -> None:
        for i in range(0, len(frames), BATCH):
            colorize_guided(engine, frames[i : i + BATCH], None, torch.zeros(0), torch.device("cpu"))

    return go


def _rows_for(name: str, size: int, frames: np.ndarray, peak: float, tmp: Path) -> list[dict]:
    from aiaic.colorize.strips import model_input_strips
    from aiaic.runs.inference import load_backbone

    torch.manual_seed(0)
    model = load_backbone(name, None, size, "cpu")
    L_n = model_input_strips(frames, size)
    flops = model_flops(model.model, L_n[:1])
    floor = flops / peak
    times = {k: _best_per_frame(fn, len(frames)) for k, fn in _torch_engines(model, L_n).items()}
    ort_fns, (fp32, int8), report, cost = _ort_engines(model, frames, L_n, tmp)
    times.update({k: _best_per_frame(fn, len(frames)) for k, fn in ort_fns.items()})
    if name.startswith("ddcolor"):
        times["official pipeline (per frame, with its Lab at 640x360)"] = _best_per_frame(
            _official(model.model.backbone, frames, size), len(frames)
        )
    e2e = {
        "end to end torch": _best_per_frame(_end_to_end(model, frames), len(frames)),
        "end to end onnxruntime fp32": _best_per_frame(_end_to_end(fp32, frames), len(frames)),
        "end to end onnxruntime int8": _best_per_frame(_end_to_end(int8, frames), len(frames)),
    }
    official = next((v for k, v in times.items() if k.startswith("official")), None)
    tag = f"{name} {size}px"
    macs = f"{flops / 2e9:.2f} G multiply-adds/frame / {peak / 1e9:.1f} GFLOP/s matmul"
    rows = [
        {"metric": f"{tag}: compute floor", "value": 1.0 / floor, "unit": "frames/s",
         "note": f"{macs} = {floor * 1e3:.0f} ms"},
    ]  # fmt: skip
    for k, t in {**times, **e2e}.items():
        note = f"{t / floor:.2f}x floor; batch {BATCH}, {len(frames)} frames"
        rows.append(
            {
                "metric": f"{tag}: {k}",
                "value": 1.0 / t,
                "unit": "frames/s",
                "note": note + (", ratio = official time / this" if official else ""),
                **({"ratio": official / t} if official else {}),
            }
        )
    rows.append(
        {"metric": f"{tag}: ONNX vs torch max |d ab_n|", "value": report.max_diff, "unit": "ab/110",
         "note": f"mean {report.mean_diff:.2g}, export check"},
    )  # fmt: skip
    if cost is not None:
        rows.append(
            {"metric": f"{tag}: int8 PSNR vs fp32", "value": cost.psnr_db, "unit": "dB",
             "note": f"{cost.frames} shared photos; colourfulness {cost.colorfulness_int8:.2f} vs "
                     f"{cost.colorfulness_fp32:.2f} (random weights)"},
        )  # fmt: skip
    return rows


def run() -> list[dict]:
    peak = matmul_flops()
    frames = _frames(FRAMES)
    rows = [
        {"metric": "dense fp32 matmul", "value": peak / 1e9, "unit": "GFLOP/s",
         "note": f"torch.mm 1024^3, {torch.get_num_threads()} threads"},
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        for name in MODELS:
            for size in SIZES if name.startswith("ddcolor") else SIZES[:1]:
                rows += _rows_for(name, size, frames, peak, Path(tmp_name))
    for r in rows:
        r["benchmark"] = "engines"
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
