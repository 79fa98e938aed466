"""The settings of `aiaic-data split` (recipe table [split]); see `aiaic.data.split` for what they do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiaic.errors import ConfigError


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
