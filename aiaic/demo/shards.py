"""Tiny shard folders with known content, for tests and benchmarks: split directories and raw extractions.

    from aiaic.demo.shards import write_split_dir, read_split
    root = write_split_dir(tmp_path / "split", classes=2, videos_per_class=3, seconds=4, size=64,
                           shards_per_split=4)
    source = open_split(root, "train")

Every sample is one second of one video. Its frame (RGB uint8, `size` high and `round(size * aspect)`
wide) is the class colour `CLASS_RGB[c]` times a left-to-right brightness ramp, plus seeded noise that
makes every frame unique; its audio is a tone (plus faint noise) whose frequency is unique per (video,
second), so a mel identifies its sample. `silent_videos` videos have no audio (no mel.npy/pcm.npy,
has_audio false).
`make_raw(root, [raw_video(...), ...])` writes a raw extraction output instead (the input of
`aiaic-data split`): `shards` tars, their stats files, index.csv and recipe.json, one sample per second
of each video, with a known mel per sample (`sample_mel`).

Shards are written with `aiaic.data.sample.encode_sample` and `webdataset.TarWriter`, samples shuffled
with `seed` and dealt round-robin, so shard sizes differ by at most one. The manifest's audio_stats are
the per-band mean/std of the train mels over samples and frames.
"""

from __future__ import annotations

import csv
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds

from aiaic.data.audio import MelConfig, log_mel
from aiaic.data.manifest import AudioStats, Manifest, SplitEntry, read_manifest, write_manifest
from aiaic.data.sample import DecodedSample, decode_sample, encode_sample, sample_key
from aiaic.data.tars import iter_samples
from aiaic.data.writer import INDEX_COLUMNS
from aiaic.io import atomic_open, write_json_atomic

CLASS_NAMES = ("red", "green", "blue", "yellow", "cyan", "magenta", "orange", "purple")
CLASS_RGB = (
    (0.9, 0.15, 0.1),
    (0.15, 0.8, 0.2),
    (0.15, 0.25, 0.9),
    (0.9, 0.85, 0.1),
    (0.1, 0.85, 0.85),
    (0.85, 0.1, 0.8),
    (0.95, 0.55, 0.1),
    (0.5, 0.15, 0.7),
)
SAMPLE_RATE = 16000


def video_id(c: int, v: int) -> str:
    """Ids of odd videos begin with '-' (as some YouTube ids do)."""
    return f"{'-' if v % 2 else ''}{CLASS_NAMES[c]}{v:02d}"


def frame(c: int, v: int, t: int, size: int, aspect: float, seed: int) -> np.ndarray:
    """The RGB uint8 frame [size, round(size*aspect), 3] of second t of video v of class c."""
    w = round(size * aspect)
    ramp = np.linspace(0.35, 1.0, w)[None, :, None]
    base = np.asarray(CLASS_RGB[c])[None, None, :] * ramp * 255.0
    noise = np.random.default_rng([seed, c, v, t]).normal(0.0, 12.0, (size, w, 3))
    return np.clip(np.round(base + noise), 0, 255).astype(np.uint8)


def tone(c: int, v: int, t: int, videos_per_class: int) -> np.ndarray:
    """One second of 16 kHz mono: a sine unique to (class, video, second) plus faint seeded noise."""
    index = (c * videos_per_class + v) * 16 + t
    f = 200.0 * 2.0 ** (index / 40.0)
    n = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    noise = np.random.default_rng([c, v, t]).normal(0.0, 0.01, SAMPLE_RATE)
    return (0.3 * np.sin(2 * np.pi * f * n) + noise).astype(np.float32)


def _members(classes: int, videos_per_class: int, val_videos_per_class: int, ood_classes: int
             ) -> dict[str, list[tuple[int, int]]]:  # fmt: skip
    """(class, video) pairs per split: the last `ood_classes` classes -> ood, the last videos -> val."""
    members: dict[str, list[tuple[int, int]]] = {"train": [], "val": [], "ood": []}
    for c in range(classes):
        for v in range(videos_per_class):
            if c >= classes - ood_classes:
                members["ood"].append((c, v))
            elif v >= videos_per_class - val_videos_per_class:
                members["val"].append((c, v))
            else:
                members["train"].append((c, v))
    return members


@dataclass(frozen=True)
class _SampleMaker:
    """Encodes the sample of second t of video v of class c (see the module docstring)."""

    videos_per_class: int
    seconds: int
    size: int
    aspect: float
    image_format: str
    with_pcm: bool
    seed: int
    mel_cfg: MelConfig = MelConfig()

    def __call__(self, c: int, v: int, t: int, split: str, has_audio: bool
                 ) -> tuple[dict[str, Any], np.ndarray | None]:  # fmt: skip
        """(the encoded sample, its float32 log-mel [64, 97] or None without audio)."""
        vid = video_id(c, v)
        pcm = tone(c, v, t, self.videos_per_class) if has_audio else None
        mel = log_mel(pcm, self.mel_cfg) if pcm is not None else None
        meta = {
            "dataset": "fixture", "video_id": vid, "source": f"{CLASS_NAMES[c]}/{vid}.mp4",
            "label": CLASS_NAMES[c], "label_id": c, "segment": t, "frame_time": t + 0.5,
            "audio_start": float(t), "audio_end": float(t + 1), "in_event": True,
            "has_audio": has_audio, "fps": 10.0, "width": round(self.size * self.aspect), "height": self.size,
            "sample_rate": SAMPLE_RATE, "channels": 1, "duration": float(self.seconds),
            "split": split, "recipe_hash": "fixture",
        }  # fmt: skip
        image = frame(c, v, t, self.size, self.aspect, self.seed)
        pcm_stored = pcm if self.with_pcm else None
        sample = encode_sample(sample_key(vid, 0, t), image, meta, mel=mel, pcm=pcm_stored,
                               image_format=self.image_format)  # fmt: skip
        return sample, mel


def _audio_stats(train_mels: list[np.ndarray]) -> AudioStats:
    """The manifest's audio_stats: per-band mean/std of the train mels over samples and frames."""
    stack = np.stack(train_mels)  # [N, 64, 97]
    return AudioStats(
        mel_mean=tuple(float(x) for x in stack.mean(axis=(0, 2))),
        mel_std=tuple(float(x) for x in stack.std(axis=(0, 2))),
        mel_mean_scalar=float(stack.mean()),
        mel_std_scalar=float(stack.std()),
        samples=len(train_mels),
    )


def write_split_dir(
    root: Path,
    *,
    videos_per_class: int = 3,
    classes: int = 2,
    seconds: int = 4,
    size: int = 64,
    shards_per_split: int | dict[str, int] = 4,
    val_videos_per_class: int = 1,
    ood_classes: int = 0,
    silent_videos: int = 0,
    aspect: float = 1.25,
    image_format: str = "png",
    with_pcm: bool = False,
    seed: int = 0,
) -> Path:
    """Write `root/{train,val[,ood]}/*.tar` and `root/manifest.json`; return root.

    Per class the last `val_videos_per_class` videos go to val, the others to train; the last
    `ood_classes` classes go entirely to "ood". The first `silent_videos` videos of every split have
    no audio. Splits: train (and val, ood when non-empty).
    """
    root = Path(root)
    make = _SampleMaker(videos_per_class, seconds, size, aspect, image_format, with_pcm, seed)
    id_classes = classes - ood_classes
    manifest_splits: dict[str, SplitEntry] = {}
    train_mels = []
    for split, videos in _members(classes, videos_per_class, val_videos_per_class, ood_classes).items():
        if not videos:
            continue
        silent = set(videos[:silent_videos])
        samples = []
        for c, v in videos:
            for t in range(seconds):
                sample, mel = make(c, v, t, split, (c, v) not in silent)
                if mel is not None and split == "train":
                    train_mels.append(mel.astype(np.float16).astype(np.float64))
                samples.append(sample)
        n_shards = shards_per_split[split] if isinstance(shards_per_split, dict) else shards_per_split
        order = np.random.default_rng([seed, len(split)]).permutation(len(samples))
        (root / split).mkdir(parents=True, exist_ok=True)
        names = [f"{split}/{split}-{i:06d}.tar" for i in range(n_shards)]
        for i, name in enumerate(names):
            with wds.TarWriter(str(root / name)) as sink:
                for j in order[i::n_shards]:
                    sink.write(samples[j])
        categories = len({c for c, _ in videos})
        manifest_splits[split] = SplitEntry(samples=len(samples), videos=len(videos), categories=categories,
                                            shards=tuple(names))  # fmt: skip
    manifest = Manifest(
        recipe={"fixture": True},
        seed=seed,
        id_categories=CLASS_NAMES[:id_classes],
        ood_categories=CLASS_NAMES[id_classes:classes],
        label_ids={CLASS_NAMES[c]: c for c in range(classes)},
        splits=manifest_splits,
        audio_stats=_audio_stats(train_mels),
        mel_config=make.mel_cfg.to_dict(),
        created="fixture",
    )
    write_manifest(root, manifest)
    return root


def raw_video(dataset: str, vid: str, label: str, split: str | None, seconds: int = 1, start: int = 0,
          audio: bool = True) -> dict:  # fmt: skip
    """One video of a raw extraction for `make_raw`: `seconds` one-second samples from `start` (s)."""
    return dict(
        dataset=dataset, video_id=vid, label=label, split=split, seconds=seconds, start=start, audio=audio
    )


def sample_mel(key: str, label: str) -> np.ndarray:
    """A known mel per sample: seeded noise around a per-label level (float16-exact values)."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    level = (zlib.crc32(label.encode()) % 7) - 4.0
    return (level + rng.normal(0, 1, size=(64, 97))).astype(np.float16).astype(np.float32)


def make_raw(root: Path, videos: list[dict], *, shards: int = 3, seed: int = 0) -> Path:
    """Write a raw extraction output (as `aiaic-data extract --out`): one sample per second of each video."""
    root.mkdir(parents=True, exist_ok=True)
    labels = sorted({v["label"] for v in videos})
    samples = []
    for v in videos:
        for seg in range(v["seconds"]):
            key = sample_key(v["video_id"], v["start"], seg)
            li = labels.index(v["label"])
            meta = {
                "dataset": v["dataset"], "video_id": v["video_id"], "source": f"{v['video_id']}.mp4",
                "label": v["label"], "label_id": li, "segment": seg, "frame_time": seg + 0.5,
                "audio_start": float(seg), "audio_end": seg + 1.0, "in_event": seg % 2 == 0,
                "has_audio": v["audio"], "fps": 10.0, "width": 8, "height": 8, "sample_rate": 16000,
                "channels": 1, "duration": float(v["seconds"]), "split": v["split"], "recipe_hash": "abc123",
            }  # fmt: skip
            img = np.zeros((8, 8, 3), np.uint8)
            img[..., 0], img[..., 1], img[..., 2] = (40 + 30 * li) % 256, (40 + 20 * seg) % 256, 120
            mel = sample_mel(key, v["label"]) if v["audio"] else None
            pcm = np.full(16000, li / 100, np.float32) if v["audio"] else None
            samples.append((key, meta, encode_sample(key, img, meta, mel=mel, pcm=pcm, image_format="png")))
    random.Random(seed).shuffle(samples)
    rows = []
    for i in range(shards):
        name = f"shard-{i:05d}.tar"
        part = samples[i::shards]
        with wds.TarWriter(str(root / name)) as w:
            for key, meta, s in part:
                w.write(s)
                rows.append([key, name, meta["label"], meta["label_id"], meta["video_id"], meta["segment"],
                             meta["split"] or "", meta["dataset"], meta["in_event"], meta["has_audio"],
                             meta["source"]])  # fmt: skip
        write_json_atomic(root / f"shard-{i:05d}.stats.json", {"samples": len(part), "shard": name})
    with atomic_open(root / "index.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(INDEX_COLUMNS)
        w.writerows(rows)
    recipe = {"extract": {"mode": "test"}, "mel": MelConfig().to_dict(), "recipe_hash": "abc123"}
    write_json_atomic(root / "recipe.json", recipe)
    return root


def read_split(root: Path, split: str) -> dict[str, DecodedSample]:
    """Every sample of a split, decoded with `aiaic.data.sample.decode_sample`, by key."""
    out = {}
    for shard in read_manifest(Path(root)).splits[split].shards:
        for raw in iter_samples(str(Path(root) / shard)):
            out[raw["__key__"]] = decode_sample(raw)
    return out
