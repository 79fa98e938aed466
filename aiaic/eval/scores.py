"""Running means of one split's evaluation (`aiaic.eval.evaluate`): per entry, per AVE segment, the
grid's rows and the ground truth's colourfulness. Memory is constant in the number of images."""

from __future__ import annotations

import math
from typing import Any

from aiaic.eval.grid import GridRow
from aiaic.eval.metrics import hasler_colorfulness

PSNR_CAP = 100.0  # dB; identical images (PSNR = inf) enter split means as this value


class Accumulator:
    """Running sums of one (split, variant): memory is constant in the number of images."""

    def __init__(self) -> None:
        self.n = 0
        self.sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0, "colorfulness": 0.0, "r": 0.0}
        self.capped = 0

    def add(self, m: dict) -> None:
        self.n += 1
        p = m["psnr"]
        if math.isinf(p):
            self.capped += 1
            p = PSNR_CAP
        self.sums["psnr"] += p
        self.sums["ssim"] += m["ssim"]
        self.sums["colorfulness"] += m["colorfulness"]
        self.sums["r"] += m.get("r") or 0.0
        if m.get("lpips") is not None:
            self.sums["lpips"] += m["lpips"]

    def result(self, with_lpips: bool) -> dict:
        n = max(self.n, 1)
        return {
            "psnr": self.sums["psnr"] / n,
            "ssim": self.sums["ssim"] / n,
            "lpips": self.sums["lpips"] / n if with_lpips else None,
            "colorfulness": self.sums["colorfulness"] / n,
            "mean_r": self.sums["r"] / n,
            "n": self.n,
            "psnr_capped": self.capped,
        }


class GridPicker:
    """Up to n grid rows, spread over labels: the first sample of each new label is taken, and the
    first other samples fill what is left. Holds at most 2 n rows."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.first: list[GridRow] = []
        self.extra: list[GridRow] = []
        self.labels: set[str] = set()

    def wants(self, label: str) -> bool:
        return (label not in self.labels and len(self.first) < self.n) or len(self.extra) < self.n

    def add(self, row: GridRow) -> None:
        if row.label not in self.labels and len(self.first) < self.n:
            self.labels.add(row.label)
            self.first.append(row)
        elif len(self.extra) < self.n:
            self.extra.append(row)

    def rows(self) -> list[GridRow]:
        return (self.first + self.extra)[: self.n]


def segment_of(sample) -> str | None:
    """ "in_event" or "background" for an AVE segment (AVE's annotation, carried in the sample's json),
    None for a sample that has no such annotation (every non-AVE sample is marked in_event)."""
    ave = sample.meta.get("dataset") == "ave" or sample.meta.get("in_event") is False
    if not ave:
        return None
    return "in_event" if sample.meta.get("in_event", True) else "background"


class SplitScores:
    """The running means of one split: every entry, the same per AVE segment, the grid and the ground
    truth's colourfulness."""

    def __init__(self, names: list[str], save_images: int) -> None:
        self.names = names
        self.acc = {n: Accumulator() for n in names}
        self.segments: dict[str, dict[str, Accumulator]] = {}
        self.gt_colour, self.gt_n = 0.0, 0
        self.grid = GridPicker(save_images)

    def add(self, writer: Any, split: str, batch, scored) -> None:
        """Add one scored batch (`evaluate._score_batch`); its per-image rows go to `writer` (csv)."""
        gts, preds, rows, has = scored
        for i, s in enumerate(batch):
            label = str(s.meta.get("label", s.label_id))
            segment = segment_of(s)
            for name, per in rows.items():
                self.acc[name].add(per[i])
                if segment is not None:
                    self.segments.setdefault(segment, {}).setdefault(name, Accumulator()).add(per[i])
                writer.writerow(
                    {
                        "split": split,
                        "variant": name,
                        "key": s.key,
                        "label": label,
                        "has_audio": bool(has[i]),
                        **per[i],
                    }
                )
            self.gt_colour += hasler_colorfulness(gts[i])
            self.gt_n += 1
            if self.grid.wants(label):
                imgs = {n: preds[n][0][i] for n in preds} | {"ground_truth": gts[i]}
                r_full = float(preds["full"][1][i]) if "full" in preds else None
                self.grid.add(GridRow(s.key, label, imgs, r_full))
