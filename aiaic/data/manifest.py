"""The split manifest (`SPLIT/manifest.json`): its schema, defined once, and its one reader and writer.

`aiaic-data split` writes it last, so a split directory with a manifest is complete. The loader, the
trainer, the evaluation and `aiaic-data inspect` read it through `read_manifest` and use its fields by
name. The JSON keys are the field names; every key a manifest written since format 1 holds is here.

    manifest = read_manifest(Path("shards/split"))
    manifest.splits["train"].shards        # paths relative to the split directory
    manifest.audio_stats.mel_mean          # per-band train statistics of the log-mel (64 floats)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiaic.errors import InputError
from aiaic.io import write_json_atomic

FORMAT_VERSION = 1
SPLITS = ("train", "val", "ood", "test")  # the splits a manifest may hold
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SplitEntry:
    """One split: its counts and its shards (paths relative to the split directory, in read order)."""

    samples: int
    videos: int
    categories: int
    shards: tuple[str, ...]
    shard_samples: tuple[int, ...] | None = None  # samples per shard, where recorded


@dataclass(frozen=True)
class AudioStats:
    """Log-mel statistics computed on train: per band (`mel_mean`, `mel_std`, n_mels floats, or one
    scalar for every band) and over all bands (`*_scalar`); log-mel units."""

    mel_mean: tuple[float, ...] | float
    mel_std: tuple[float, ...] | float
    mel_mean_scalar: float
    mel_std_scalar: float
    samples: int  # train samples with audio the statistics come from
    computed_on: str = "train"
    std_floor: float | None = None  # lower bound the std was clipped to, where recorded


@dataclass(frozen=True)
class Manifest:
    """What a split directory holds (see the module docstring)."""

    splits: dict[str, SplitEntry]
    audio_stats: AudioStats | None = None
    label_ids: dict[str, int] = field(default_factory=dict)  # category -> label id (ID, OOD, test-only)
    id_categories: tuple[str, ...] = ()
    ood_categories: tuple[str, ...] = ()
    mel_config: dict[str, Any] = field(default_factory=dict)  # the MelConfig of the mels ({} = defaults)
    recipe: dict[str, Any] = field(default_factory=dict)  # the split and extract settings that made it
    seed: int | None = None
    source_shards: tuple[str, ...] = ()  # the raw shards it was re-packed from
    excluded: dict[str, int] = field(default_factory=dict)  # why samples were left out -> count
    shard_plan: dict[str, int] = field(default_factory=dict)  # ranks, workers, min_shards
    warnings: tuple[str, ...] = ()
    created: str | None = None  # UTC time, ISO 8601
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (fields without a value are left out)."""
        return _json(self)

    @classmethod
    def from_dict(cls, doc: Any, path: Path) -> Manifest:
        """The manifest from its JSON form; InputError naming `path` when a field is missing or malformed."""
        if not isinstance(doc, dict) or not isinstance(doc.get("splits"), dict):
            raise InputError(path, "not a valid split manifest: it has no 'splits' table")
        try:
            splits = {str(k): _entry(v) for k, v in doc["splits"].items()}
            stats = doc.get("audio_stats")
            return cls(
                splits=splits,
                audio_stats=None if stats is None else _audio_stats(stats),
                label_ids={str(k): int(v) for k, v in doc.get("label_ids", {}).items()},
                id_categories=tuple(doc.get("id_categories", ())),
                ood_categories=tuple(doc.get("ood_categories", ())),
                mel_config=dict(doc.get("mel_config", {})),
                recipe=dict(doc.get("recipe", {})),
                seed=doc.get("seed"),
                source_shards=tuple(doc.get("source_shards", ())),
                excluded=dict(doc.get("excluded", {})),
                shard_plan=dict(doc.get("shard_plan", {})),
                warnings=tuple(doc.get("warnings", ())),
                created=doc.get("created"),
                format_version=int(doc.get("format_version", FORMAT_VERSION)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(path, f"not a valid split manifest: {type(e).__name__}: {e}") from e


def _json(obj: Any) -> Any:
    """A dataclass as a JSON-safe dict, its fields without a value left out (values inside are kept)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {k: _json(v) for k, v in values.items() if v is not None}
    if isinstance(obj, dict):
        return {k: _json(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [_json(v) for v in obj]
    return obj


def _floats(values: Any) -> tuple[float, ...] | float:
    return float(values) if isinstance(values, (int, float)) else tuple(float(v) for v in values)


def _entry(doc: dict[str, Any]) -> SplitEntry:
    counts = doc.get("shard_samples")
    return SplitEntry(
        samples=int(doc["samples"]),
        videos=int(doc["videos"]),
        categories=int(doc["categories"]),
        shards=tuple(str(s) for s in doc["shards"]),
        shard_samples=None if counts is None else tuple(int(c) for c in counts),
    )


def _audio_stats(doc: dict[str, Any]) -> AudioStats:
    floor = doc.get("std_floor")
    return AudioStats(
        mel_mean=_floats(doc["mel_mean"]),
        mel_std=_floats(doc["mel_std"]),
        mel_mean_scalar=float(doc["mel_mean_scalar"]),
        mel_std_scalar=float(doc["mel_std_scalar"]),
        samples=int(doc["samples"]),
        computed_on=str(doc.get("computed_on", "train")),
        std_floor=None if floor is None else float(floor),
    )


def read_manifest(split_dir: Path) -> Manifest:
    """The manifest of `split_dir`; InputError where it is absent, not JSON, or not a valid manifest.
    The one reader of manifests (loader, trainer, evaluation, inspect)."""
    split_dir = Path(split_dir)
    path = split_dir / MANIFEST
    if not path.is_file():
        reason = "no manifest.json: not a split directory (file not found; make one with `aiaic-data split`)"
        raise InputError(split_dir, reason)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON: {e}") from e
    return Manifest.from_dict(doc, path)


def write_manifest(split_dir: Path, manifest: Manifest) -> Path:
    """Write `split_dir/manifest.json` atomically (sorted keys, indented); returns its path."""
    path = Path(split_dir) / MANIFEST
    write_json_atomic(path, manifest.to_dict())
    return path
