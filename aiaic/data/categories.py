"""Category lists: reading class files, choosing OOD categories, writing the committed lists.

The class-list-only path chooses the OOD categories from a class list (VGGSound's ``stat.csv``)
without any videos; it made ``manifests/vggsound-common164.txt`` and ``manifests/vggsound-ood20.txt``::

    aiaic-data split --class-list ../shared/data/metadata/vggsound/stat.csv \
        --categories ../shared/data/metadata/vggsound/Common.txt --ood 20 --seed 0 \
        --list-name vggsound --out manifests

`choose_ood` is also what `aiaic-data split` uses on the categories present in the data, so the same
class set and seed give the same OOD categories either way.
"""

from __future__ import annotations

import csv
import logging
import random
from collections import Counter
from pathlib import Path

from aiaic.errors import ConfigError, InputError
from aiaic.io import write_text_atomic

log = logging.getLogger(__name__)


def read_class_file(path: Path) -> list[str]:
    """Class names from a list: a .csv's first column (VGGSound stat.csv), else one name per line.

    Blank lines and lines starting with '#' are skipped; order is kept, duplicates are an error.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "class list not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].startswith("#")]
        names = [r[0].strip() for r in rows if r[0].strip()]
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        raise InputError(path, f"class names listed twice: {dup}")
    if not names:
        raise InputError(path, "no class names in the file")
    return names


def read_video_ids(path: Path) -> set[str]:
    """Video ids, one per line, or the second field of AVE's `Category&VideoID&...` annotation rows."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "video id list not found")
    ids = set()
    for ln in path.read_text(encoding="utf-8").splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        parts = ln.split("&")
        if len(parts) >= 2:
            if parts[1] != "VideoID":  # AVE header line
                ids.add(parts[1].strip())
        else:
            ids.add(ln)
    return ids


def choose_ood(candidates: list[str] | set[str], n: int, seed: int) -> list[str]:
    """`n` categories drawn with `seed` from the sorted candidates (Python's `random`, stable across
    versions); returned sorted. The same call with the same class list gives the same choice."""
    cands = sorted(set(candidates))
    if n > len(cands):
        raise ConfigError(f"--ood {n} is larger than the {len(cands)} categories available for OOD")
    return sorted(random.Random(seed).sample(cands, n))


_LIST_NOTES = {
    ("Common.txt", 164): (
        "VGGSound's Common.txt: the 164 VGGSound classes shared with AudioSet. This matches the paper's "
        "164-category training subset."
    ),
}


def write_category_lists(
    class_list: Path, categories: Path, out: Path, *, ood: int, seed: int, list_name: str
) -> list[Path]:
    """Class-list-only path: the ID list is `categories` within `class_list`; `ood` OOD categories are
    drawn with `seed` from the other classes. Writes ``out/<list_name>-<categories stem><N>.txt`` and
    ``out/<list_name>-ood<ood>.txt`` (sorted, with a header comment) and returns their paths."""
    all_classes = read_class_file(class_list)
    wanted = read_class_file(categories)
    absent = sorted(set(wanted) - set(all_classes))
    if absent:
        log.warning("%s: %d categories are not in %s: %s", categories, len(absent), class_list, absent)
    id_cats = sorted(set(wanted) & set(all_classes))
    n = ood
    ood_cats = choose_ood(set(all_classes) - set(id_cats), n, seed)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(categories).stem.lower()
    id_path = out_dir / f"{list_name}-{stem}{len(id_cats)}.txt"
    ood_path = out_dir / f"{list_name}-ood{n}.txt"
    command = (
        f"aiaic-data split --class-list {class_list} --categories {categories} --ood {n} "
        f"--seed {seed} --list-name {list_name} --out {out}"
    )
    note = _LIST_NOTES.get((Path(categories).name, len(id_cats)), "")
    id_header = [
        f"{id_path.name}: {len(id_cats)} in-distribution (ID) categories, one per line, sorted.",
        f"The classes of {Path(categories).name} that are in {Path(class_list).name}.",
        *([note] if note else []),
        f"Made by: {command}",
    ]
    ood_header = [
        f"{ood_path.name}: {n} out-of-distribution (OOD) categories, one per line, sorted.",
        f"Drawn with seed {seed} by aiaic.data.categories.choose_ood (random.Random(seed).sample) from",
        f"the {len(all_classes) - len(id_cats)} classes of {Path(class_list).name} outside {id_path.name}.",
        f"Made by: {command}",
    ]
    for path, header, names in ((id_path, id_header, id_cats), (ood_path, ood_header, ood_cats)):
        write_text_atomic(path, "".join(f"# {h}\n" for h in header) + "".join(f"{c}\n" for c in names))
    return [id_path, ood_path]


def write_video_id_list(annotations: Path, out: Path) -> Path:
    """Write the sorted, unique video ids of an id list or AVE ``Annotations.txt`` to `out`, with a header
    comment (``manifests/ave-video-ids.txt``, the `holdout_ids` of pipelines/vggsound.toml)."""
    ids = sorted(read_video_ids(annotations))
    out = Path(out)
    header = [
        f"{out.name}: {len(ids)} video ids of {Path(annotations).name}, one per line, sorted.",
        "Used as [split] holdout_ids: a clip of another dataset with one of these ids is kept out of train.",
        'Made by: python -c "from aiaic.data.categories import write_video_id_list as w; '
        f"w('{annotations}', '{out}')\"",
    ]
    write_text_atomic(out, "".join(f"# {h}\n" for h in header) + "".join(f"{i}\n" for i in ids))
    return out
