"""The metrics log of a stage: `metrics.jsonl` (append-only), TensorBoard events (where installed), loss.png.

One JSON object per line: a logged step holds at least step, epoch, the loss terms, lr, samples_per_s
and world_size (and r_mean where r is used); a resumed run first appends {"event": "resume", "step": N}.
Only rank 0 creates a `MetricsLog`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from aiaic.io import atomic_path

log = logging.getLogger(__name__)

NON_CURVE_KEYS = {"step", "epoch", "lr", "samples_per_s", "world_size", "event", "time", "split"}


class MetricsLog:
    """Append-only JSONL writer with an optional TensorBoard mirror."""

    def __init__(self, stage_dir: Path, tensorboard: bool = True):
        self.path = stage_dir / "metrics.jsonl"
        self._file = self.path.open("a")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                log.info("tensorboard is not installed: metrics go to %s only", self.path)
            else:
                self._tb = SummaryWriter(log_dir=str(stage_dir / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (flushed and fsynced, so a killed run keeps every line written)."""
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._tb is not None and "step" in record and "event" not in record:
            prefix = record.get("split", "train")
            for k, v in record.items():
                if k not in {"step", "epoch", "event", "split"} and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{prefix}/{k}", v, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl (a torn last line from a killed run is skipped)."""
    records: list[dict[str, Any]] = []
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s: skipping an unreadable line (a run killed while writing it)", path)
    return records


def plot_losses(metrics_path: Path, out_png: Path, title: str = "") -> None:
    """Plot every loss-like term of the log against the step into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_metrics(metrics_path) if "event" not in r and "step" in r]
    keys = sorted(
        {k for r in records for k, v in r.items() if k not in NON_CURVE_KEYS and isinstance(v, (int, float))}
    )
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for split in ("train", "val"):
        rows = [r for r in records if r.get("split", "train") == split]
        for k in keys:
            pts = [
                (r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(
                    xs,
                    ys,
                    label=f"{split} {k}",
                    marker="o" if split == "val" else None,
                    linestyle="--" if split == "val" else "-",
                )
    ax.set_xlabel("step")
    ax.set_title(title)
    if keys:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
