"""Benchmark films that do not flicker: frame-by-frame (`--temporal none`) vs stabilised (`stable`) colour.

    python -m benchmarks.run temporal
    AIAIC_BENCH_TEMPORAL_CLIPS=3 AIAIC_BENCH_TEMPORAL_SECONDS=3 python -m benchmarks.run temporal  # reduced

For each real colour clip in ../shared/data (first SECONDS seconds): its frames are turned grey (the
frame's own L, a = b = 0) and written with its soundtrack (packets copied, .mkv); that grey film is
colourized by `colorize_video` twice, `temporal="none"` and `"stable"`, with audio guidance on (its own
soundtrack); each result is scored against the original colour frames by `aiaic.eval.film.evaluate_clip`
(L kept from the reference; no LPIPS here). Reported per model, per clip and overall (means over clips):

- CDC of none, stable and the reference (the floor); gap closed = (none - stable) / (none - reference)
  (goal >= 50 %);
- PSNR delta = stable - none, dB (goal >= -0.1 dB); colourfulness ratio = stable / none (goal within 5 %);
- speed ratio = stable frames/s / none frames/s, the whole path (decode, model, stabiliser, encode,
  audio remux), best of two runs each, alternating (goal >= 0.7x).
A clip's gap closed of "nan" means it has no gap: its frame-by-frame CDC is already at or below the
reference's.

Models (say which in every row): "unet-run": a trained U-Net run, AIAIC_BENCH_TEMPORAL_RUN if given (e.g.
the demo run, `python pipelines/demo.py`), else the test suite's tiny run (tests/support
colorize_fixtures.train_tiny_run: a 4-channel U-Net trained one epoch at 32 px with all stages, trained
here in about a minute; the smallest honest stand-in); "ddcolor-mini": the full audio-guided colorizer on
a randomly initialised ddcolor-mini backbone at 128 px (random weights: its colours mean nothing, its
flicker and its speed do). Writes results/temporal.json, results/temporal.md and results/temporal.png
(JS at d = 1 over time for each model's clip with the largest CDC gap). Overall: means over clips;
the gap closed overall is sum(none - stable) / sum(none - reference) over the clips that have a gap.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results"
CLIPS = (  # real colour clips with sound, motion and (some) cuts
    "clips/moviepy/doc_example3_sintel.mp4",
    "clips/videollama/skateboarding_dog.mp4",
    "clips/avsbench/ms3_CbQ2Ap7Phsw_dog_child.mp4",
    "clips/moviepy/fire2_fireplace_dog.mp4",
    "clips/foleycrafter/vggsound_1_sheep.mp4",
    "clips/videollama/boat.mp4",
)
N_CLIPS = int(os.environ.get("AIAIC_BENCH_TEMPORAL_CLIPS", str(len(CLIPS))))
SECONDS = float(os.environ.get("AIAIC_BENCH_TEMPORAL_SECONDS", "6"))
MAX_SIDE = int(os.environ.get("AIAIC_BENCH_TEMPORAL_MAX_SIDE", "480"))  # larger clips are scaled down


def grey_film(src: Path, dst: Path, seconds: float) -> tuple[Path, Path]:
    """(reference, grey): the first `seconds` of `src` as colour frames (lossless H.264, at most MAX_SIDE
    px wide/high) and as grey frames (their own L) with the soundtrack's packets copied."""
    from aiaic.colorize.compose import join_full_resolution, luminance_uint8

    ref_path = dst.with_name(dst.stem + "-reference.mkv")
    with av.open(str(src)) as ic, av.open(str(dst), "w") as oc, av.open(str(ref_path), "w") as rc:
        iv = ic.streams.video[0]
        ia = ic.streams.audio[0] if ic.streams.audio else None
        w, h = iv.codec_context.width, iv.codec_context.height
        scale = min(1.0, MAX_SIDE / max(w, h))
        w, h = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
        rate = iv.average_rate or Fraction(25)
        streams = []
        for c, crf in ((oc, "12"), (rc, "0")):
            s = c.add_stream("libx264", rate=rate)
            s.width, s.height, s.pix_fmt = w, h, "yuv444p" if crf == "0" else "yuv420p"
            s.options = {"crf": crf, "preset": "veryfast"}
            streams.append(s)
        oa = oc.add_stream_from_template(ia) if ia is not None else None
        k = 0
        for frame in ic.decode(iv):
            if frame.time is not None and frame.time - float((iv.start_time or 0) * iv.time_base) >= seconds:
                break
            rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
            grey = join_full_resolution(luminance_uint8(rgb[None]), torch.zeros(1, 2, 1, 1))[0]
            for c, s, img in ((oc, streams[0], grey), (rc, streams[1], rgb)):
                f = av.VideoFrame.from_ndarray(img, format="rgb24")
                f.pts, f.time_base = k, 1 / Fraction(rate)
                c.mux(s.encode(f))
            k += 1
        for c, s in ((oc, streams[0]), (rc, streams[1])):
            c.mux(s.encode(None))
        if ia is not None:
            ic.seek(0)
            for p in ic.demux(ia):
                if p.pts is None or p.dts is None or float(p.pts * p.time_base) >= seconds:
                    continue
                p.stream = oa
                oc.mux(p)
    return ref_path, dst


def _inference(net, variant: str, size: int):
    from aiaic.data.audio import MelConfig
    from aiaic.runs.inference import InferenceModel

    return InferenceModel(
        model=net.eval(),
        variant=variant,
        image_size=size,
        mel_mean=torch.zeros(64),
        mel_std=torch.ones(64),
        mel_config=MelConfig(),
        device=torch.device("cpu"),
        stage_dir=None,
    )


def models(tmp: Path) -> dict[str, tuple[object, str]]:
    """{name: (InferenceModel, what it is)}."""
    from aiaic.models.colorizer import build_colorizer
    from aiaic.models.config import ModelConfig
    from aiaic.runs.inference import load_inference

    run = os.environ.get("AIAIC_BENCH_TEMPORAL_RUN")
    if run:
        unet, what = load_inference(Path(run), "full", torch.device("cpu")), f"run {run}, variant full"
    else:
        sys.path.insert(0, str(ROOT / "tests"))  # the test suite's tiny-run builder (support package)
        from support.colorize_fixtures import train_tiny_run

        torch.manual_seed(0)
        run_dir, _ = train_tiny_run(tmp / "tiny")
        unet = load_inference(run_dir, "full", torch.device("cpu"))
        what = "tests' tiny U-Net run (1 epoch, 32 px), variant full"
    torch.manual_seed(0)
    dd = build_colorizer(ModelConfig(backbone="ddcolor-mini"))
    return {
        "unet-run": (unet, what),
        "ddcolor-mini": (
            _inference(dd, "full", 128),
            "ddcolor-mini backbone, random weights, full audio colorizer, 128 px",
        ),
    }


def _score(reference: Path, coloured: Path, frames: int) -> dict:
    from aiaic.eval.film import FilmEvalConfig, evaluate_clip

    cfg = FilmEvalConfig(reference=reference, coloured=coloured, max_frames=max(2, frames), progress=False)
    return evaluate_clip(reference, coloured, None, cfg)


def _warm_up(model, grey: Path, tmp: Path) -> None:
    """Half a second of each mode first, so compilation and first calls are not timed."""
    from aiaic.colorize.config import ColorizeConfig
    from aiaic.colorize.video import colorize_video

    for mode in ("none", "stable"):
        cfg = ColorizeConfig(progress=False, temporal=mode, max_seconds=0.5)
        colorize_video(grey, tmp / f"warm-{mode}.mkv", model, cfg, torch.device("cpu"))


def clip_rows(model, ref: Path, grey: Path, tmp: Path) -> dict:
    from aiaic.colorize.config import ColorizeConfig
    from aiaic.colorize.video import colorize_video

    out: dict = {}
    fps: dict[str, float] = {"none": 0.0, "stable": 0.0}
    for mode in ("none", "stable", "none", "stable"):  # alternating, best of two (the machine is shared)
        cfg = ColorizeConfig(progress=False, temporal=mode, batch_size=8)
        dst = tmp / f"{grey.stem}-{mode}.mkv"
        res = colorize_video(grey, dst, model, cfg, torch.device("cpu"))
        fps[mode] = max(fps[mode], res.frames_per_second)
        if mode not in out:
            out[mode] = {"frames": res.frames, **_score(ref, dst, res.frames)}
    for mode in out:
        out[mode]["fps"] = fps[mode]
    n, s = out["none"], out["stable"]
    gap = n["cdc"] - s["cdc_reference"]
    return {
        "cdc_none": n["cdc"],
        "cdc_stable": s["cdc"],
        "cdc_reference": s["cdc_reference"],
        "gap_closed": (n["cdc"] - s["cdc"]) / gap if gap > 0 else math.nan,
        "psnr_none": n["psnr"],
        "psnr_delta": s["psnr"] - n["psnr"],
        "colourfulness_none": n["colorfulness"],
        "colourfulness_ratio": s["colorfulness"] / n["colorfulness"] if n["colorfulness"] else math.nan,
        "speed_ratio": s["fps"] / n["fps"],
        "fps_none": n["fps"],
        "frames": s["frames"],
        "cuts": s["cuts"],
        "js1": {
            "none": n["per_frame"]["js1"],
            "stable": s["per_frame"]["js1"],
            "reference": s["per_frame"]["js1_reference"],
        },
    }


def overall(per_clip: dict[str, dict]) -> dict:
    def mean(k: str) -> float:
        return float(np.nanmean([c[k] for c in per_clip.values()]))

    none, stable, ref = mean("cdc_none"), mean("cdc_stable"), mean("cdc_reference")
    # the gap over the clips that have one (a clip whose frame-by-frame CDC is already at or below its
    # reference's has nothing to close, and would otherwise hide the others' gap in the mean)
    gapped = [c for c in per_clip.values() if c["cdc_none"] > c["cdc_reference"]]
    gap = sum(c["cdc_none"] - c["cdc_reference"] for c in gapped)
    closed = sum(c["cdc_none"] - c["cdc_stable"] for c in gapped)
    return {
        "cdc_none": none,
        "cdc_stable": stable,
        "cdc_reference": ref,
        "gap_closed": closed / gap if gap > 0 else math.nan,
        "clips_with_gap": len(gapped),
        "psnr_none": mean("psnr_none"),
        "psnr_delta": mean("psnr_delta"),
        "colourfulness_none": mean("colourfulness_none"),
        "colourfulness_ratio": mean("colourfulness_ratio"),
        "speed_ratio": mean("speed_ratio"),
        "fps_none": mean("fps_none"),
        "frames": sum(c["frames"] for c in per_clip.values()),
    }


def table(results: dict) -> str:
    lines = [
        "| model | clip | frames | CDC none | CDC stable | CDC reference | gap closed | PSNR none "
        "| PSNR delta | colourfulness none | colourfulness ratio | fps none | speed ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, res in results["models"].items():
        for name, r in [*res["clips"].items(), ("**overall**", res["overall"])]:
            lines.append(
                f"| {model} | {name} | {r['frames']} | {r['cdc_none']:.4f} | {r['cdc_stable']:.4f} | "
                f"{r['cdc_reference']:.4f} | {100 * r['gap_closed']:.0f} % | {r['psnr_none']:.2f} | "
                f"{r['psnr_delta']:+.2f} dB | {r['colourfulness_none']:.2f} | "
                f"{r['colourfulness_ratio']:.3f} | {r['fps_none']:.1f} | {r['speed_ratio']:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results["models"])
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.8 * n), dpi=100, squeeze=False)
    for ax, (model, res) in zip(axes[:, 0], results["models"].items(), strict=True):
        # the clip with the largest gap between frame-by-frame and reference CDC
        name, clip = max(res["clips"].items(), key=lambda kv: kv[1]["cdc_none"] - kv[1]["cdc_reference"])
        for key, colour in (("none", "tab:red"), ("stable", "tab:blue"), ("reference", "grey")):
            ys = [math.nan if v is None else v for v in clip["js1"][key]]
            ax.plot(ys, lw=1.0, color=colour, label=f"{key} (CDC {clip['cdc_' + key]:.4f})")
        for cut in clip["cuts"]:
            ax.axvline(cut, color="black", ls="--", lw=0.8)
        ax.set_title(f"{model}: {name}", fontsize=9)
        ax.set_ylabel("JS(t-1, t), nats")
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("frame (dashed: shot cuts)")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def run() -> list[dict]:
    clips = [DATA / c for c in CLIPS[:N_CLIPS] if (DATA / c).is_file()]
    if not clips:
        return [{"metric": "skipped", "value": f"no colour clips under {DATA}", "unit": ""}]
    results: dict = {"seconds": SECONDS, "models": {}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        films = [grey_film(c, tmp / f"{c.stem}.mkv", SECONDS) for c in clips]
        for name, (model, what) in models(tmp).items():
            _warm_up(model, films[0][1], tmp)
            per_clip = {}
            for (ref, grey), src in zip(films, clips, strict=True):
                per_clip[src.name] = clip_rows(model, ref, grey, tmp)
            results["models"][name] = {"what": what, "clips": per_clip, "overall": overall(per_clip)}
            o = results["models"][name]["overall"]
            note = f"{what}; {len(clips)} clips x {SECONDS:g} s, audio on"
            rows += [
                {
                    "metric": f"{name} CDC gap closed",
                    "value": o["gap_closed"],
                    "unit": "fraction",
                    "note": note,
                },
                {"metric": f"{name} PSNR delta", "value": o["psnr_delta"], "unit": "dB", "note": note},
                {
                    "metric": f"{name} colourfulness ratio",
                    "value": o["colourfulness_ratio"],
                    "unit": "x",
                    "note": note,
                },
                {"metric": f"{name} speed ratio", "value": o["speed_ratio"], "unit": "x", "note": note},
            ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "temporal.json").write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    (RESULTS / "temporal.md").write_text(table(results))
    plot(results, RESULTS / "temporal.png")
    print(table(results))
    return rows


if __name__ == "__main__":
    run()
