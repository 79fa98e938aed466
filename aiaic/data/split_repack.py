"""Re-packing the assigned samples into split shards: the shard plan, the shards (atomic), index.csv and the
train log-mel statistics."""

from __future__ import annotations

import functools
import json
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import webdataset as wds

from aiaic.data.manifest import MANIFEST, SPLITS, AudioStats, SplitEntry
from aiaic.data.raw import INDEX_COLUMNS
from aiaic.data.sample import load_npy
from aiaic.data.split_config import SplitConfig
from aiaic.data.tars import TarIndex
from aiaic.errors import InputError
from aiaic.io import atomic_path
from aiaic.progress import progress_bar

STD_FLOOR = 1e-3  # lower bound of the recorded mel std (log-mel units)


def plan_shards(n: int, cfg: SplitConfig) -> tuple[int, str | None]:
    """Number of shards for `n` samples and, when the split is too small, a plain-words note."""
    need = cfg.min_shards
    if cfg.samples_per_shard:
        k = math.ceil(n / cfg.samples_per_shard)
    else:
        k = max(min(need, n), math.ceil(n / cfg.max_samples_per_shard))
    note = None
    if k < need:
        note = (
            f"{n} samples in {k} shards, fewer than the {need} (4 x {cfg.ranks} ranks x {cfg.workers} "
            "workers) that give every DDP rank and loader worker a share"
        )
    return k, note


def plan_splits(df: pd.DataFrame, cfg: SplitConfig, warnings: list[str]) -> dict[str, list[list[int]]]:
    """Per split, its rows shuffled with the seed and cut into equal contiguous shards."""
    plans: dict[str, list[list[int]]] = {}
    for name in SPLITS:
        rows = list(df[df["target"] == name].sort_values("key", kind="stable").index)
        if not rows:
            continue
        random.Random(f"{cfg.seed}:shuffle:{name}").shuffle(rows)
        k, note = plan_shards(len(rows), cfg)
        if note:
            warnings.append(f"split {name!r} is too small: {note}")
        plans[name] = [rows[i * len(rows) // k : (i + 1) * len(rows) // k] for i in range(k)]
    return plans


def prepare_out(out: Path, overwrite: bool) -> None:
    """Create `out`, or empty a previous split there (`overwrite`); InputError for any other content."""
    if out.exists() and any(out.iterdir()):
        ours = (out / MANIFEST).exists() or any((out / s).is_dir() for s in SPLITS)
        if not ours:
            raise InputError(out, "output folder is not empty and holds no previous split")
        if not overwrite:
            raise InputError(out, "holds a previous split; pass --overwrite to replace it")
        (out / MANIFEST).unlink(missing_ok=True)  # first: a half-replaced split has no manifest
        (out / "index.csv").unlink(missing_ok=True)
        for s in SPLITS:
            shutil.rmtree(out / s, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _repack_sample(raw: dict[str, bytes], split: str, label_id: int) -> dict[str, bytes]:
    meta = json.loads(raw["json"])
    meta["source_label_id"] = meta.get("label_id")
    meta["label_id"] = label_id
    meta["split"] = split
    sample = dict(raw)
    sample["json"] = json.dumps(meta, sort_keys=True).encode()
    sample["cls"] = str(label_id).encode()
    return sample


class MelStats:
    """Streamed per-band sums of log-mel values over frames (float64)."""

    def __init__(self, n_mels: int):
        self.s1 = np.zeros(n_mels)
        self.s2 = np.zeros(n_mels)
        self.frames = 0
        self.samples = 0

    def add(self, mel_npy: bytes) -> None:
        mel = load_npy(mel_npy).astype(np.float64)  # [n_mels, frames]
        self.s1 += mel.sum(axis=1)
        self.s2 += (mel * mel).sum(axis=1)
        self.frames += mel.shape[1]
        self.samples += 1

    def result(self) -> AudioStats:
        if self.samples == 0:
            n = len(self.s1)
            return AudioStats(
                mel_mean=(0.0,) * n, mel_std=(1.0,) * n, mel_mean_scalar=0.0, mel_std_scalar=1.0, samples=0
            )
        mean = self.s1 / self.frames
        # a constant band (std 0) would make normalisation divide by zero: floor at STD_FLOOR
        std = np.maximum(np.sqrt(np.maximum(self.s2 / self.frames - mean**2, 0.0)), STD_FLOOR)
        total = self.frames * len(self.s1)
        m = self.s1.sum() / total
        s = max(math.sqrt(max(self.s2.sum() / total - m * m, 0.0)), STD_FLOOR)
        return AudioStats(
            mel_mean=tuple(float(x) for x in mean),
            mel_std=tuple(float(x) for x in std),
            mel_mean_scalar=float(m),
            mel_std_scalar=float(s),
            samples=self.samples,
            std_floor=STD_FLOOR,
        )


@dataclass
class Repacker:
    """Re-packs planned rows into split shards, collecting the index rows and the train mel statistics."""

    out: Path
    records: list[dict]
    label_ids: dict[str, int]
    stats: MelStats
    index: TarIndex = field(default_factory=TarIndex)
    index_rows: list[dict] = field(default_factory=list)

    def write_shard(self, name: str, i: int, rows: list[int], advance: Callable[[], None]) -> str:
        """Write shard i of split `name` (atomically); returns its path relative to `out`."""
        rel = f"{name}/{name}-{i:06d}.tar"
        with (
            atomic_path(self.out / rel) as tmp,
            wds.TarWriter(str(tmp), encoder=False, mtime=0.0, user="aiaic", group="aiaic") as w,
        ):
            for r in rows:
                rec = self.records[r]
                label_id = self.label_ids[rec["label"]]
                raw = self.index.read(Path(rec["src"]) / rec["shard"], rec["key"])
                sample = _repack_sample(raw, name, label_id)
                if name == "train" and "mel.npy" in sample:
                    self.stats.add(sample["mel.npy"])
                w.write(sample)
                self.index_rows.append({**{c: rec[c] for c in INDEX_COLUMNS}, "shard": rel, "split": name,
                                        "label_id": label_id})  # fmt: skip
                advance()
        return rel


def write_splits(
    out: Path, df: pd.DataFrame, plans: dict[str, list[list[int]]], repacker: Repacker
) -> dict[str, SplitEntry]:
    """Write every planned shard and index.csv; returns the manifest's per-split counts and shards."""
    splits: dict[str, SplitEntry] = {}
    total = sum(len(r) for p in plans.values() for r in p)
    with progress_bar("[bold]split[/] {task.description}", transient=True) as bar:
        task = bar.add_task("re-packing", total=total)
        for name, shards in plans.items():
            (out / name).mkdir(parents=True, exist_ok=True)
            advance = functools.partial(bar.advance, task)
            names = [repacker.write_shard(name, i, rows, advance) for i, rows in enumerate(shards)]
            sel = df[df["target"] == name]
            splits[name] = SplitEntry(
                samples=int(len(sel)),
                videos=int(sel["video_id"].nunique()),
                categories=int(sel["label"].nunique()),
                shards=tuple(names),
                shard_samples=tuple(len(rows) for rows in shards),
            )
    repacker.index.close()
    with atomic_path(out / "index.csv") as tmp:
        pd.DataFrame(repacker.index_rows, columns=list(INDEX_COLUMNS)).to_csv(tmp, index=False)
    return splits
