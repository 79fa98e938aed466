"""Which split each extracted sample goes to: ID and OOD categories, official splits, holdout ids,
one split per video, the OOD cap (the rules are listed in `aiaic.data.split`)."""

from __future__ import annotations

import logging
import random
from collections import Counter

import pandas as pd

from aiaic.data.categories import choose_ood, read_class_file, read_video_ids
from aiaic.data.split_config import SplitConfig
from aiaic.errors import ConfigError, InputError

log = logging.getLogger("aiaic.data.split")

# official split value -> our split, per dataset (others: train/val/test kept as they are)
OFFICIAL_SPLITS = {
    "vggsound": {"train": "train", "test": "val"},
    "ave": {"train": "train", "val": "val", "test": "test"},
}
DEFAULT_OFFICIAL = {"train": "train", "val": "val", "validation": "val", "test": "test"}
DROP = "-"  # assign_rows: a row left out for a reason (not pending a val/train draw)
PRIORITY = {"test": 3, "ood": 2, "val": 1, "train": 0}  # where a video goes when its rows disagree


def _warn(warnings: list[str], msg: str) -> None:
    """Log a warning now, and keep it for the manifest and the summary."""
    log.warning(msg)
    warnings.append(msg)


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


def choose_categories(
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


def assign_targets(df: pd.DataFrame, cfg: SplitConfig, id_cats: list[str], ood_cats: list[str]) -> Counter:
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
