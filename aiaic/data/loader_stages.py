"""The stages of the streaming loader (`aiaic.data.loader`): small, named, picklable callables.

Each stage reads the shared `Plan` (shards, rank, world size, worker slots, per-worker quotas and the
epoch, a multiprocessing Value the spawn-started workers share) and seeds its own RNG from (seed,
epoch, rank, worker, stage tag), so a stream is a pure function of those::

    ShardStage     {"url", "pass"}: this worker's shards, pass after pass
    ReadStage      tar -> raw samples (bytes per field), tagged with the pass
    ShuffleStage   seeded shuffle buffer that never mixes two passes (train)
    QuotaStage     exactly this worker's share of the epoch
    DecodeStage    image crop (+ flip), normalised mel, VGGSound spectrogram (when asked), audio_mask
    NegativeStage  neg_mel (and neg_spec) from another video
    collate        numpy items -> the batch dict (RGB -> CIE Lab)
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import get_worker_info

from aiaic.data.loader_config import LoaderConfig
from aiaic.data.sample import IMAGE_FORMATS, load_npy
from aiaic.data.spectrogram import vggsound_spectrogram
from aiaic.data.tars import iter_samples
from aiaic.errors import InputError
from aiaic.lab import normalize_ab, normalize_l, rgb_to_lab

log = logging.getLogger("aiaic.data.loader")

N_MELS = 64
MEL_SHAPE = (64, 97)  # bands x frames of one second (MelConfig defaults; a split's own mel_config rules)
_KEPT_FIELDS = frozenset({"json", "cls", "mel.npy", *IMAGE_FORMATS})
_KEPT_WITH_PCM = _KEPT_FIELDS | {"pcm.npy"}
# stage tags that make the RNG streams of the stages independent
_TAG_SHARDS, _TAG_SHUFFLE, _TAG_DECODE, _TAG_NEG = 11, 12, 13, 14


@dataclass
class Plan:
    """Plain, picklable data every stage reads: which shards and how many batches per worker."""

    urls: tuple[str, ...]
    rank: int
    world_size: int
    workers: int  # worker slots per rank (>= 1)
    seed: int
    train: bool
    batch_size: int
    quotas: tuple[tuple[int, ...], ...]  # [rank][worker] -> batches this epoch
    epoch: Any  # multiprocessing Value('i') (shared with workers) or EpochBox

    def context(self) -> tuple[int, int]:
        """(epoch, worker id) of the running iteration."""
        info = get_worker_info()
        worker, n = (0, 1) if info is None else (info.id, info.num_workers)
        if n != self.workers:
            raise RuntimeError(f"loader planned for {self.workers} workers but runs with {n}")
        return int(self.epoch.value), worker

    def rng(self, tag: int, *parts: int) -> np.random.Generator:
        epoch, worker = self.context()
        return np.random.default_rng([self.seed, epoch, self.rank, worker, tag, *parts])

    def shards_of(self, epoch: int, rank: int, worker: int) -> list[str]:
        """The shards of (rank, worker) in this epoch: one seeded order for all ranks, then split."""
        order = list(self.urls)
        if self.train:
            perm = np.random.default_rng([self.seed, epoch, _TAG_SHARDS]).permutation(len(order))
            order = [order[i] for i in perm]
        return order[rank :: self.world_size][worker :: self.workers]


@dataclass
class EpochBox:
    value: int


def worker_init(_: int) -> None:
    torch.set_num_threads(1)


@dataclass
class ShardStage:
    """Yields {"url", "pass"} for this worker's shards, pass after pass (new seeded order each pass)."""

    plan: Plan

    def __call__(self) -> Iterator[dict[str, Any]]:
        epoch, worker = self.plan.context()
        mine = self.plan.shards_of(epoch, self.plan.rank, worker)
        if self.plan.quotas[self.plan.rank][worker] == 0 or not mine:
            return
        rng = self.plan.rng(_TAG_SHARDS)
        n_pass = 0
        while True:
            order = (
                mine if n_pass == 0 or not self.plan.train else [mine[i] for i in rng.permutation(len(mine))]
            )
            for url in order:
                yield {"url": url, "pass": n_pass}
            n_pass += 1


def _read_npy(raw: dict[str, Any], field: str, url: str, key: str) -> np.ndarray:
    try:
        return load_npy(raw[field])
    except (ValueError, OSError, EOFError) as e:
        raise InputError(url, f"sample {key!r}: cannot read {field}: {e}") from e


@dataclass
class ReadStage:
    """Opens each shard and yields raw samples (bytes per field) tagged with `__pass__`; `pcm.npy` is
    read only with `with_pcm` (the VGGSound spectrogram is computed from it)."""

    with_pcm: bool = False

    def __call__(self, shards: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        per_pass = 0
        current = 0
        for shard in shards:
            if shard["pass"] != current:
                if per_pass == 0:
                    raise InputError(shard["url"], "this worker's shards hold no samples")
                current, per_pass = shard["pass"], 0
            fields = _KEPT_WITH_PCM if self.with_pcm else _KEPT_FIELDS
            for sample in iter_samples(shard["url"], fields):
                sample["__pass__"] = current
                per_pass += 1
                yield sample


@dataclass
class ShuffleStage:
    """Seeded shuffle buffer of `size` samples (0 = pass through) that never mixes two passes.

    The buffer is emptied (in random order) when the next pass over the shards begins, so a worker
    repeats a sample only after it has emitted every sample of its shards.
    """

    plan: Plan
    size: int

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        if self.size <= 1:
            yield from src
            return
        rng = self.plan.rng(_TAG_SHUFFLE)
        buf: list[dict[str, Any]] = []
        for sample in src:
            if buf and sample["__pass__"] != buf[0]["__pass__"]:
                for i in rng.permutation(len(buf)):
                    yield buf[i]
                buf = []
            if len(buf) < self.size:
                buf.append(sample)
                continue
            i = int(rng.integers(len(buf)))
            buf[i], sample = sample, buf[i]
            yield sample
        for i in rng.permutation(len(buf)):
            yield buf[i]


@dataclass
class QuotaStage:
    """Passes exactly this worker's share of the epoch (see the module docstring)."""

    plan: Plan

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        epoch, worker = self.plan.context()
        batches = self.plan.quotas[self.plan.rank][worker]
        cap = batches * self.plan.batch_size
        floor = cap - self.plan.batch_size + 1  # eval: a partial last batch is fine
        count, warned = 0, False
        where = f"rank {self.plan.rank} worker {worker}"
        for sample in src:
            if count >= cap:
                if not self.plan.train and sample["__pass__"] == 0:
                    log.warning("%s: more samples than its quota of %d; the rest is skipped", where, cap)
                return
            if not self.plan.train and sample["__pass__"] > 0:
                if count >= floor:
                    return
                if not warned:
                    log.warning(
                        "%s: %d samples for %d batches; repeating its first ones", where, count, batches
                    )
                    warned = True
            yield sample
            count += 1


def _resize_short(im: Image.Image, short: int) -> Image.Image:
    w, h = im.size
    if min(w, h) == short:
        return im
    scale = short / min(w, h)
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    return im.resize(size, Image.Resampling.BICUBIC)


@dataclass
class DecodeStage:
    """Raw sample -> numpy item: image crop [3, S, S] uint8, normalised mel [64, 97] and, where
    `cfg.spectrogram` is set, "spec" [bins, frames] (the VGGSound spectrogram of pcm.npy; zeros
    without audio)."""

    plan: Plan
    cfg: LoaderConfig
    mel_mean: np.ndarray  # [n_mels, 1]
    mel_std: np.ndarray  # [n_mels, 1]
    mel_shape: tuple[int, int] = MEL_SHAPE  # [n_mels, frames] of the split's mel_config

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        rng = self.plan.rng(_TAG_DECODE)
        for raw in src:
            yield self.decode(raw, rng)

    def decode(self, raw: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        cfg, key, url = self.cfg, raw["__key__"], raw.get("__url__", "?")
        field_name = next((f for f in IMAGE_FORMATS if f in raw), None)
        if field_name is None or "json" not in raw or "cls" not in raw:
            raise InputError(url, f"sample {key!r} lacks an image, json or cls field")
        try:
            meta = json.loads(raw["json"])
            label, video_id = int(raw["cls"]), str(meta["video_id"])
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
            raise InputError(
                url, f"sample {key!r}: bad json/cls (needs video_id and an integer cls): {e}"
            ) from e
        s = cfg.image_size
        # random draws happen in the same order for every sample, so the stream stays aligned
        crop_u, crop_v, flip_u, mask_u = rng.random(4)
        try:
            with Image.open(io.BytesIO(raw[field_name])) as encoded:
                short = round(s * cfg.train_resize) if cfg.train and cfg.prepare == "crop" else s
                if cfg.train and cfg.fast_jpeg and encoded.format == "JPEG":
                    w, h = encoded.size  # decode at 1/2, 1/4 or 1/8 scale where that still covers `short`
                    encoded.draft("RGB", (math.ceil(w * short / min(w, h)), math.ceil(h * short / min(w, h))))
                im = encoded.convert("RGB")
                if cfg.prepare == "resize":  # the whole frame, aspect not kept
                    im = im if im.size == (s, s) else im.resize((s, s), Image.Resampling.BICUBIC)
                    left = top = 0
                elif cfg.train:
                    im = _resize_short(im, short)
                    left, top = int(crop_u * (im.width - s + 1)), int(crop_v * (im.height - s + 1))
                else:
                    im = _resize_short(im, s)
                    left, top = (im.width - s) // 2, (im.height - s) // 2
                arr = np.asarray(im.crop((left, top, left + s, top + s)), dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise InputError(url, f"sample {key!r}: cannot decode the image: {e}") from e
        if cfg.train and cfg.flip and flip_u < 0.5:
            arr = arr[:, ::-1]
        has_audio = "mel.npy" in raw
        if bool(meta.get("has_audio", has_audio)) != has_audio:
            raise InputError(
                url, f"sample {key!r}: json has_audio={meta.get('has_audio')} but mel.npy present={has_audio}"
            )
        if has_audio:
            mel = _read_npy(raw, "mel.npy", url, key).astype(np.float32)
            if mel.shape != self.mel_shape:
                raise InputError(url, f"sample {key!r}: mel shape {mel.shape}, expected {self.mel_shape}")
            mel = ((mel - self.mel_mean) / self.mel_std).astype(np.float32)
        else:
            mel = np.zeros(self.mel_shape, dtype=np.float32)
        item = {
            "key": key,
            "video_id": video_id,
            "rgb": np.ascontiguousarray(arr.transpose(2, 0, 1)),
            "mel": mel,
            "has_audio": has_audio,
            "audio_mask": bool(mask_u < cfg.mask_prob),
            "label": label,
        }
        if cfg.spectrogram is not None:
            item["spec"] = self._spectrogram(raw, has_audio, url, key)
        return item

    def _spectrogram(self, raw: dict[str, Any], has_audio: bool, url: str, key: str) -> np.ndarray:
        spec_cfg = self.cfg.spectrogram
        assert spec_cfg is not None
        if not has_audio:
            return np.zeros(spec_cfg.shape, dtype=np.float32)
        if "pcm.npy" not in raw:
            raise InputError(
                url,
                f"sample {key!r} has no pcm.npy, which the VGGSound spectrogram is "
                "computed from (shards extracted by aiaic-data extract hold it)",
            )
        pcm = _read_npy(raw, "pcm.npy", url, key)
        if pcm.ndim != 1 or pcm.size < spec_cfg.nperseg:
            raise InputError(
                url,
                f"sample {key!r}: pcm.npy has shape {pcm.shape}, expected [samples] "
                f"with at least {spec_cfg.nperseg}",
            )
        with _one_thread():
            spec = vggsound_spectrogram(torch.from_numpy(pcm.astype(np.float32)), spec_cfg)
        return spec[0, 0].numpy()


@dataclass
class NegativeStage:
    """Adds `neg_mel` (and `neg_spec` where items carry "spec"): the audio of a recent sample from
    another video, chosen with a seeded RNG.

    The pool holds the last `pool` audio clips; the first samples of a stream wait until the pool is
    full (or the stream ends), so they draw from the samples after them too. With `other_label`, a
    clip of another label is preferred where the pool holds one (another video of the same class may
    sound alike).
    """

    plan: Plan
    pool: int
    other_label: bool = False

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        rng = self.plan.rng(_TAG_NEG)
        pool: deque[tuple[str, int, dict[str, np.ndarray]]] = deque(maxlen=self.pool)
        pending: deque[dict[str, Any]] = deque()
        for item in src:
            pending.append(item)
            if item["has_audio"]:
                pool.append(
                    (item["video_id"], item["label"], {k: item[k] for k in ("mel", "spec") if k in item})
                )
            while pending and (len(pool) == self.pool or len(pending) > self.pool):
                yield self._with_negative(pending.popleft(), pool, rng)
        while pending:
            yield self._with_negative(pending.popleft(), pool, rng)

    def _with_negative(self, item: dict[str, Any], pool: deque, rng: np.random.Generator) -> dict[str, Any]:
        others = [(label, audio) for vid, label, audio in pool if vid != item["video_id"]]
        if self.other_label and any(label != item["label"] for label, _ in others):
            others = [(label, audio) for label, audio in others if label != item["label"]]
        if not others:
            raise InputError(
                item["key"],
                f"no audio from another video among the last {len(pool)} clips of this loader worker "
                "(each worker needs shards holding several videos; use fewer workers)",
            )
        for k, v in others[int(rng.integers(len(others)))][1].items():
            item["neg_" + k] = v
        return item


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run small tensor ops on one intra-op thread: on a busy CPU a thread pool spins for nothing
    (a [16, 3, 64, 64] Lab conversion took 200 ms on 2 threads and 3 ms on one)."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Numpy items -> the batch dict of `aiaic.data.loader` (RGB -> Lab in float32, on one thread)."""
    with _one_thread():
        rgb = torch.from_numpy(np.stack([it["rgb"] for it in items])).float().div_(255.0)
        lab = rgb_to_lab(rgb)
        L, ab = normalize_l(lab[:, :1]).contiguous(), normalize_ab(lab[:, 1:]).contiguous()
    batch = {
        "L": L,
        "ab": ab,
        "rgb": rgb,
        "mel": torch.from_numpy(np.stack([it["mel"] for it in items]))[:, None],
        "neg_mel": torch.from_numpy(np.stack([it["neg_mel"] for it in items]))[:, None],
        "has_audio": torch.tensor([it["has_audio"] for it in items], dtype=torch.bool),
        "audio_mask": torch.tensor([it["audio_mask"] for it in items], dtype=torch.bool),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.int64),
        "key": [it["key"] for it in items],
        "video_id": [it["video_id"] for it in items],
    }
    if "spec" in items[0]:
        batch["spec"] = torch.from_numpy(np.stack([it["spec"] for it in items]))[:, None]
        batch["neg_spec"] = torch.from_numpy(np.stack([it["neg_spec"] for it in items]))[:, None]
    return batch
