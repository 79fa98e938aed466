"""The main job on the embedded default: `nox -s demo` (or `python pipelines/demo.py [--out DIR]`).

Builds the project's generated audio-visual corpus (clips in which only the sound tells the colour),
then runs the real commands one after another into `demo-output/`:

    aiaic-data extract   --src demo-output/corpus --out demo-output/shards/raw --layout folder --mode all
    aiaic-data split     --src demo-output/shards/raw --out demo-output/shards/split --ood 1
    aiaic-data inspect   demo-output/shards/split -o demo-output/contact_sheet.png
    aiaic-train          --shards demo-output/shards/split --out demo-output/run --stage all
                         (the main chain, then Table 2's ablations: the w/o-r model and e2e)
    aiaic-eval           --run demo-output/run --shards demo-output/shards/split --split val --split ood
    aiaic-colorize       <one grey clip> --run demo-output/run -o demo-output/colorized/

Every command reads `pipelines/demo.toml`. No downloads, no ../shared needed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

from aiaic.demo.corpus import make_disambiguation_corpus

RECIPE = Path(__file__).resolve().parent / "demo.toml"


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the package first (pip install -e .)")
    return found


def _run(step: str, args: list[str]) -> float:
    print(f"\n== {step}: {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(args, check=True)
    dt = time.perf_counter() - t0
    print(f"== {step} done in {dt:.0f} s", flush=True)
    return dt


def make_grey_clip(src: Path, dst: Path) -> Path:
    """Re-encode `src` with its chroma removed (a stand-in for an old black-and-white film), audio kept."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        aout = out.add_stream("aac", rate=ain.codec_context.sample_rate)
        for vframe in inp.decode(vin):
            grey = vframe.to_ndarray(format="gray")
            rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
            for packet in vout.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in vout.encode():
            out.mux(packet)
        inp.seek(0)
        for aframe in inp.decode(ain):
            aframe.pts = None
            for packet in aout.encode(aframe):
                out.mux(packet)
        for packet in aout.encode():
            out.mux(packet)
    return dst


TABLE2_ROWS = (
    ("baseline", "visual-only baseline"),
    ("full", "full"),
    ("full_missing_audio", "full (missing audio, r = 0)"),
    ("no_r", "w/o r"),
    ("no_r_missing_audio", "w/o r (missing audio: silence, r = 1)"),
    ("e2e", "w/o multi-step"),
    ("full_mismatched_audio", "Table 2b: full, audio of another class"),
    ("no_r_mismatched_audio", "Table 2b: w/o r, audio of another class"),
)


def table2_summary(metrics_path: Path) -> list[str]:
    """Lines giving PSNR / SSIM / mean r of the baseline and Table 2's five rows, per split, from
    aiaic-eval's metrics.json (a row the run could not give says "n/a")."""
    metrics = json.loads(metrics_path.read_text())
    lines = [f"   protocol: {metrics['protocol'].get('name')}"]
    for split in metrics["splits"]:
        lines.append(f"   Table 2 on {split}: PSNR (dB) / SSIM / mean r")
        for variant, title in TABLE2_ROWS:
            m = metrics[split].get(variant)
            cell = "n/a" if m is None else f"{m['psnr']:5.2f} / {m['ssim']:.3f} / {m['mean_r']:.2f}"
            lines.append(f"     {title:<40} {cell}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output directory")
    parser.add_argument(
        "--classes", type=int, default=5, help="sound/colour classes (one is held out as OOD)"
    )
    parser.add_argument(
        "--videos-per-class", type=int, default=5, help="videos per class (10 one-second pairs each)"
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each generated clip, s")
    parser.add_argument(
        "--scene-groups",
        type=int,
        default=2,
        help="kinds of grey content (the relevance net needs the frame to show its group)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cfg = ["--config", str(RECIPE)]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    print(
        f"== corpus: {args.classes} classes x {args.videos_per_class} videos x {args.seconds} s", flush=True
    )
    corpus = make_disambiguation_corpus(
        out / "corpus",
        classes=args.classes,
        videos_per_class=args.videos_per_class,
        seconds=args.seconds,
        scene_groups=args.scene_groups,
    )
    timings["corpus"] = time.perf_counter() - t0
    raw, split, run = out / "shards" / "raw", out / "shards" / "split", out / "run"
    data, train, evaluate, colorize = (
        _tool(n) for n in ("aiaic-data", "aiaic-train", "aiaic-eval", "aiaic-colorize")
    )
    timings["extract"] = _run("extract", [data, "extract", "--src", str(corpus), "--out", str(raw), *cfg])
    timings["split"] = _run("split", [data, "split", "--src", str(raw), "--out", str(split), *cfg])
    timings["inspect"] = _run("inspect", [data, "inspect", str(split), "-o", str(out / "contact_sheet.png")])
    # the recipe's `ablations` make "all" train the w/o-r model and the end-to-end model too
    timings["train"] = _run(
        "train", [train, "--shards", str(split), "--out", str(run), "--stage", "all", *cfg]
    )
    timings["eval"] = _run(
        "eval",
        [evaluate, "--run", str(run), "--shards", str(split), "--out", str(out / "eval"), "--offline", *cfg],
    )
    clip = sorted(p for p in corpus.rglob("*.mp4"))[-1]
    grey = make_grey_clip(clip, out / f"grey_{clip.stem}.mp4")
    timings["colorize"] = _run(
        "colorize", [colorize, str(grey), "--run", str(run), "-o", str(out / "colorized"), *cfg]
    )
    total = time.perf_counter() - t0
    print(
        "\n== demo finished in {:.0f} s ({})".format(
            total, ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        )
    )
    print("\n".join(table2_summary(out / "eval" / "metrics.json")))
    print(f"   report (Tables 1 and 2): {out / 'eval' / 'report.md'}")
    print(f"   image grids:             {out / 'eval' / 'grids'}/<split>.png")
    print(f"   contact sheet:           {out / 'contact_sheet.png'}")
    print(f"   colourized clip:         {out / 'colorized'}/ (from {grey.name})")
    print(f"   training curves:         {run}/*/loss.png")
    print(f'\n   open the run in the browser (pip install "aiaic[app]"): aiaic-app --run {run}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
