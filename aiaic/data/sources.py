"""Sources: turn a VGGSound tree, an AVE tree or any folder of videos into sorted work items.

Layouts (``aiaic-data extract --layout``):

- ``vggsound``: a headerless ``vggsound.csv`` (``ytid,start,label,split``; labels quoted where they
  hold a comma; ids may begin with '-') and videos named ``{ytid}_{start:06d}.{ext}`` under
  ``video/`` (or directly in the source folder). Rows without a video on disk are counted, not
  failures (a VGGSound download is always partial).
- ``ave``: ``Annotations.txt`` (``Category&VideoID&Quality&StartTime&EndTime``, with or without its
  header line) and videos ``AVE/{VideoID}.mp4`` (or directly in the source folder);
  ``trainSet.txt`` / ``valSet.txt`` / ``testSet.txt``, where present, give each video its official split.
- ``folder``: every video file under the source folder, recursively; the label is the parent
  folder's path relative to the source folder (files directly in it get the label ``unlabeled``).
- ``auto``: ``vggsound.csv`` present -> vggsound; ``Annotations.txt`` present -> ave; else folder.

``label_id`` is the index of the label in the sorted list of every label the source knows (for
VGGSound: all labels in vggsound.csv, whether or not their videos are present; AVE: the categories
of Annotations.txt; folder: the labels found). Items are sorted by their ``source`` (the path
relative to the source folder), so the order, and with it the assignment of inputs to shards, is
independent of the file system and of hash randomization.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiaic.errors import ConfigError, InputError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".flv",
    ".mpg",
    ".mpeg",
    ".ts",
    ".wmv",
    ".3gp",
    ".ogv",
)
LAYOUTS = ("vggsound", "ave", "folder")
ROOT_LABEL = "unlabeled"


@dataclass(frozen=True)
class WorkItem:
    """One input video. `path` is absolute; `source` is the path relative to --src (POSIX form).

    `start` is the clip's start in the original video (seconds; VGGSound's csv column, else 0);
    `event` is AVE's (StartTime, EndTime) in seconds or None; `split` the official split or None.
    """

    path: str
    source: str
    dataset: str
    video_id: str
    start: int
    label: str
    label_id: int
    split: str | None = None
    event: tuple[float, float] | None = None

    @classmethod
    def found(
        cls,
        file: Path,
        src: Path,
        dataset: str,
        video_id: str,
        label: str,
        label_id: int,
        *,
        start: int = 0,
        split: str | None = None,
        event: tuple[float, float] | None = None,
    ) -> WorkItem:
        """The item for video `file` found under the source folder `src`."""
        return cls(
            str(file.resolve()), _rel(file, src), dataset, video_id, start, label, label_id, split, event
        )


@dataclass
class SourceListing:
    """Sorted work items plus what did not become an item (for the summary and the log)."""

    layout: str
    items: list[WorkItem]
    labels: list[str]
    missing_videos: int = 0
    unlisted_videos: list[str] = field(default_factory=list)


def detect_layout(src: Path) -> str:
    """`vggsound` where vggsound.csv exists, `ave` where Annotations.txt exists, else `folder`."""
    if (src / "vggsound.csv").is_file():
        return "vggsound"
    if (src / "Annotations.txt").is_file():
        return "ave"
    return "folder"


def _is_video(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")


def _videos_in(folder: Path) -> dict[str, Path]:
    """stem -> path of the video files directly in `folder` (first by sorted name wins)."""
    found: dict[str, Path] = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if _is_video(p):
                found.setdefault(p.stem, p)
    return found


def _videos_of(src: Path, sub: str) -> dict[str, Path]:
    """stem -> path of the videos in `src/sub`, then of those directly in `src` (the sub-folder wins)."""
    videos = _videos_in(src / sub)
    for stem, p in _videos_in(src).items():
        videos.setdefault(stem, p)
    return videos


def _rel(p: Path, src: Path) -> str:
    return p.relative_to(src).as_posix()


def list_vggsound(src: Path) -> SourceListing:
    """Work items of a VGGSound tree (see the module docstring)."""
    csv_path = src / "vggsound.csv"
    if not csv_path.is_file():
        raise InputError(csv_path, "vggsound.csv not found (layout vggsound)")
    rows: dict[str, tuple[str, int, str, str | None]] = {}
    labels: set[str] = set()
    with csv_path.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 3:
                raise InputError(csv_path, f"line {n}: expected 'ytid,start,label,split', got {row!r}")
            ytid, start_s, label = row[0].strip(), row[1].strip(), row[2].strip()
            split = row[3].strip() if len(row) > 3 and row[3].strip() else None
            try:
                start = int(float(start_s))
            except ValueError:
                if n == 1:  # tolerate a header line
                    continue
                raise InputError(csv_path, f"line {n}: start {start_s!r} is not a number") from None
            labels.add(label)
            rows.setdefault(f"{ytid}_{start:06d}", (ytid, start, label, split))
    if not rows:
        raise InputError(csv_path, "no rows")
    videos = _videos_of(src, "video")
    sorted_labels = sorted(labels)
    label_ids = {lab: i for i, lab in enumerate(sorted_labels)}
    items = []
    for stem, (ytid, start, label, split) in rows.items():
        found = videos.get(stem)
        if found is None:
            continue
        items.append(
            WorkItem.found(found, src, "vggsound", ytid, label, label_ids[label], start=start, split=split)
        )
    unlisted = sorted(_rel(p, src) for stem, p in videos.items() if stem not in rows)
    items.sort(key=lambda it: it.source)
    return SourceListing("vggsound", items, sorted_labels, len(rows) - len(items), unlisted)


def _read_ave_rows(path: Path) -> list[tuple[str, str, float, float]]:
    """(category, video_id, start, end) per line of an AVE annotation file; a header line is skipped."""
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split("&")
            if len(parts) != 5:
                raise InputError(path, f"line {n}: expected 'Category&VideoID&Quality&StartTime&EndTime'")
            if n == 1 and parts[0] == "Category" and parts[1] == "VideoID":
                continue
            try:
                start, end = float(parts[3]), float(parts[4])
            except ValueError:
                raise InputError(
                    path, f"line {n}: StartTime/EndTime {parts[3]!r}/{parts[4]!r} not numbers"
                ) from None
            out.append((parts[0].strip(), parts[1].strip(), start, end))
    return out


def list_ave(src: Path) -> SourceListing:
    """Work items of an AVE tree (see the module docstring)."""
    ann = src / "Annotations.txt"
    if not ann.is_file():
        raise InputError(ann, "Annotations.txt not found (layout ave)")
    rows = _read_ave_rows(ann)
    if not rows:
        raise InputError(ann, "no annotation rows")
    splits: dict[str, str] = {}
    for split, fname in (("train", "trainSet.txt"), ("val", "valSet.txt"), ("test", "testSet.txt")):
        if (src / fname).is_file():
            for _, vid, _, _ in _read_ave_rows(src / fname):
                splits.setdefault(vid, split)
    labels = sorted({r[0] for r in rows})
    label_ids = {lab: i for i, lab in enumerate(labels)}
    videos = _videos_of(src, "AVE")
    seen: set[str] = set()
    items = []
    for cat, vid, start, end in rows:
        if vid in seen:
            log.warning("%s: video %s annotated more than once; the first row is used", ann, vid)
            continue
        seen.add(vid)
        found = videos.get(vid)
        if found is None:
            continue
        items.append(
            WorkItem.found(
                found, src, "ave", vid, cat, label_ids[cat], split=splits.get(vid), event=(start, end)
            )
        )
    unlisted = sorted(_rel(p, src) for stem, p in videos.items() if stem not in seen)
    items.sort(key=lambda it: it.source)
    return SourceListing("ave", items, labels, len(seen) - len(items), unlisted)


def folder_video_id(rel: str) -> str:
    """Video id of a file in the folder layout: its relative path without suffix, '/' -> '__' and
    '.' -> '_' (a WebDataset key ends at its first dot), so ids are unique across sub-folders."""
    return rel.rsplit(".", 1)[0].replace("/", "__").replace(".", "_")


def list_folder(src: Path) -> SourceListing:
    """Every video under `src` (recursively); label = parent folder relative to `src`."""
    paths = sorted((p for p in src.rglob("*") if _is_video(p)), key=lambda p: _rel(p, src))
    labels_of = {}
    for p in paths:
        parent = p.parent.relative_to(src).as_posix()
        labels_of[p] = ROOT_LABEL if parent in ("", ".") else parent
    labels = sorted(set(labels_of.values()))
    label_ids = {lab: i for i, lab in enumerate(labels)}
    ids = [folder_video_id(_rel(p, src)) for p in paths]
    counts = Counter(ids)  # a.mp4 and a.mkv side by side: keep the suffix in their ids
    items = []
    for p, vid in zip(paths, ids, strict=True):
        rel = _rel(p, src)
        lab = labels_of[p]
        if counts[vid] > 1:
            vid = rel.replace("/", "__").replace(".", "_")
        items.append(WorkItem.found(p, src, "folder", vid, lab, label_ids[lab]))
    return SourceListing("folder", items, labels)


def list_source(src: Path, layout: str = "auto") -> SourceListing:
    """Sorted work items of `src` in the given layout (`auto` detects it). Raises InputError."""
    src = Path(src)
    if not src.is_dir():
        raise InputError(src, "source folder does not exist")
    resolved = detect_layout(src) if layout == "auto" else layout
    if resolved not in LAYOUTS:
        raise InputError(src, f"unknown layout {layout!r}; expected auto or one of {LAYOUTS}")
    return {"vggsound": list_vggsound, "ave": list_ave, "folder": list_folder}[resolved](src)


def parse_part(part: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N (0-based, like SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX)."""
    try:
        i_s, n_s = part.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ConfigError(f"part {part!r} is not of the form I/N (e.g. 0/4)") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"part {part!r}: need 0 <= I < N")
    return i, n
