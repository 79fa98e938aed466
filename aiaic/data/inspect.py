"""`aiaic-data inspect`: counts per split and category, extraction failures, and a contact sheet.

Works on a split folder (``manifest.json`` + ``index.csv``, from `aiaic-data split`) or on a raw
extraction output (``index.csv`` + ``recipe.json``, from `aiaic-data extract`)::

    aiaic-data inspect shards/split -o sheet.png

The contact sheet shows random samples (chosen with the seed), one row each: the frame, its grey
version (CIE L, what the colorizer sees) and the log-mel of its second (64 bands x 97 frames of 10 ms),
titled with the key, label and split.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aiaic.data.manifest import MANIFEST, Manifest, read_manifest
from aiaic.data.sample import DecodedSample, decode_sample
from aiaic.data.tars import TarIndex
from aiaic.errors import ConfigError, InputError
from aiaic.io import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InspectConfig:
    """Settings of `aiaic-data inspect`."""

    dir: Path | None = None  # a split folder or a raw extraction output
    output: Path | None = None  # contact sheet PNG; None = DIR/contact_sheet.png
    samples: int = 8  # samples on the contact sheet (0 = no sheet)
    seed: int = 0  # which samples are drawn
    split: str | None = None  # draw only from this split (split folders)

    def __post_init__(self) -> None:
        if self.samples < 0:
            raise ConfigError(f"samples must be >= 0, got {self.samples}")


@dataclass
class InspectReport:
    """What `inspect_data` found. `counts`: rows = category, columns = split, values = samples."""

    dir: Path
    kind: str  # "split" or "raw"
    counts: pd.DataFrame
    split_totals: dict[str, dict[str, int]]
    failures: Counter
    failure_examples: dict[str, str]
    sheet: Path | None
    sheet_keys: list[str] = field(default_factory=list)
    manifest: Manifest | None = None


def grey_of(image: np.ndarray) -> np.ndarray:
    """CIE L in [0, 100] of a uint8 RGB image [H, W, 3] (skimage's rgb2lab), float64 [H, W]."""
    from skimage import color

    return color.rgb2lab(image.astype(np.float64) / 255.0)[..., 0]


def _load_index(root: Path) -> tuple[str, pd.DataFrame, Manifest | None]:
    if not root.is_dir():
        raise InputError(root, "folder not found")
    index_path = root / "index.csv"
    manifest = None
    if (root / MANIFEST).is_file():
        kind = "split"
        manifest = read_manifest(root)
    elif (root / "recipe.json").is_file():
        kind = "raw"
    else:
        raise InputError(
            root, "neither a split folder (manifest.json) nor an extraction output (recipe.json)"
        )
    if not index_path.is_file():
        raise InputError(index_path, "missing")
    df = pd.read_csv(index_path, dtype=str, keep_default_na=False)
    for col in ("key", "shard", "label", "video_id", "split"):
        if col not in df.columns:
            raise InputError(index_path, f"missing column {col!r}")
    df["split"] = df["split"].replace("", "(none)")
    return kind, df, manifest


def _failures(dirs: list[Path]) -> tuple[Counter, dict[str, str]]:
    """Error class -> count over `failures*.jsonl` in `dirs`, with one example message per class."""
    counts: Counter = Counter()
    examples: dict[str, str] = {}
    for d in dirs:
        for path in sorted(d.glob("failures*.jsonl")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(path, f"line {n} is not JSON: {e}") from e
                err = str(rec.get("error", "unknown"))
                counts[err] += 1
                examples.setdefault(err, f"{rec.get('source', '?')}: {rec.get('message', '')}")
    return counts, examples


def _draw_sheet(samples: list[DecodedSample], splits: list[str], out: Path) -> None:
    """Write the contact sheet: one row per sample (frame, grey L, log-mel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(samples)
    fig, axes = plt.subplots(
        n, 3, figsize=(9.0, 2.4 * n), squeeze=False, gridspec_kw={"width_ratios": [1, 1, 1.4]}
    )
    for row, (s, split) in enumerate(zip(samples, splits, strict=True)):
        ax_rgb, ax_grey, ax_mel = axes[row]
        ax_rgb.imshow(s.image, interpolation="nearest")
        ax_grey.imshow(grey_of(s.image), cmap="gray", vmin=0, vmax=100, interpolation="nearest")
        if s.mel is not None:
            ax_mel.imshow(s.mel, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
            ax_mel.set_xlabel("frame (10 ms)", fontsize=7)
            ax_mel.set_ylabel("mel band", fontsize=7)
        else:
            ax_mel.text(0.5, 0.5, "no audio", ha="center", va="center", transform=ax_mel.transAxes)
            ax_mel.set_xticks([])
            ax_mel.set_yticks([])
        ax_rgb.set_title(f"{s.key}", fontsize=8, loc="left")
        ax_grey.set_title(f"{s.meta.get('label', '?')} [{split}]", fontsize=8, loc="left")
        ax_mel.set_title("log-mel", fontsize=8, loc="left")
        for ax in (ax_rgb, ax_grey):
            ax.set_xticks([])
            ax.set_yticks([])
        ax_mel.tick_params(labelsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def inspect_data(cfg: InspectConfig) -> InspectReport:
    """Count samples per split and category, read the failure logs, draw the contact sheet."""
    if cfg.dir is None:
        raise InputError("DIR", "no folder given")
    root = Path(cfg.dir)
    kind, df, manifest = _load_index(root)
    counts = df.pivot_table(index="label", columns="split", values="key", aggfunc="count", fill_value=0)
    counts = counts.loc[counts.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    totals = {
        str(name): {"samples": len(g), "videos": g["video_id"].nunique(), "categories": g["label"].nunique()}
        for name, g in df.groupby("split")
    }
    raw_dirs = [root]
    if manifest is not None:
        raw_dirs = sorted({Path(p).parent for p in manifest.source_shards})
    failures, examples = _failures([d for d in raw_dirs if d.is_dir()])

    sheet, keys = None, []
    pool = df if cfg.split is None else df[df["split"] == cfg.split]
    if cfg.split is not None and pool.empty:
        raise InputError(root, f"no samples in split {cfg.split!r}; splits: {sorted(set(df['split']))}")
    if cfg.samples > 0:
        rows = sorted(pool.index, key=lambda i: pool.at[i, "key"])
        rows = random.Random(cfg.seed).sample(rows, min(cfg.samples, len(rows)))
        tars = TarIndex()
        try:
            drawn = [decode_sample(tars.read(root / df.at[i, "shard"], df.at[i, "key"])) for i in rows]
        finally:
            tars.close()
        sheet = Path(cfg.output) if cfg.output is not None else root / "contact_sheet.png"
        _draw_sheet(drawn, [df.at[i, "split"] for i in rows], sheet)
        keys = [s.key for s in drawn]
    return InspectReport(root, kind, counts, totals, failures, examples, sheet, keys, manifest)


def report_lines(rep: InspectReport, max_categories: int = 40) -> list[str]:
    """The report as plain lines (the CLI prints them)."""
    lines = [f"{rep.dir} ({'split folder' if rep.kind == 'split' else 'extraction output'})"]
    for name, t in rep.split_totals.items():
        lines.append(
            f"  {name:7s} {t['samples']:8d} samples {t['videos']:7d} videos {t['categories']:5d} categories"
        )
    if rep.manifest is not None:
        m = rep.manifest
        lines.append(f"  ID categories: {len(m.id_categories)}; OOD: {list(m.ood_categories)}")
        samples = "?" if m.audio_stats is None else m.audio_stats.samples
        lines.append(f"  audio stats from {samples} train samples")
        lines += [f"  warning: {w}" for w in m.warnings]
    lines.append("samples per category and split:")
    shown = rep.counts.head(max_categories)
    lines += ["  " + ln for ln in shown.to_string().splitlines()]
    if len(rep.counts) > max_categories:
        lines.append(f"  ... and {len(rep.counts) - max_categories} more categories")
    if rep.failures:
        lines.append(f"extraction failures: {sum(rep.failures.values())}")
        for err, n in rep.failures.most_common():
            lines.append(f"  {err}: {n}  (e.g. {rep.failure_examples[err]})")
    else:
        lines.append("extraction failures: none recorded")
    if rep.sheet is not None:
        lines.append(f"contact sheet ({len(rep.sheet_keys)} samples): {rep.sheet}")
    return lines
