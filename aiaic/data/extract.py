"""`aiaic-data extract`: videos (VGGSound, AVE, any folder) -> WebDataset shards of one-second pairs.

    aiaic-data extract --src ../shared/data/mini-vggsound --out shards/raw --workers 2
    aiaic-data extract --src ../shared/data/mini-ave --out shards/ave --config pipelines/ave.toml
    # N machines, one output folder (SLURM array; indices are 0-based):
    aiaic-data extract --src /data/vggsound --out /data/raw \
        --part ${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}

Each sample's json holds: key, dataset, video_id, start (the clip's start in the original video, s),
source (path relative to --src), label, label_id, segment, frame_time (s, the chosen frame on the
video's timeline), audio_start / audio_end (s), in_event (AVE: StartTime <= segment < EndTime; other
layouts: true, their label covers the whole clip), event (AVE's [start, end] or null), has_audio,
audio_padded (16 kHz samples zero-filled at the window's edges), fps, width, height (the source's),
image_width, image_height (stored), sample_rate, channels (the source's), duration (s), split
(official or null) and recipe_hash.

From Python: ``run_extract(ExtractConfig(src=Path(...), out=Path(...)))``. The pieces: `sources`
(work items), `decode` (frame by pts, audio window), `writer` (shards, stats, index), `distributor`
(the process pool). What each sample holds is documented in `aiaic/data/sample.py` and
`aiaic/data/decode.py`; the output folder in `aiaic/data/writer.py`.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiaic.config import config_to_dict, recipe_hash, required
from aiaic.data import writer as W
from aiaic.data.audio import MelConfig, log_mel
from aiaic.data.decode import DecodeFailure, Segment, StreamInfo, VideoClip
from aiaic.data.distributor import run_pool
from aiaic.data.sample import encode_sample, sample_key
from aiaic.data.sources import SourceListing, WorkItem, list_source, parse_part
from aiaic.errors import ConfigError, InputError

log = logging.getLogger(__name__)

SECONDS_PER_INPUT_ESTIMATE = 10  # `all` mode: inputs per shard = samples_per_shard / 10 (AVE clips are 10 s)


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of one extraction. Units: size in pixels (short side), time_limit in seconds per file.

    `workers` 0 means one per CPU. `part` is "I/N" (0-based). `mode` auto = middle for VGGSound,
    all for AVE and folders. Only the fields that change the samples enter the recipe hash
    (layout, mode, size, image_format, jpeg_quality, allow_missing_audio, samples_per_shard, seed,
    and the MelConfig); src, out, workers, part, time_limit and overwrite do not.
    """

    src: Path = required("--src")
    out: Path = required("--out")
    layout: Literal["auto", "vggsound", "ave", "folder"] = "auto"
    mode: Literal["auto", "middle", "all"] = "auto"
    workers: int = 0
    samples_per_shard: int = 1000
    part: str = "0/1"
    size: int = 256
    image_format: Literal["jpg", "png", "webp"] = "jpg"
    jpeg_quality: int = 95
    allow_missing_audio: bool = False
    overwrite: bool = False
    seed: int = 0
    time_limit: float = 300.0

    def __post_init__(self) -> None:
        if self.samples_per_shard < 1:
            raise ConfigError("samples_per_shard must be >= 1")
        if self.size < 0:
            raise ConfigError("size must be >= 0 (0 keeps the source size)")
        if self.workers < 0:
            raise ConfigError("workers must be >= 0 (0 = one per CPU)")
        if self.time_limit <= 0:
            raise ConfigError("time_limit must be > 0 seconds")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError("jpeg_quality must be in 1..100")
        parse_part(self.part)


@dataclass
class ExtractSummary:
    """What a run did. `inputs`: inputs of this part; `skipped_inputs`: those in shards already done;
    `samples`: samples written by this run; `total_samples`: samples in this part's shards (done
    before or now); `failures`: failing inputs of this run by error class; `seconds` wall time."""

    out: Path
    layout: str
    mode: str
    recipe_hash: str
    inputs: int
    skipped_inputs: int
    processed_inputs: int
    samples: int
    total_samples: int
    shards_written: int
    shards_skipped: int
    failures: dict[str, int] = field(default_factory=dict)
    missing_videos: int = 0
    unlisted_videos: int = 0
    seconds: float = 0.0

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = config_to_dict(asdict(self))
        d["samples_per_second"] = round(self.samples_per_second, 3)
        return d


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs besides the item (picklable; sent once per worker)."""

    mode: str
    size: int
    image_format: str
    jpeg_quality: int
    allow_missing_audio: bool
    mel: MelConfig
    recipe_hash: str
    spool_dir: str


def resolve_mode(mode: str, layout: str) -> str:
    if mode != "auto":
        return mode
    return "middle" if layout == "vggsound" else "all"


def _meta(
    item: WorkItem, seg: Segment, info: StreamInfo, job: JobSpec, key: str, h: int, w: int
) -> dict[str, Any]:
    in_event = True
    if item.event is not None:
        in_event = item.event[0] <= seg.index < item.event[1]
    return {
        "key": key,
        "dataset": item.dataset,
        "video_id": item.video_id,
        "start": item.start,
        "source": item.source,
        "label": item.label,
        "label_id": item.label_id,
        "segment": seg.index,
        "frame_time": round(seg.frame_time, 6),
        "audio_start": float(seg.index),
        "audio_end": float(seg.index + 1),
        "in_event": bool(in_event),
        "has_audio": seg.pcm is not None,
        "audio_padded": seg.audio_padded,
        "fps": round(info.fps, 6),
        "width": info.width,
        "height": info.height,
        "image_width": w,
        "image_height": h,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "duration": round(info.duration, 6),
        "split": item.split,
        "recipe_hash": job.recipe_hash,
        "event": list(item.event) if item.event is not None else None,
    }


def process_item(task: tuple[int, WorkItem], job: JobSpec) -> W.ItemResult:
    """Worker side: decode one input, spool its encoded samples, return records and any failure."""
    pos, item = task
    t0 = time.perf_counter()
    res = W.ItemResult(pos, item.source)
    spool = Path(job.spool_dir) / f"item-{pos:08d}.bin"
    missing: list[tuple[int, str, str]] = []
    try:
        with (
            VideoClip(
                item.path, allow_missing_audio=job.allow_missing_audio, sample_rate=job.mel.sample_rate
            ) as clip,
            spool.open("wb") as f,
        ):
            for seg in clip.segments(job.mode, job.size):
                key = sample_key(item.video_id, item.start, seg.index)
                h, w = seg.image.shape[:2]
                meta = _meta(item, seg, clip.info, job, key, h, w)
                mel = log_mel(seg.pcm, job.mel) if seg.pcm is not None else None
                sample = encode_sample(key, seg.image, meta, mel, seg.pcm, job.image_format, job.jpeg_quality)
                fields = []
                for name, data in sample.items():
                    if name == "__key__":
                        continue
                    fields.append((name, f.tell(), len(data)))
                    f.write(data)
                row = {c: meta.get(c) for c in W.INDEX_COLUMNS if c != "shard"}
                res.samples.append(W.SampleRecord(key, row, fields))
            missing = clip.missing
    except DecodeFailure as e:
        res.failure = {"source": item.source, "error": e.error, "message": e.message}
    except FileNotFoundError:
        res.failure = {"source": item.source, "error": "missing_file", "message": "the file disappeared"}
    except OSError as e:  # permission denied, I/O error: this input fails, the run goes on
        res.failure = {"source": item.source, "error": "unreadable", "message": f"{type(e).__name__}: {e}"}
    if res.failure is None and missing:
        detail = "; ".join(f"segment {i}: {why}" for i, _, why in missing[:5])
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        error = "partial" if res.samples else missing[0][1]
        res.failure = {"source": item.source, "error": error, "message": detail + more}
    if res.failure is None and not res.samples:
        res.failure = {
            "source": item.source,
            "error": "no_segments",
            "message": "no whole second could be made",
        }
    if res.samples:
        res.spool = str(spool)
    elif spool.exists():
        spool.unlink()
    res.seconds = time.perf_counter() - t0
    return res


def _pool_failure(task: tuple[int, WorkItem], error: str, message: str) -> W.ItemResult:
    pos, item = task
    return W.ItemResult(pos, item.source, failure={"source": item.source, "error": error, "message": message})


def recipe_of(cfg: ExtractConfig, layout: str, mode: str, mel: MelConfig) -> dict[str, Any]:
    """The settings that determine the samples (hashed into `recipe_hash`)."""
    return {
        "format_version": 1,
        "layout": layout,
        "mode": mode,
        "size": cfg.size,
        "image_format": cfg.image_format,
        "jpeg_quality": cfg.jpeg_quality,
        "allow_missing_audio": cfg.allow_missing_audio,
        "samples_per_shard": cfg.samples_per_shard,
        "seed": cfg.seed,
        "mel": mel.to_dict(),
    }


def _list_inputs(src: Path, layout: str) -> SourceListing:
    """The inputs of `src` in `layout`; InputError when there is nothing to extract."""
    listing = list_source(src, layout)
    if listing.missing_videos:
        log.info("%d annotated videos are not in %s (skipped)", listing.missing_videos, src)
    if listing.unlisted_videos:
        log.warning(
            "%d videos in %s have no annotation row (skipped), e.g. %s",
            len(listing.unlisted_videos),
            src,
            listing.unlisted_videos[:3],
        )
    if not listing.items:
        raise InputError(
            src,
            f"nothing to extract: no videos found for layout '{listing.layout}'"
            + (f" ({listing.missing_videos} annotated videos are missing)" if listing.missing_videos else ""),
        )
    return listing


def _recipe_document(cfg: ExtractConfig, listing: SourceListing, mode: str, mel: MelConfig) -> dict[str, Any]:
    """recipe.json: the recipe and its hash, the mel configuration, every setting and the labels."""
    recipe = recipe_of(cfg, listing.layout, mode, mel)
    return {
        "recipe_hash": recipe_hash(recipe),
        "extract": recipe,
        "mel_config": mel.to_dict(),
        "config": config_to_dict(cfg),
        "labels": listing.labels,
    }


@dataclass
class _ShardCollector:
    """Collects the workers' results per shard and writes a shard as soon as all its inputs are in."""

    out: Path
    todo: list[W.ShardPlan]
    tmp_dir: Path
    seed: int
    recipe_hash: str
    mel: MelConfig
    samples: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.shard_of = {i: p.index for p in self.todo for i in p.items}
        self.remaining = {p.index: len(p.items) for p in self.todo}
        self.collected: dict[int, list[W.ItemResult]] = defaultdict(list)

    def add(self, res: W.ItemResult) -> None:
        k = self.shard_of[res.position]
        self.collected[k].append(res)
        self.samples += len(res.samples)
        if res.failure is not None:
            self.failures[res.failure["error"]] += 1
            log.debug("%s: %s: %s", res.source, res.failure["error"], res.failure["message"])
        self.remaining[k] -= 1
        if self.remaining[k] == 0:
            done = self.collected.pop(k)
            W.write_shard(self.out, k, done, seed=self.seed, tmp_dir=self.tmp_dir,
                          recipe_hash=self.recipe_hash, mel_config=self.mel.to_dict())  # fmt: skip
            for r in done:
                if r.spool:
                    Path(r.spool).unlink(missing_ok=True)


def _process_all(
    tasks: list[tuple[int, WorkItem]],
    job: JobSpec,
    cfg: ExtractConfig,
    collector: _ShardCollector,
    progress: bool,
) -> None:
    """Run `tasks` on the worker pool, handing every result to `collector`, with a progress bar."""
    from aiaic.progress import progress_bar  # rich only when extracting (workers never import it)

    workers = cfg.workers or os.cpu_count() or 1
    with progress_bar("[bold]extract[/]", fields=("{task.fields[info]}",), enabled=progress) as bar:
        bar_task = bar.add_task("extract", total=len(tasks), info="")
        fn = functools.partial(process_item, job=job)
        for _, res in run_pool(fn, tasks, workers=workers, time_limit=cfg.time_limit, on_error=_pool_failure):
            collector.add(res)
            failed = sum(collector.failures.values())
            bar.update(bar_task, advance=1, info=f"{collector.samples} samples, {failed} failed")


def run_extract(cfg: ExtractConfig, *, progress: bool = True, mel: MelConfig | None = None) -> ExtractSummary:
    """Extract every input of `cfg.src` (this part of it) into shards under `cfg.out`.

    Raises InputError when the run cannot proceed (no such --src, nothing to extract, --out not
    writable) or when it produced zero samples; RecipeMismatchError when --out holds another recipe.
    Inputs that fail are listed in failures.jsonl and never stop the run.
    """
    t_start = time.perf_counter()
    mel = mel or MelConfig()
    src, out = Path(cfg.src), Path(cfg.out)
    part = parse_part(cfg.part)
    listing = _list_inputs(src, cfg.layout)
    mode = resolve_mode(cfg.mode, listing.layout)
    recipe_doc = _recipe_document(cfg, listing, mode, mel)
    h = recipe_doc["recipe_hash"]
    tmp = W.prepare_out(out, recipe_doc, cfg.overwrite, part)

    per_input = 1 if mode == "middle" else SECONDS_PER_INPUT_ESTIMATE
    plans = W.select_part(W.plan_shards(len(listing.items), cfg.samples_per_shard // per_input), part)
    todo = [p for p in plans if not W.shard_done(out, p.index)]
    inputs = sum(len(p.items) for p in plans)
    job = JobSpec(mode, cfg.size, cfg.image_format, cfg.jpeg_quality, cfg.allow_missing_audio, mel, h,
                  str(tmp / "spool"))  # fmt: skip
    tasks = [(i, listing.items[i]) for p in todo for i in p.items]
    collector = _ShardCollector(out, todo, tmp, cfg.seed, h, mel)
    try:
        _process_all(tasks, job, cfg, collector, progress)
        all_stats = W.rebuild_index(out, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = sum(s["samples"] for s in all_stats if s["index"] % part[1] == part[0])
    summary = ExtractSummary(
        out=out,
        layout=listing.layout,
        mode=mode,
        recipe_hash=h,
        inputs=inputs,
        skipped_inputs=inputs - len(tasks),  # those of shards already done
        processed_inputs=len(tasks),
        samples=collector.samples,
        total_samples=total,
        shards_written=len(todo),
        shards_skipped=len(plans) - len(todo),
        failures=dict(sorted(collector.failures.items())),
        missing_videos=listing.missing_videos,
        unlisted_videos=len(listing.unlisted_videos),
        seconds=time.perf_counter() - t_start,
    )
    if total == 0:
        raise InputError(
            src,
            f"no samples extracted: all {summary.inputs} inputs failed "
            f"({', '.join(f'{k}: {v}' for k, v in summary.failures.items())}); see {out / 'failures.jsonl'}",
        )
    return summary
