"""How the streaming loader makes batches (`LoaderConfig`), and what a recipe's [loader] table may set."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiaic.config import build_config
from aiaic.data.spectrogram import SpecConfig
from aiaic.errors import ConfigError


@dataclass(frozen=True)
class LoaderConfig:
    """How batches are made. Sizes in pixels; `mask_prob` in [0, 1]."""

    image_size: int = 64  # output H = W (pixels)
    batch_size: int = 16  # samples per batch per rank
    workers: int = 0  # loader worker processes per rank (0 = in the calling process)
    train: bool = True  # train: shuffle, random crop + flip, full batches; eval: centre crop, in order
    seed: int = 0  # base seed of every random choice (>= 0)
    epoch: int = 0  # epoch of the first iteration (`set_epoch` changes it)
    mask_prob: float = 0.0  # probability that a sample's audio_mask is True
    shuffle_buffer: int = 256  # train: samples in the seeded shuffle buffer per worker (0 = off)
    neg_pool: int = 64  # recent audio clips a negative is drawn from (never the sample's own video)
    neg_other_label: bool = False  # prefer negatives of another label (the paper: any other video)
    train_resize: float = 1.0  # train: short side resized to round(image_size * train_resize), then crop
    flip: bool = True  # train: random horizontal flip
    # "crop": train = short side resized (x train_resize) + random crop, eval = short side + centre crop;
    # "resize": the whole frame resized to image_size x image_size, train and eval (DDColor's preparation)
    prepare: Literal["crop", "resize"] = "crop"
    start_method: Literal["spawn", "forkserver"] = "spawn"  # worker start method (never fork)
    prefetch: int = 2  # batches prefetched per worker
    fast_jpeg: bool = True  # train: JPEG decoded at a reduced DCT scale when still >= the needed size
    spectrogram: SpecConfig | None = None  # batches also carry "spec"/"neg_spec" (VGGSound E_a input)

    def __post_init__(self) -> None:
        checks = [
            (self.image_size >= 8, f"image_size must be >= 8, got {self.image_size}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.workers >= 0, f"workers must be >= 0, got {self.workers}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.epoch >= 0, f"epoch must be >= 0, got {self.epoch}"),
            (0.0 <= self.mask_prob <= 1.0, f"mask_prob must be in [0, 1], got {self.mask_prob}"),
            (self.shuffle_buffer >= 0, f"shuffle_buffer must be >= 0, got {self.shuffle_buffer}"),
            (self.neg_pool >= 1, f"neg_pool must be >= 1, got {self.neg_pool}"),
            (self.train_resize >= 1.0, f"train_resize must be >= 1, got {self.train_resize}"),
            (self.start_method in ("spawn", "forkserver"), f"start_method {self.start_method!r}"),
            (self.prepare in ("crop", "resize"), f"prepare must be 'crop' or 'resize', got {self.prepare!r}"),
            (self.prefetch >= 1, f"prefetch must be >= 1, got {self.prefetch}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"loader: {message}")


# what a recipe's [loader] table may set; sizes, workers, seed, epoch and mask_prob come from [train]
RECIPE_KEYS = (
    "shuffle_buffer",
    "neg_pool",
    "neg_other_label",
    "train_resize",
    "flip",
    "prepare",
    "start_method",
    "prefetch",
    "fast_jpeg",
)


def loader_config_from_recipe(section: Mapping[str, Any]) -> LoaderConfig:
    """LoaderConfig defaults with the recipe's [loader] table applied; ConfigError for another key."""
    other = sorted(set(section) - set(RECIPE_KEYS))
    if other:
        raise ConfigError(
            f"[loader] cannot set {other} (set by [train] or the stage); it sets {list(RECIPE_KEYS)}"
        )
    return build_config(LoaderConfig, section)
