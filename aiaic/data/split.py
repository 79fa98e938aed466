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

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from aiaic.config import config_to_dict, recipe_hash
from aiaic.data.categories import write_category_lists
from aiaic.data.manifest import Manifest, SplitEntry, write_manifest
from aiaic.data.raw import RawSource, load_raw, mel_config_of
from aiaic.data.split_assign import assign_targets, choose_categories
from aiaic.data.split_config import SplitConfig
from aiaic.data.split_repack import MelStats, Repacker, plan_splits, prepare_out, write_splits
from aiaic.errors import ConfigError, InputError

log = logging.getLogger(__name__)

__all__ = ["SplitConfig", "SplitSummary", "run_class_lists", "run_split"]

# settings that do not change what a split holds (left out of the manifest's recipe)
_NOT_RECIPE = ("out", "overwrite", "class_list", "list_name")


@dataclass
class SplitSummary:
    """What `run_split` wrote: per-split counts, the categories, and every warning in plain words."""

    out: Path
    manifest: Path
    splits: dict[str, SplitEntry]
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
                f"  {name:5s}: {s.samples} samples, {s.videos} videos, {s.categories} categories, "
                f"{len(s.shards)} shards"
            )
        for reason, n in sorted(self.excluded.items()):
            out.append(f"  left out: {n} samples ({reason})")
        out.append(f"audio mel mean/std from {self.audio_samples} train samples")
        for w in self.warnings:
            out.append(
                f"warning: {w}" if len(w) <= 400 else f"warning: {w[:400]}... (in full: manifest.json)"
            )
        return out


def _read_sources(cfg: SplitConfig) -> tuple[list[RawSource], dict, pd.DataFrame]:
    """The raw extraction outputs, their common mel configuration, and all their index rows."""
    sources = [load_raw(Path(s)) for s in cfg.src]
    mel_cfgs = [mel_config_of(s.recipe, s.root / "recipe.json") for s in sources]
    for s, m in zip(sources[1:], mel_cfgs[1:], strict=True):
        if m != mel_cfgs[0]:
            raise InputError(s.root / "recipe.json", f"mel configuration differs from {sources[0].root}")
    return sources, mel_cfgs[0], pd.concat([s.index for s in sources], ignore_index=True)


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
    id_cats, ood_cats, label_ids = choose_categories(df, cfg, warnings)
    excluded = assign_targets(df, cfg, id_cats, ood_cats)
    plans = plan_splits(df, cfg, warnings)

    prepare_out(out, cfg.overwrite)
    stats = MelStats(int(mel_cfg["n_mels"]))
    splits = write_splits(out, df, plans, Repacker(out, df.to_dict("records"), label_ids, stats))
    if stats.samples == 0:
        warnings.append("train has no audio: mel_mean 0 / mel_std 1 written with samples = 0")
    manifest = Manifest(
        recipe=_recipe_record(cfg, sources),
        seed=cfg.seed,
        source_shards=tuple(sorted(str(Path(s.root) / sh) for s in sources for sh in s.shards)),
        id_categories=tuple(id_cats),
        ood_categories=tuple(ood_cats),
        label_ids=label_ids,
        splits=splits,
        audio_stats=stats.result(),
        mel_config=mel_cfg,
        excluded=dict(sorted(excluded.items())),
        shard_plan={"ranks": cfg.ranks, "workers": cfg.workers, "min_shards": cfg.min_shards},
        warnings=tuple(warnings),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    return SplitSummary(
        out=out,
        manifest=write_manifest(out, manifest),
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
