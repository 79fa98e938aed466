"""Loader throughput: training batches (decode, crop, flip, Lab, mel, negatives) in samples/s.

    python -m benchmarks.run loader

Shards like the real ones (JPEG frames with a 256-pixel short side at 16:9, float16 mel, pcm) are
written by `aiaic.demo.shards.write_split_dir` into a temporary directory: 2 classes x 8
videos x 12 s = 192 train samples in 8 shards. For each image size (64, 128) and worker count (0, 2) one
warm-up epoch is run (it also starts the spawn workers, which stay alive), then the next three epochs
are timed, so a row is the steady-state rate of one rank. The load average is in the note: on a shared
machine with no idle core, workers cannot help. The 2-worker rows give their ratio to the in-process
row.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from aiaic.data.loader import LoaderConfig, make_loader, open_split
from aiaic.demo.shards import write_split_dir

SIZES = (64, 128)
WORKERS = (0, 2)
BATCH = 16
TIMED_EPOCHS = 3


def _epochs_rate(loader, epochs: range) -> tuple[float, int]:
    """Samples/s over the given epochs, and the samples per epoch."""
    t0, n = time.perf_counter(), 0
    for epoch in epochs:
        loader.set_epoch(epoch)
        n += sum(len(b["key"]) for b in loader)
    return n / (time.perf_counter() - t0), n // len(epochs)


def run() -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        root = write_split_dir(
            Path(tmp) / "split", classes=2, videos_per_class=9, seconds=12, size=256, aspect=16 / 9,
            shards_per_split={"train": 8, "val": 2}, image_format="jpg", with_pcm=True,
        )  # fmt: skip
        source = open_split(root, "train")
        for size in SIZES:
            base = None
            for workers in WORKERS:
                cfg = LoaderConfig(image_size=size, batch_size=BATCH, workers=workers, mask_prob=0.2)
                with make_loader(source, cfg) as loader:
                    t0 = time.perf_counter()
                    _epochs_rate(loader, range(1))  # warm-up (and worker start-up)
                    warm = time.perf_counter() - t0
                    rate, n = _epochs_rate(loader, range(1, 1 + TIMED_EPOCHS))
                row = {
                    "benchmark": "loader",
                    "metric": f"train samples/s {size}px workers={workers}",
                    "value": rate,
                    "unit": "samples/s",
                    "note": f"{n} samples/epoch x {TIMED_EPOCHS}, batch {BATCH}, JPEG 256x455 source; first "
                    f"epoch (with start-up) {warm:.2f} s; load avg {os.getloadavg()[0]:.1f}"
                    + ("; ratio to workers=0" if workers else ""),
                }
                if workers == 0:
                    base = rate
                elif base:
                    row["ratio"] = rate / base
                rows.append(row)
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
