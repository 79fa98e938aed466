"""`aiaic-data split`: leakage-free train/val/ood/test splits of extracted shards, and the manifest.

Reads one or more raw extraction outputs (``RAW/index.csv``, ``RAW/*.tar`` with their
``*.stats.json``, ``RAW/recipe.json``) and writes ``OUT/{train,val,ood,test}/<split>-NNNNNN.tar``,
``OUT/index.csv`` and, last, ``OUT/manifest.json``::

    aiaic-data split --src shards/raw --out shards/split --ood 20 --config pipelines/vggsound.toml

Rules:
- OOD categories: `ood_list` when given, else `ood` drawn with the seed among the categories present
  outside the ID list (`categories`). Their rows go to "ood" only (at most `ood_samples` of them,
  chosen with the seed); they never reach train or val.
- Official splits are kept: VGGSound train -> train, test -> val; AVE train/val/test -> train/val/test;
  a folder source (no official split) sends a seeded `val_fraction` of each category's videos to val.
  A dataset named in `test_datasets` (the paper: AVE next to VGGSound) gives only its official test
  rows, whatever their category, to "test"; its categories get label ids after the ID and OOD ones.
- Splits are by video: every row of a video lands in one split (test > ood > val > train when rows
  disagree; the others are left out and counted). A non-AVE video whose id is an AVE id (from an
  AVE source given alongside, or the `holdout_ids` file) is kept out of train.
- Samples are shuffled with the seed and re-packed into equal shards, at least 4 x ranks x workers
  per split where the data allows; the per-band log-mel mean/std is computed on train only.

The class-list-only path (`aiaic.data.categories.write_category_lists`) chooses the OOD categories from
a class list such as VGGSound's ``stat.csv`` without any videos (``manifests/vggsound-*.txt``).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import webdataset as wds

from aiaic.config import config_to_dict, recipe_hash, write_json_atomic
from aiaic.data.categories import choose_ood, read_class_file, read_video_ids, write_category_lists
from aiaic.data.raw import INDEX_COLUMNS, RawSource, TarIndex, load_raw, mel_config_of
from aiaic.data.sample import load_npy
from aiaic.errors import ConfigError, InputError
from aiaic.io import atomic_path
from aiaic.progress import progress_bar

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
STD_FLOOR = 1e-3  # lower bound of the recorded mel std (log-mel units)
SPLITS = ("train", "val", "ood", "test")
# official split value -> our split, per dataset (others: train/val/test kept as they are)
OFFICIAL_SPLITS = {
    "vggsound": {"train": "train", "test": "val"},
    "ave": {"train": "train", "val": "val", "test": "test"},
}
DEFAULT_OFFICIAL = {"train": "train", "val": "val", "validation": "val", "test": "test"}
# settings that do not change what a split holds (left out of the manifest's recipe)
_NOT_RECIPE = ("out", "overwrite", "class_list", "list_name")
DROP = "-"  # assign_rows: a row left out for a reason (not pending a val/train draw)
PRIORITY = {"test": 3, "ood": 2, "val": 1, "train": 0}  # where a video goes when its rows disagree


@dataclass(frozen=True)
class SplitConfig:
    """Settings of `aiaic-data split` (recipe table [split]).

    A path given in the recipe is relative to the recipe file's folder, one given as a flag to the
    working directory.
    """

    src: tuple[Path, ...] = ()  # raw extraction outputs (one or more)
    out: Path | None = None  # output folder (split mode) or folder of the category lists (class-list mode)
    ood: int | None = None  # number of OOD categories; None = len(ood_list) or 0
    seed: int = 0  # every random choice (OOD categories, OOD samples, val videos, shuffles)
    categories: Path | None = None  # ID category list, one class per line ('#' comments); None = all present
    ood_list: Path | None = None  # a fixed OOD category list (e.g. manifests/vggsound-ood20.txt)
    ood_samples: int = 1000  # cap on OOD pairs (samples), chosen with the seed
    val_fraction: float = 0.1  # share of each category's videos sent to val when there is no official split
    samples_per_shard: int = 0  # 0 = chosen from the sample count (>= 4 x ranks x workers shards)
    max_samples_per_shard: int = 2000  # upper bound for the automatic choice (~100 kB per sample)
    ranks: int = 2  # DDP ranks the shards must feed
    workers: int = 2  # loader workers per rank
    holdout_ids: Path | None = None  # video ids kept out of train (one per line, or AVE's Annotations.txt)
    test_datasets: tuple[str, ...] = ()  # datasets used only for their official test rows (paper: ("ave",))
    overwrite: bool = False  # replace a previous split in `out`
    class_list: Path | None = None  # class-list-only mode: choose categories from this list (stat.csv)
    list_name: str = "categories"  # class-list mode: prefix of the written list files

    def __post_init__(self) -> None:
        object.__setattr__(self, "test_datasets", tuple(d.strip().lower() for d in self.test_datasets))
        if self.ood is not None and self.ood < 0:
            raise ConfigError(f"ood must be >= 0, got {self.ood}")
        if self.ood_samples < 0:
            raise ConfigError(f"ood_samples must be >= 0, got {self.ood_samples}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.samples_per_shard < 0 or self.max_samples_per_shard < 1:
            raise ConfigError("samples_per_shard must be >= 0 and max_samples_per_shard >= 1")
        if self.ranks < 1 or self.workers < 1:
            raise ConfigError("ranks and workers must be >= 1")

    @property
    def min_shards(self) -> int:
        """Shards a split needs so every rank and worker gets a share: 4 x ranks x workers."""
        return 4 * self.ranks * self.workers


@dataclass
class SplitSummary:
    """What `run_split` wrote: per-split counts, the categories, and every warning in plain words."""

    out: Path
    manifest: Path
    splits: dict[str, dict]
    id_categories: list[str]
    ood_categories: list[str]
    excluded: dict[str, int]
    audio_samples: int
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"split written to {self.out} ({self.seconds:.1f} s); manifest {self.manifest}"]
        out.append(f"{len(self.id_categories)} ID categories, {len(self.ood_categories)} OOD categories")
        for name, s in self.splits.items():
            out.append(
                f"  {name:5s}: {s['samples']} samples, {s['videos']} videos, {s['categories']} categories, "
                f"{len(s['shards'])} shards"
            )
        for reason, n in sorted(self.excluded.items()):
            out.append(f"  left out: {n} samples ({reason})")
        out.append(f"audio mel mean/std from {self.audio_samples} train samples")
        for w in self.warnings:
            out.append(
                f"warning: {w}" if len(w) <= 400 else f"warning: {w[:400]}... (in full: manifest.json)"
            )
        return out


# ------------------------------------------------------------------------------- assignment


def _official_target(dataset: str, split: str | None, where: str) -> str | None:
    if split is None:
        return None
    table = OFFICIAL_SPLITS.get(dataset, DEFAULT_OFFICIAL)
    if split not in table:
        raise InputError(where, f"unknown official split {split!r} for dataset {dataset!r}")
    return table[split]


def assign_rows(
    df: pd.DataFrame, cfg: SplitConfig, id_cats: set[str], ood_cats: set[str], holdout: set[str]
) -> tuple[pd.Series, Counter]:
    """The split of each row ('train', 'val', 'ood', 'test'; None = left out) and why rows were left out."""
    excluded: Counter = Counter()
    target: list[str | None] = []
    for label, dataset, split, src in zip(df["label"], df["dataset"], df["split"], df["src"], strict=True):
        if dataset in cfg.test_datasets:  # a test-only dataset: its official test rows, any category
            t = _official_target(dataset, split, f"{src}/index.csv")
            target.append("test" if t == "test" else DROP)
            if t != "test":
                excluded[f"{dataset} row outside its official test split (test_datasets)"] += 1
            continue
        if label in ood_cats:
            target.append("ood")
            continue
        if label not in id_cats:
            target.append(DROP)
            excluded["category neither ID nor OOD"] += 1
            continue
        target.append(_official_target(dataset, split, f"{src}/index.csv"))  # None: no official split
    out = pd.Series(target, index=df.index, dtype=object)

    # folder sources: a seeded share of each category's videos (with no official split) goes to val
    nosplit = df[
        out.isna() & df["split"].isna() & df["label"].isin(id_cats) & ~df["dataset"].isin(cfg.test_datasets)
    ]
    for label, group in sorted(nosplit.groupby("label"), key=lambda g: g[0]):
        videos = sorted(set(group["video_id"]))
        random.Random(f"{cfg.seed}:val:{label}").shuffle(videos)
        n_val = round(cfg.val_fraction * len(videos))
        if cfg.val_fraction > 0 and len(videos) >= 2:
            n_val = min(max(n_val, 1), len(videos) - 1)
        val_videos = set(videos[:n_val])
        out[group.index] = ["val" if v in val_videos else "train" for v in group["video_id"]]
    out[out == DROP] = None

    # a non-AVE video whose id is an AVE (holdout) id never trains; VGGSound ids are 11-character
    # YouTube ids, so an id written as "{ytid}_{start}" is matched by its first 11 characters too
    for i, (vid, dataset, t) in enumerate(zip(df["video_id"], df["dataset"], out, strict=True)):
        if t == "train" and dataset != "ave" and (vid in holdout or vid[:11] in holdout):
            out.iat[i] = None
            excluded["video id is also an AVE / holdout id: kept out of train"] += 1

    # one split per video: the most held-out one wins; rows wanting another are left out
    top: dict[str, int] = {}
    for vid, t in zip(df["video_id"], out, strict=True):
        if t is not None:
            top[vid] = max(top.get(vid, -1), PRIORITY[t])
    for i, (vid, t) in enumerate(zip(df["video_id"], out, strict=True)):
        if t is not None and PRIORITY[t] != top[vid]:
            out.iat[i] = None
            excluded["video already in a more held-out split"] += 1

    # the OOD cap: at most ood_samples pairs, chosen with the seed
    ood_keys = sorted(df.loc[out == "ood", "key"])
    if len(ood_keys) > cfg.ood_samples:
        keep = set(random.Random(f"{cfg.seed}:ood").sample(ood_keys, cfg.ood_samples))
        drop = (out == "ood") & ~df["key"].isin(keep)
        out[drop] = None
        excluded["OOD beyond --ood-samples"] += int(drop.sum())
    return out, excluded


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


# ----------------------------------------------------------------------------------- writing


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        ours = (out / "manifest.json").exists() or any((out / s).is_dir() for s in SPLITS)
        if not ours:
            raise InputError(out, "output folder is not empty and holds no previous split")
        if not overwrite:
            raise InputError(out, "holds a previous split; pass --overwrite to replace it")
        (out / "manifest.json").unlink(missing_ok=True)  # first: a half-replaced split has no manifest
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


class _MelStats:
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

    def result(self) -> dict:
        if self.samples == 0:
            n = len(self.s1)
            return {
                "mel_mean": [0.0] * n,
                "mel_std": [1.0] * n,
                "mel_mean_scalar": 0.0,
                "mel_std_scalar": 1.0,
                "computed_on": "train",
                "samples": 0,
            }
        mean = self.s1 / self.frames
        # a constant band (std 0) would make normalisation divide by zero: floor at STD_FLOOR
        std = np.maximum(np.sqrt(np.maximum(self.s2 / self.frames - mean**2, 0.0)), STD_FLOOR)
        total = self.frames * len(self.s1)
        m = self.s1.sum() / total
        s = max(math.sqrt(max(self.s2.sum() / total - m * m, 0.0)), STD_FLOOR)
        return {
            "mel_mean": [float(x) for x in mean],
            "mel_std": [float(x) for x in std],
            "mel_mean_scalar": float(m),
            "mel_std_scalar": float(s),
            "computed_on": "train",
            "samples": self.samples,
            "std_floor": STD_FLOOR,
        }


def _warn(warnings: list[str], msg: str) -> None:
    """Log a warning now, and keep it for the manifest and the summary."""
    log.warning(msg)
    warnings.append(msg)


def _read_sources(cfg: SplitConfig) -> tuple[list[RawSource], dict, pd.DataFrame]:
    """The raw extraction outputs, their common mel configuration, and all their index rows."""
    sources = [load_raw(Path(s)) for s in cfg.src]
    mel_cfgs = [mel_config_of(s.recipe, s.root / "recipe.json") for s in sources]
    for s, m in zip(sources[1:], mel_cfgs[1:], strict=True):
        if m != mel_cfgs[0]:
            raise InputError(s.root / "recipe.json", f"mel configuration differs from {sources[0].root}")
    return sources, mel_cfgs[0], pd.concat([s.index for s in sources], ignore_index=True)


def _ood_categories(
    cfg: SplitConfig, present: list[str], id_pool: list[str], warnings: list[str]
) -> list[str]:
    """The OOD categories: those present of `cfg.ood_list`, else `cfg.ood` drawn with the seed."""
    if cfg.ood_list is None:
        outside = set(present) - set(id_pool) if cfg.categories is not None else set(present)
        return choose_ood(outside, cfg.ood or 0, cfg.seed)
    fixed = read_class_file(cfg.ood_list)
    if cfg.ood is not None and cfg.ood != len(fixed):
        raise ConfigError(f"--ood {cfg.ood} disagrees with the {len(fixed)} categories of {cfg.ood_list}")
    clash = sorted(set(fixed) & set(id_pool)) if cfg.categories is not None else []
    if clash:
        raise InputError(cfg.ood_list, f"OOD categories also in the ID list {cfg.categories}: {clash}")
    absent = sorted(set(fixed) - set(present))
    if absent:
        _warn(warnings, f"{cfg.ood_list}: {len(absent)} OOD categories have no samples: {absent}")
    return sorted(set(fixed) & set(present))


def _choose_categories(
    df: pd.DataFrame, cfg: SplitConfig, warnings: list[str]
) -> tuple[list[str], list[str], dict[str, int]]:
    """ID and OOD categories and the label ids (ID, then OOD, then test-only categories).

    Test-only datasets (`cfg.test_datasets`) take no part in the ID/OOD choice.
    """
    test_only = df["dataset"].isin(cfg.test_datasets)
    for name in sorted(set(cfg.test_datasets) - set(df["dataset"])):
        _warn(warnings, f"test_datasets names {name!r}, but no source holds {name!r} rows")
    present = sorted(set(df.loc[~test_only, "label"]))
    id_pool = present
    if cfg.categories is not None:
        wanted = read_class_file(cfg.categories)
        absent = sorted(set(wanted) - set(present))
        if absent:
            _warn(warnings, f"{cfg.categories}: {len(absent)} listed categories have no samples: {absent}")
        id_pool = sorted(set(wanted) & set(present))
    ood_cats = _ood_categories(cfg, present, id_pool, warnings)
    id_cats = sorted(set(id_pool) - set(ood_cats))
    test_cats = sorted(set(df.loc[test_only, "label"]) - set(id_cats) - set(ood_cats))
    return id_cats, ood_cats, {c: i for i, c in enumerate(id_cats + ood_cats + test_cats)}


def _assign_targets(df: pd.DataFrame, cfg: SplitConfig, id_cats: list[str], ood_cats: list[str]) -> Counter:
    """Set df["target"] (the split of each row, None = left out); returns why rows were left out."""
    holdout = set(df.loc[df["dataset"] == "ave", "video_id"])
    if cfg.holdout_ids is not None:
        holdout |= read_video_ids(cfg.holdout_ids)
    df["target"], excluded = assign_rows(df, cfg, set(id_cats), set(ood_cats), holdout)
    kept = df.loc[df["target"].notna(), "key"]
    dup = sorted(set(kept[kept.duplicated()]))
    if dup:  # the same key from two sources, both kept (the rule above leaves out all but one split)
        raise InputError(cfg.src[0], f"sample keys kept from more than one source: {dup[:5]}")
    if not (df["target"] == "train").any():
        got = dict(Counter(t for t in df["target"] if t is not None))
        raise ConfigError(
            f"no training samples left (assigned: {got}, left out: {dict(excluded)}): check --categories, "
            "--ood and the sources' official splits. A test-only source (e.g. AVE's test set) goes next to "
            "the training data: --src TRAIN_RAW --src AVE_RAW --test-datasets ave"
        )
    return excluded


def _plan_splits(df: pd.DataFrame, cfg: SplitConfig, warnings: list[str]) -> dict[str, list[list[int]]]:
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


@dataclass
class _Repacker:
    """Re-packs planned rows into split shards, collecting the index rows and the train mel statistics."""

    out: Path
    records: list[dict]
    label_ids: dict[str, int]
    stats: _MelStats
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


def _write_splits(
    out: Path, df: pd.DataFrame, plans: dict[str, list[list[int]]], repacker: _Repacker
) -> dict[str, dict]:
    """Write every planned shard and index.csv; returns the manifest's per-split counts and shards."""
    splits: dict[str, dict] = {}
    total = sum(len(r) for p in plans.values() for r in p)
    with progress_bar("[bold]split[/] {task.description}", transient=True) as bar:
        task = bar.add_task("re-packing", total=total)
        for name, shards in plans.items():
            (out / name).mkdir(parents=True, exist_ok=True)
            advance = functools.partial(bar.advance, task)
            names = [repacker.write_shard(name, i, rows, advance) for i, rows in enumerate(shards)]
            sel = df[df["target"] == name]
            splits[name] = {
                "samples": int(len(sel)),
                "videos": int(sel["video_id"].nunique()),
                "categories": int(sel["label"].nunique()),
                "shards": names,
                "shard_samples": [len(rows) for rows in shards],
            }
    repacker.index.close()
    with atomic_path(out / "index.csv") as tmp:
        pd.DataFrame(repacker.index_rows, columns=list(INDEX_COLUMNS)).to_csv(tmp, index=False)
    return splits


def _recipe_record(cfg: SplitConfig, sources: list[RawSource]) -> dict:
    """The manifest's recipe: the split settings that shape the split, and each source's extract recipe."""
    extract_recipes = [s.recipe for s in sources]
    split_recipe = {k: v for k, v in config_to_dict(cfg).items() if k not in _NOT_RECIPE}
    return {
        "split": split_recipe,
        "extract": extract_recipes,
        "recipe_hash": recipe_hash({"split": split_recipe, "extract": extract_recipes}),
    }


def run_split(cfg: SplitConfig) -> SplitSummary:
    """Split the raw shards of `cfg.src` into `cfg.out` (see the module docstring); returns the summary."""
    t0 = time.monotonic()
    if not cfg.src:
        raise ConfigError("no --src given: the raw extraction output(s) to split")
    if cfg.out is None:
        raise ConfigError("no --out given: the folder to write the split to")
    out = Path(cfg.out)
    warnings: list[str] = []
    sources, mel_cfg, df = _read_sources(cfg)
    id_cats, ood_cats, label_ids = _choose_categories(df, cfg, warnings)
    excluded = _assign_targets(df, cfg, id_cats, ood_cats)
    plans = _plan_splits(df, cfg, warnings)

    _prepare_out(out, cfg.overwrite)
    stats = _MelStats(int(mel_cfg["n_mels"]))
    splits = _write_splits(out, df, plans, _Repacker(out, df.to_dict("records"), label_ids, stats))
    if stats.samples == 0:
        warnings.append("train has no audio: mel_mean 0 / mel_std 1 written with samples = 0")
    manifest = {
        "format_version": FORMAT_VERSION,
        "recipe": _recipe_record(cfg, sources),
        "seed": cfg.seed,
        "source_shards": sorted(str(Path(s.root) / sh) for s in sources for sh in s.shards),
        "id_categories": id_cats,
        "ood_categories": ood_cats,
        "label_ids": label_ids,
        "splits": splits,
        "audio_stats": stats.result(),
        "mel_config": mel_cfg,
        "excluded": dict(sorted(excluded.items())),
        "shard_plan": {"ranks": cfg.ranks, "workers": cfg.workers, "min_shards": cfg.min_shards},
        "warnings": warnings,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(out / "manifest.json", manifest)
    return SplitSummary(
        out=out,
        manifest=out / "manifest.json",
        splits=splits,
        id_categories=id_cats,
        ood_categories=ood_cats,
        excluded=dict(excluded),
        audio_samples=stats.samples,
        warnings=warnings,
        seconds=time.monotonic() - t0,
    )


def run_class_lists(cfg: SplitConfig) -> list[Path]:
    """Class-list-only mode: draw the OOD categories from `cfg.class_list` outside `cfg.categories` and
    write the ID and OOD lists into `cfg.out` (no shards); returns the two files written."""
    if cfg.class_list is None or cfg.categories is None or cfg.out is None:
        raise ConfigError("--class-list needs --categories (the ID list) and --out (the lists' folder)")
    if cfg.src:
        raise ConfigError("give either --class-list (category lists only) or --src (split shards)")
    return write_category_lists(
        cfg.class_list, cfg.categories, cfg.out, ood=cfg.ood or 0, seed=cfg.seed, list_name=cfg.list_name
    )
