"""Split throughput: re-packing raw shards into shuffled split shards, in samples/s and MB/s.

    python -m benchmarks.run split

A raw extraction output like the real one per sample (float16 mel [64, 97], float32 pcm [16000], a
small PNG frame: ~90 kB) is written by `aiaic.demo.shards.make_raw` into a temporary directory:
40 categories x 50 one-second clips = 2,000 samples in 8 shards. `run_split` then draws 5 OOD
categories, keeps the official train/test (-> train/val), shuffles, re-packs into 16 shards per split
and streams the train mel statistics. Reading is random access by tar offsets, so the rate is bounded
by the disk's small random reads; the VGGSound scale (~200k samples) takes about 200k / rate seconds.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from aiaic.data.split import SplitConfig, run_split
from aiaic.demo.shards import make_raw, raw_video

CATEGORIES, CLIPS = 40, 50


def run() -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_split_") as tmp:
        vids = [
            raw_video("vggsound", f"y{c:03d}_{i:03d}", f"class {c}", "train" if i % 10 else "test", start=i)
            for c in range(CATEGORIES)
            for i in range(CLIPS)
        ]
        raw = make_raw(Path(tmp) / "raw", vids, shards=8)
        size_mb = sum(p.stat().st_size for p in raw.glob("*.tar")) / 1e6
        cfg = SplitConfig(src=(raw,), out=Path(tmp) / "split", ood=5, ood_samples=100, ranks=2, workers=2)
        t0 = time.perf_counter()
        summary = run_split(cfg)
        dt = time.perf_counter() - t0
        n = sum(s.samples for s in summary.splits.values())
        note = (
            f"{len(vids)} raw samples ({size_mb:.0f} MB) -> {n} re-packed in {dt:.2f} s, 16 shards per split"
        )
        mb_per_s = size_mb * n / len(vids) / dt
        rows.append(dict(benchmark="split", metric="re-pack rate", value=n / dt, unit="samples/s", note=note))
        rows.append(dict(benchmark="split", metric="re-pack bandwidth", value=mb_per_s, unit="MB/s",
                         note="bytes of the re-packed samples / wall time"))  # fmt: skip
    return rows
