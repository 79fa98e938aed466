"""Streaming loaders: WebDataset shards -> batches of Lab images, normalised log-mels and negatives.

A split directory (`aiaic-data split --out`, `SPLIT/manifest.json`) or shard URL patterns are read as a
stream assembled from small, named, picklable stages (`aiaic.data.loader_stages`, after open_clip's
`get_wds_dataset`)::

    ShardStage     shards shuffled with (seed, epoch), the same order on every rank (train only;
                   eval keeps the manifest order), then split by rank, then by loader worker;
                   repeated pass after pass, so no worker ever runs dry
    ReadStage      tar -> raw samples (jpg/png/webp, json, cls, mel.npy; pcm.npy only for the spectrogram)
    ShuffleStage   seeded sample shuffle buffer (train only)
    QuotaStage     exactly this worker's share of the epoch (see "Batches per epoch")
    DecodeStage    image: train = resize short side + random crop + horizontal flip, eval = resize
                   short side + centre crop (prepare = "resize": the whole frame resized, train and
                   eval, as DDColor prepares it); mel normalised per band; audio_mask drawn with mask_prob;
                   with `spectrogram`, the VGGSound spectrogram of pcm.npy (aiaic.data.spectrogram)
    NegativeStage  neg_mel (neg_spec): the audio of a recent sample from another video (seeded pool)
    batched        collate: RGB -> CIE Lab (aiaic.lab) -> L_n, ab_n

Batch: "L" float32 [B, 1, H, W] = (L - 50) / 50; "ab" [B, 2, H, W] = ab / 110; "rgb"
[B, 3, H, W] in [0, 1]; "mel" and "neg_mel" float32 [B, 1, 64, 97] normalised with the train mel
statistics (zeros where a sample has no audio); with `LoaderConfig.spectrogram`, also "spec" and
"neg_spec" float32 [B, 1, 257, 1004] (the VGGSound spectrogram, per-clip standardised; zeros without
audio; ~10 ms per sample on one CPU thread); "has_audio", "audio_mask" bool [B]; "label" int64 [B];
"key" and "video_id" list[str].

Batches per epoch (`len(loader)`, equal on every rank):
- train: N = max(1, samples // (world_size * batch_size)) full batches per rank; worker w of W makes
  N // W (+1 for w < N % W) of them, reading its shards pass after pass (a new seeded order each pass)
  until its quota is full, so an unbalanced shard split repeats a few samples but never hangs.
- eval: every sample exactly once over ranks and workers when the data divides evenly. With local
  shards, their sample counts are read from the tar headers: worker w makes ceil(its samples /
  batch_size) batches (the last may be partial), N is the largest rank total, and a rank with fewer
  batches pads with full batches repeated from its own first samples (a warning says so); with a single
  rank nothing is ever repeated or dropped. With remote URLs (no counts) each worker gets the train-style
  quota of ceil(samples / (world_size * batch_size)) batches: a worker with fewer samples repeats its
  first ones, one with more skips its tail; both are logged as warnings.

Determinism: the same (seed, epoch, rank, world_size, workers, config) gives the same batches in the
same order with the same crops, flips, masks and negatives; another epoch reshuffles. Loader workers are
started with 'spawn' (or 'forkserver'), never fork, so a script that builds a loader with workers > 0
must guard its entry point with `if __name__ == "__main__":` (console scripts and `python -m` do);
workers start on the first iteration and stay until `close()`, `set_epoch` reaching them through a
shared value. Images are decoded with PIL and audio never touches torchaudio. Usage::

    source = open_split(Path("data/split"), "train")
    loader = make_loader(source, LoaderConfig(image_size=64, batch_size=16, workers=2, epoch=0),
                         rank=rank, world_size=world_size)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader: ...
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import braceexpand
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from aiaic.config import build_config
from aiaic.data.audio import MelConfig
from aiaic.data.loader_config import LoaderConfig
from aiaic.data.loader_stages import (
    N_MELS,
    DecodeStage,
    EpochBox,
    NegativeStage,
    Plan,
    QuotaStage,
    ReadStage,
    ShardStage,
    ShuffleStage,
    collate,
    worker_init,
)
from aiaic.data.manifest import MANIFEST, read_manifest
from aiaic.data.tars import count_samples
from aiaic.errors import ConfigError, InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSource:
    """Shards of one split and what the loader needs to know about them.

    `mel_mean`/`mel_std`: per-band train statistics of the log-mel (64 floats each).
    `shard_samples`: samples per shard where known (else counted from local tars when needed).
    """

    name: str
    urls: tuple[str, ...]
    samples: int
    mel_mean: tuple[float, ...]
    mel_std: tuple[float, ...]
    shard_samples: tuple[int, ...] | None = None
    label_ids: dict[str, int] = field(default_factory=dict, compare=False)
    mel_config: dict[str, Any] = field(default_factory=dict, compare=False)
    origin: str = ""  # the manifest or pattern it came from (for messages)


def _stats(values: Any, what: str, origin: str, n_mels: int = N_MELS) -> tuple[float, ...]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n_mels, float(arr))
    if arr.shape != (n_mels,) or not np.all(np.isfinite(arr)):
        raise ConfigError(f"{origin}: {what} must be {n_mels} finite floats (or one), got shape {arr.shape}")
    if what == "mel_std" and np.any(arr <= 0):
        raise ConfigError(f"{origin}: mel_std must be > 0 in every band, got min {arr.min()}")
    return tuple(float(v) for v in arr)


def open_split(split_dir: Path, split: str) -> SplitSource:
    """Read `split_dir/manifest.json` and return the shards and stats of `split`."""
    split_dir = Path(split_dir)
    path = split_dir / MANIFEST
    manifest = read_manifest(split_dir)
    entry = manifest.splits.get(split)
    if manifest.audio_stats is None:
        raise InputError(path, "not a valid split manifest: it has no 'audio_stats'")
    if entry is None:
        raise ConfigError(f"{path}: no split {split!r}; it has {sorted(manifest.splits)}")
    missing = [s for s in entry.shards if not (split_dir / s).is_file()]
    if missing:
        raise InputError(
            split_dir / missing[0], f"shard listed in the manifest is missing ({len(missing)} missing)"
        )
    if not entry.shards or entry.samples <= 0:
        raise InputError(path, f"split {split!r} has no samples")
    mel_cfg = mel_config_from(manifest.mel_config, str(path))
    return SplitSource(
        name=split,
        urls=tuple(str(split_dir / s) for s in entry.shards),
        samples=entry.samples,
        mel_mean=_stats(manifest.audio_stats.mel_mean, "mel_mean", str(path), mel_cfg.n_mels),
        mel_std=_stats(manifest.audio_stats.mel_std, "mel_std", str(path), mel_cfg.n_mels),
        shard_samples=entry.shard_samples,
        label_ids=dict(manifest.label_ids),
        mel_config=dict(manifest.mel_config),
        origin=str(path),
    )


def mel_config_from(recorded: dict[str, Any], origin: str) -> MelConfig:
    """The `MelConfig` a manifest or stage config recorded ({} = the defaults); ConfigError if invalid."""
    try:
        return build_config(MelConfig, recorded or {})
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"{origin}: invalid mel_config: {e}") from e


def open_shards(
    patterns: str | Sequence[str],
    *,
    mel_mean: float | Sequence[float],
    mel_std: float | Sequence[float],
    samples: int | None = None,
    name: str = "shards",
) -> SplitSource:
    """A source from shard URL patterns with brace notation (`dir/train-{000000..000007}.tar`).

    Without a manifest the mel statistics must be given (64 per-band floats, or one scalar for all
    bands). `samples` defaults to the count read from the tar headers (local files only).
    """
    pats = [patterns] if isinstance(patterns, str) else list(patterns)
    urls = tuple(u for p in pats for u in braceexpand.braceexpand(p))
    if not urls:
        raise ConfigError(f"no shards in {pats}")
    for u in urls:
        local = _local_path(u)
        if local is not None and not Path(local).is_file():
            raise InputError(u, "shard not found")
    counts = None
    if samples is None:
        counts = shard_sample_counts(urls)
        if counts is None:
            raise ConfigError(f"{pats}: remote shards: give samples= (the total sample count)")
        samples = sum(counts)
    if samples <= 0:
        raise InputError(pats[0], "the shards hold no samples")
    origin = ",".join(pats)
    return SplitSource(
        name=name,
        urls=urls,
        samples=int(samples),
        mel_mean=_stats(mel_mean, "mel_mean", origin),
        mel_std=_stats(mel_std, "mel_std", origin),
        shard_samples=counts,
        origin=origin,
    )


def _local_path(url: str) -> str | None:
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return parsed.path if parsed.scheme == "file" else url
    return None


def shard_sample_counts(urls: Sequence[str]) -> tuple[int, ...] | None:
    """Samples per shard read from the tar headers (local files only; None when any URL is remote)."""
    paths = []
    for url in urls:
        path = _local_path(url)
        if path is None:
            return None
        paths.append(path)
    return tuple(count_samples(path) for path in paths)


def normalize_mel(mel: Any, mean: Any, std: Any) -> torch.Tensor:
    """(mel - mean[band]) / std[band] for log-mel [..., 64, 97]; mean and std [64] (or scalars)."""
    m = torch.as_tensor(mel, dtype=torch.float32)
    mu = torch.as_tensor(mean, dtype=torch.float32, device=m.device)
    sd = torch.as_tensor(std, dtype=torch.float32, device=m.device)
    if mu.ndim == 1:
        if m.ndim < 2 or m.shape[-2] != mu.shape[0]:
            raise ValueError(f"normalize_mel: mel {tuple(m.shape)} has no band axis of {mu.shape[0]} at -2")
        mu, sd = mu.reshape(-1, 1), sd.reshape(-1, 1)
    return (m - mu) / sd


def _split_batches(n: int, workers: int) -> tuple[int, ...]:
    """n batches dealt round-robin to workers (the order a DataLoader reads them in)."""
    return tuple(n // workers + (1 if w < n % workers else 0) for w in range(workers))


def _plan_quotas(
    source: SplitSource, cfg: LoaderConfig, world_size: int, slots: int
) -> tuple[tuple[int, ...], ...]:
    b = cfg.batch_size
    if cfg.train:
        n = max(1, source.samples // (world_size * b))
        return tuple(_split_batches(n, slots) for _ in range(world_size))
    counts = source.shard_samples or shard_sample_counts(source.urls)
    if counts is None:  # remote shards: uniform quota, documented remainder behaviour
        n = max(1, math.ceil(source.samples / (world_size * b)))
        if n < slots:
            log.warning(
                "%d batches per rank for %d workers: the shards of idle workers are skipped", n, slots
            )
        return tuple(_split_batches(n, slots) for _ in range(world_size))
    if sum(counts) != source.samples:
        raise InputError(
            source.origin,
            f"split {source.name!r} lists {source.samples} samples but its shards hold {sum(counts)}",
        )
    by_url = dict(zip(source.urls, counts, strict=True))
    probe = Plan(source.urls, 0, world_size, slots, cfg.seed, False, b, (), EpochBox(0))
    samples = [
        [sum(by_url[u] for u in probe.shards_of(0, r, w)) for w in range(slots)] for r in range(world_size)
    ]
    quotas = [[math.ceil(c / b) for c in row] for row in samples]
    n = max(sum(row) for row in quotas)
    for r, row in enumerate(quotas):
        pad = n - sum(row)
        live = [w for w in range(slots) if samples[r][w] > 0]
        if pad and not live:
            raise ConfigError(
                f"{source.origin}: rank {r} of {world_size} gets no samples (its shards are empty)"
            )
        if pad:
            log.warning("rank %d pads %d batch(es) with repeated samples to match the other ranks", r, pad)
        for _ in range(pad):
            w = min(live, key=lambda k: (row[k], k))
            row[w] += 1
    return tuple(tuple(row) for row in quotas)


class StreamLoader:
    """Iterable of batch dicts (Batch, above); `len()` = batches per epoch on this rank."""

    def __init__(self, source: SplitSource, cfg: LoaderConfig, rank: int, world_size: int):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"loader: rank {rank} is not in [0, world_size={world_size})")
        slots = max(1, cfg.workers)
        if len(source.urls) < world_size * slots:
            raise ConfigError(
                f"{source.origin}: {len(source.urls)} shard(s) for {world_size} rank(s) x {slots} loader "
                f"worker(s): every worker needs a shard; use fewer workers or re-split into >= "
                f"{world_size * slots} shards (4x that is better)"
            )
        self.source, self.cfg, self.rank, self.world_size = source, cfg, rank, world_size
        ctx = mp.get_context(cfg.start_method) if cfg.workers > 0 else None
        epoch = ctx.Value("i", cfg.epoch) if ctx is not None else EpochBox(cfg.epoch)
        quotas = _plan_quotas(source, cfg, world_size, slots)
        self.plan = Plan(
            source.urls, rank, world_size, slots, cfg.seed, cfg.train, cfg.batch_size, quotas, epoch
        )
        self.batches = sum(quotas[rank])
        mean = np.asarray(source.mel_mean, dtype=np.float32).reshape(-1, 1)
        std = np.asarray(source.mel_std, dtype=np.float32).reshape(-1, 1)
        mel_cfg = mel_config_from(source.mel_config, source.origin)
        if cfg.spectrogram is not None and cfg.spectrogram.sample_rate != mel_cfg.sample_rate:
            raise ConfigError(
                f"{source.origin}: the shards' PCM is {mel_cfg.sample_rate} Hz, the VGGSound "
                f"spectrogram needs {cfg.spectrogram.sample_rate} Hz (extract at that rate)"
            )
        self.dataset = wds.DataPipeline(
            ShardStage(self.plan),
            ReadStage(with_pcm=cfg.spectrogram is not None),
            ShuffleStage(self.plan, cfg.shuffle_buffer if cfg.train else 0),
            QuotaStage(self.plan),
            DecodeStage(self.plan, cfg, mean, std, (len(source.mel_mean), mel_cfg.frames)),
            NegativeStage(self.plan, cfg.neg_pool, cfg.neg_other_label),
            wds.batched(cfg.batch_size, collation_fn=collate, partial=True),
        )
        self._ctx = ctx
        self._loader: DataLoader | None = None

    @property
    def epoch(self) -> int:
        return int(self.plan.epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the next iteration (seeds shard order, shuffles, crops, masks)."""
        if epoch < 0:
            raise ConfigError(f"loader: epoch must be >= 0, got {epoch}")
        self.plan.epoch.value = int(epoch)

    def __len__(self) -> int:
        return self.batches

    def _batches(self) -> Iterator[dict[str, Any]]:
        if self.cfg.workers == 0:
            return iter(self.dataset)
        if self._loader is None:  # workers start on first use and stay until close()
            self._loader = DataLoader(
                self.dataset,
                batch_size=None,
                num_workers=self.cfg.workers,
                multiprocessing_context=self._ctx,
                persistent_workers=True,
                prefetch_factor=self.cfg.prefetch,
                worker_init_fn=worker_init,
            )
        return iter(self._loader)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        count = 0
        for batch in self._batches():
            count += 1
            yield batch
        if count != self.batches:
            raise RuntimeError(f"loader made {count} batches on rank {self.rank}, planned {self.batches}")

    def close(self) -> None:
        """Stop the worker processes (also done at garbage collection); iterating again restarts them."""
        if self._loader is not None:
            it = getattr(self._loader, "_iterator", None)
            if it is not None and hasattr(it, "_shutdown_workers"):
                it._shutdown_workers()
            self._loader = None

    def __enter__(self) -> StreamLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_loader(
    source: SplitSource, cfg: LoaderConfig, *, rank: int = 0, world_size: int = 1
) -> StreamLoader:
    """The loader of `source` for one rank; `len()` is the same on every rank (see the module docstring)."""
    return StreamLoader(source, cfg, rank, world_size)
