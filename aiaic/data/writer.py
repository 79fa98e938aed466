"""Shard writing for `aiaic-data extract`: plan, write under a temporary name, stats last, index.

Output folder::

    OUT/shard-000000.tar          WebDataset shard (only when it holds at least one sample)
    OUT/shard-000000.stats.json   written last: its presence marks the shard done
    OUT/index.csv                 one row per sample, rebuilt from every stats file at the end of a run
    OUT/failures.jsonl            {"source", "error", "message"} per failing input, rebuilt likewise
    OUT/recipe.json               the extract settings, the MelConfig and the recipe hash

Input -> shard assignment is deterministic: the sorted input list is cut into consecutive groups
of `inputs_per_shard` inputs; group k is shard k. With `--part I/N`, a job owns the shards with
k % N == I, so N jobs (a SLURM array, an indexed Kubernetes job) can share one output folder.
A shard is written to the job's temporary folder (`OUT/.tmp-part-I-of-N/`) and renamed into place
when complete, then its stats file is written (atomically). A killed job leaves at most a temporary
folder, removed when the same part runs again; shards whose stats exist are skipped.
Samples are shuffled within a shard with `random.Random(f"{seed}:{k}")` after sorting by key, so a
shard's content and order do not depend on worker timing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiaic.errors import InputError, RecipeMismatchError
from aiaic.io import atomic_open, write_text_atomic

INDEX_COLUMNS = (
    "key",
    "shard",
    "label",
    "label_id",
    "video_id",
    "segment",
    "split",
    "dataset",
    "in_event",
    "has_audio",
    "source",
)
TAR_MTIME = 0.0  # fixed member time: the same samples give byte-identical shards


def shard_stem(k: int) -> str:
    return f"shard-{k:06d}"


def stats_path(out: Path, k: int) -> Path:
    return out / f"{shard_stem(k)}.stats.json"


def tmp_dir_for(out: Path, part: tuple[int, int]) -> Path:
    return out / f".tmp-part-{part[0]}-of-{part[1]}"


@dataclass(frozen=True)
class ShardPlan:
    """Shard k takes the inputs at positions `items` of the sorted input list."""

    index: int
    items: tuple[int, ...]


def plan_shards(n_items: int, inputs_per_shard: int) -> list[ShardPlan]:
    """Cut `n_items` sorted inputs into consecutive groups of `inputs_per_shard` (the last may be smaller)."""
    step = max(1, inputs_per_shard)
    return [
        ShardPlan(k, tuple(range(s, min(s + step, n_items)))) for k, s in enumerate(range(0, n_items, step))
    ]


def select_part(plans: list[ShardPlan], part: tuple[int, int]) -> list[ShardPlan]:
    """The shards that job I of N owns: k % N == I."""
    i, n = part
    return [p for p in plans if p.index % n == i]


def shard_done(out: Path, k: int) -> bool:
    return stats_path(out, k).is_file()


@dataclass
class SampleRecord:
    """A sample spooled by a worker: its key, its index row (without the shard), and where its
    encoded fields sit in the spool file: (field name, byte offset, byte length)."""

    key: str
    row: dict[str, Any]
    fields: list[tuple[str, int, int]]


@dataclass
class ItemResult:
    """What a worker returns for one input: spooled samples and, where it yielded nothing or less
    than it should, a failure {"source", "error", "message"}. `seconds` is the wall time spent."""

    position: int
    source: str
    samples: list[SampleRecord] = field(default_factory=list)
    spool: str | None = None
    failure: dict[str, str] | None = None
    seconds: float = 0.0


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def prepare_out(out: Path, recipe_doc: dict[str, Any], overwrite: bool, part: tuple[int, int]) -> Path:
    """Create `out`, check it is writable, write or check `recipe.json`; return this part's empty
    temporary folder (`OUT/.tmp-part-I-of-N`, emptied of what a killed run left).

    Raises InputError (not a folder / not writable) or RecipeMismatchError (a different recipe is
    already there and `overwrite` is False). With `overwrite`, the extract outputs already in `out`
    (shards, stats, index, failures, recipe, temporary folders) are removed first; nothing else is.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out, f"cannot create the output folder: {e.strerror or e}") from None
    if not out.is_dir():
        raise InputError(out, "not a folder")
    probe = out / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(out, f"output folder is not writable: {e.strerror or e}") from None
    recipe_file = out / "recipe.json"
    if recipe_file.is_file():
        old = json.loads(recipe_file.read_text(encoding="utf-8"))
        if old.get("recipe_hash") != recipe_doc["recipe_hash"]:
            if not overwrite:
                raise RecipeMismatchError(
                    f"{out}: holds shards made with recipe {old.get('recipe_hash')} "
                    f"({json.dumps(old.get('extract'), sort_keys=True)}); this run's recipe is "
                    f"{recipe_doc['recipe_hash']} ({json.dumps(recipe_doc['extract'], sort_keys=True)}). "
                    "Use another --out, or --overwrite to replace them."
                )
    if overwrite:
        clear_outputs(out)
    tmp = tmp_dir_for(out, part)
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "spool").mkdir(parents=True)
    if not recipe_file.is_file():
        write_text_atomic(recipe_file, _json_text(recipe_doc), tmp_dir=tmp)
    return tmp


def clear_outputs(out: Path) -> None:
    """Remove what extract writes (and only that) from `out`."""
    for pattern in ("shard-*.tar", "shard-*.stats.json", "index.csv", "failures*.jsonl", "recipe.json"):
        for p in out.glob(pattern):
            p.unlink()
    for p in out.glob(".tmp-part-*"):
        shutil.rmtree(p, ignore_errors=True)


def _read_spooled(spool: str, fields: list[tuple[str, int, int]]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with open(spool, "rb") as f:
        for name, offset, length in fields:
            f.seek(offset)
            out[name] = f.read(length)
    return out


def write_shard(
    out: Path,
    k: int,
    results: Iterable[ItemResult],
    *,
    seed: int,
    tmp_dir: Path,
    recipe_hash: str,
    mel_config: dict[str, Any],
) -> dict[str, Any]:
    """Write shard k from its inputs' results: tar under `tmp_dir`, fsync, rename, then stats (last).

    Returns the stats dict. A shard without samples gets stats (with its failures) but no tar.
    """
    results = sorted(results, key=lambda r: r.position)
    entries: list[tuple[SampleRecord, str]] = []
    failures: list[dict[str, str]] = []
    seen: set[str] = set()
    for r in results:
        if r.failure is not None:
            failures.append(r.failure)
        for s in r.samples:
            if s.key in seen:
                failures.append(
                    {
                        "source": r.source,
                        "error": "duplicate_key",
                        "message": f"sample key {s.key} already made from another input",
                    }
                )
                continue
            seen.add(s.key)
            assert r.spool is not None
            entries.append((s, r.spool))
    entries.sort(key=lambda e: e[0].key)
    tar_name = f"{shard_stem(k)}.tar" if entries else None
    rows = []  # the index rows, in key order (taken before the shuffle)
    for rec, _ in entries:
        row = {**rec.row, "shard": tar_name}
        rows.append({c: row.get(c) for c in INDEX_COLUMNS})
    random.Random(f"{seed}:{k}").shuffle(entries)
    size = 0
    if tar_name is not None:
        with atomic_open(out / tar_name, "wb", tmp_dir=tmp_dir) as f:
            # the member layout webdataset.TarWriter writes ("{key}.{field}", sorted fields), without
            # importing webdataset (and torch) into the extract process
            with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
                for rec, spool in entries:
                    data = _read_spooled(spool, rec.fields)
                    for name in sorted(data):
                        ti = tarfile.TarInfo(f"{rec.key}.{name}")
                        ti.size, ti.mtime, ti.mode = len(data[name]), TAR_MTIME, 0o444
                        ti.uname = ti.gname = "aiaic"
                        tar.addfile(ti, io.BytesIO(data[name]))
        size = (out / tar_name).stat().st_size
    stats = {
        "format_version": 1,
        "shard": tar_name,
        "index": k,
        "samples": len(entries),
        "bytes": size,
        "inputs": [r.source for r in results],
        "seconds": round(sum(r.seconds for r in results), 3),
        "failures": sorted(failures, key=lambda x: (x["source"], x["error"])),
        "rows": rows,
        "recipe_hash": recipe_hash,
        "mel_config": mel_config,
        "seed": seed,
    }
    write_text_atomic(stats_path(out, k), _json_text(stats), tmp_dir=tmp_dir)
    return stats


def read_all_stats(out: Path) -> list[dict[str, Any]]:
    """Every shard's stats in `out`, by shard index."""
    stats = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("shard-*.stats.json"))]
    return sorted(stats, key=lambda s: s["index"])


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def rebuild_index(out: Path, tmp_dir: Path) -> list[dict[str, Any]]:
    """Rewrite `index.csv` and `failures.jsonl` from every stats file (atomically, via `tmp_dir`).

    Returns the stats read (`read_all_stats`). Rows are sorted by key; failures by source.
    """
    all_stats = read_all_stats(out)
    rows = sorted((r for s in all_stats for r in s["rows"]), key=lambda r: r["key"])
    failures = sorted((f for s in all_stats for f in s["failures"]), key=lambda f: (f["source"], f["error"]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(INDEX_COLUMNS)
    for r in rows:
        w.writerow([_csv_value(r[c]) for c in INDEX_COLUMNS])
    write_text_atomic(out / "index.csv", buf.getvalue(), tmp_dir=tmp_dir)
    write_text_atomic(
        out / "failures.jsonl",
        "".join(json.dumps(x, ensure_ascii=False, sort_keys=True) + "\n" for x in failures),
        tmp_dir=tmp_dir,
    )
    return all_stats
