"""Benchmark DISCO at 256 x 256 against the official DISCO model on the same weights.

    AIAIC_DISCO_OFFICIAL=/path/to/DisentangledColorization python -m benchmarks.run disco
    AIAIC_BENCH_DISCO_FRAMES=8 AIAIC_BENCH_DISCO_REPEATS=1 python -m benchmarks.run disco   # reduced

Weights: a randomly initialised "disco" (DISCO-beta layout) saved in the released format
(`{"state_dict": ...}`, as `disco-beta.pth.tar`) and read back through `Disco.load_pretrained`; the
official model (built from the checkout `AIAIC_DISCO_OFFICIAL` names, see
tests/support/disco_official.py) gets the same tensors. Speed does not depend on the values.

Inputs: frames of the Chaplin film (../shared/data) resized to 256 x 256 as the official inference
script resizes, given as L_n [1, 1, 256, 256]; random smooth images where the film is absent.
- one frame at a time: the official call `model(L_n, ab, True, 0)` under `torch.no_grad` (its
  inference script's), against ours `outputs(encode(L_n))` under `torch.inference_mode`, in
  channels-last layout as `aiaic-colorize` runs it (the spec's `channels_last_inference`);
- film: FRAMES frames, the official one at a time, ours in batches of FILM_BATCH.
The model's forward only (no decoding, resizing or Lab conversion, which both pipelines share). Runs
alternate and the best of REPEATS is kept (the machine is shared). ratio = official time / ours.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data"))
FRAMES = int(os.environ.get("AIAIC_BENCH_DISCO_FRAMES", "16"))
REPEATS = int(os.environ.get("AIAIC_BENCH_DISCO_REPEATS", "2"))
FILM_BATCH = 8
SIZE = 256


def _frames(n: int) -> torch.Tensor:
    """n film frames as L_n [n, 1, 256, 256]."""
    from aiaic.lab import rgb_to_lab

    film = DATA / "clips" / "moviepy" / "chaplin_bw_film.mp4"
    if film.is_file():
        import av

        rgbs = []
        with av.open(str(film)) as box:
            for frame in box.decode(video=0):
                rgbs.append(torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1))
                if len(rgbs) == n:
                    break
        rgb = torch.stack(rgbs).float() / 255.0
    else:
        g = torch.Generator().manual_seed(0)
        rgb = F.interpolate(torch.rand(n, 3, 32, 32, generator=g), size=(360, 640), mode="bilinear")
    small = F.interpolate(rgb, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return (rgb_to_lab(small)[:, :1] - 50.0) / 50.0


def _best(fns: dict[str, Callable[[], None]]) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(REPEATS):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: min(v) for k, v in times.items()}


def _ours(weights: Path):
    from aiaic.models.backbones.disco import build_disco

    net = build_disco("disco")
    net.load_pretrained(weights)
    # as aiaic-colorize runs it: channels-last layout (its spec's runtime flag), inference mode
    return net.eval().to(memory_format=torch.channels_last)


def run() -> list[dict]:
    from tests.support.disco_official import build_official, official_checkout, official_shims

    torch.manual_seed(0)
    frames = _frames(FRAMES)
    repo, why = official_checkout()
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "disco-beta.pth.tar"
        official = build_official(repo) if repo is not None else None
        if official is not None:
            state = official.state_dict()
        else:
            from aiaic.models.backbones.disco import build_disco

            state = build_disco("disco").state_dict()
        torch.save({"state_dict": state}, weights)
        ours = _ours(weights)

    def ours_image() -> None:
        with torch.inference_mode():
            ours.outputs(ours.encode(frames[:1]))

    def ours_film() -> None:
        with torch.inference_mode():
            for i in range(0, FRAMES, FILM_BATCH):
                ours.outputs(ours.encode(frames[i : i + FILM_BATCH]))

    fns: dict[str, Callable[[], None]] = {"ours_image": ours_image, "ours_film": ours_film}
    if official is not None and repo is not None:
        zeros = torch.zeros(1, 2, SIZE, SIZE)

        def official_image() -> None:
            with official_shims(repo), torch.no_grad():
                official(frames[:1], zeros, True, 0)

        def official_film() -> None:
            with official_shims(repo), torch.no_grad():
                for i in range(FRAMES):
                    official(frames[i : i + 1], zeros, True, 0)

        np.random.seed(130)
        fns |= {"official_image": official_image, "official_film": official_film}
    ours_image()  # warm-up
    best = _best(fns)
    note = f"{torch.get_num_threads()} threads, {FRAMES} frames, best of {REPEATS}"
    rows = [
        {"benchmark": "disco", "metric": "one frame 256 px (aiaic)", "value": best["ours_image"],
         "unit": "s", "note": note},
        {"benchmark": "disco", "metric": f"film 256 px, batches of {FILM_BATCH} (aiaic)",
         "value": FRAMES / best["ours_film"], "unit": "frames/s", "note": note},
    ]  # fmt: skip
    if "official_image" in best:
        rows[0]["ratio"] = best["official_image"] / best["ours_image"]
        rows[1]["ratio"] = best["official_film"] / best["ours_film"]
        rows += [
            {"benchmark": "disco", "metric": "one frame 256 px (official)", "value": best["official_image"],
             "unit": "s", "note": note},
            {"benchmark": "disco", "metric": "film 256 px, one frame at a time (official)",
             "value": FRAMES / best["official_film"], "unit": "frames/s", "note": note},
        ]  # fmt: skip
    else:
        for r in rows:
            r["note"] += f"; official skipped: {why}"
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
