"""Reading an extraction output (`aiaic-data extract --out`): index.csv, recipe.json and its done shards.

    src = load_raw(Path("shards/raw"))      # checks the files, parses index.csv
    tars = TarIndex(); sample = tars.read(src.root / src.index.shard[0], src.index.key[0])  # aiaic.data.tars

Every problem raises `InputError` naming the file and the reason.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from aiaic.data.audio import MelConfig
from aiaic.data.writer import INDEX_COLUMNS
from aiaic.errors import InputError

log = logging.getLogger(__name__)

_NULLS = {"", "none", "null", "nan"}


@dataclass
class RawSource:
    """One raw extraction output: its folder, recipe.json content, index rows and done shards."""

    root: Path
    recipe: dict
    index: pd.DataFrame
    shards: list[str]


def _parse_bool(path: Path, column: str, values: pd.Series) -> pd.Series:
    mapping = {"true": True, "1": True, "false": False, "0": False}
    low = values.str.strip().str.lower()
    bad = sorted(set(low) - set(mapping))
    if bad:
        raise InputError(path, f"column {column!r} holds non-boolean values {bad[:5]}")
    return low.map(mapping).astype(bool)


def load_raw(root: Path) -> RawSource:
    """Read and check a raw extraction output (`aiaic.data.writer`); raises InputError naming the file."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "source folder not found")
    tars = sorted(p.name for p in root.glob("*.tar"))
    if not tars:
        raise InputError(root, "no shards (*.tar) in this folder: run `aiaic-data extract --out` here first")
    index_path, recipe_path = root / "index.csv", root / "recipe.json"
    for p in (index_path, recipe_path):
        if not p.is_file():
            raise InputError(p, "missing: not a complete `aiaic-data extract` output")
    try:
        recipe = json.loads(recipe_path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(recipe_path, f"not valid JSON: {e}") from e
    df = pd.read_csv(index_path, dtype=str, keep_default_na=False)
    missing = [c for c in INDEX_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(index_path, f"missing columns {missing}; has {list(df.columns)}")
    if df.empty:
        raise InputError(index_path, "no samples listed")
    done = {t for t in tars if (root / f"{Path(t).stem}.stats.json").is_file()}
    unfinished = sorted(set(tars) - done)
    if unfinished:
        log.warning(
            "%s: %d shards have no stats file (unfinished) and are ignored: %s",
            root,
            len(unfinished),
            unfinished[:5],
        )
    bad_shards = sorted(set(df["shard"]) - done)
    if bad_shards:
        raise InputError(
            index_path, f"lists samples in shards that are missing or unfinished: {bad_shards[:5]}"
        )
    dup = df["key"][df["key"].duplicated()].unique().tolist()
    if dup:
        raise InputError(index_path, f"sample keys listed twice: {dup[:5]}")
    try:
        df["label_id"] = df["label_id"].astype(int)
        df["segment"] = df["segment"].astype(int)
    except ValueError as e:
        raise InputError(index_path, f"label_id/segment must be integers: {e}") from e
    df["in_event"] = _parse_bool(index_path, "in_event", df["in_event"])
    df["has_audio"] = _parse_bool(index_path, "has_audio", df["has_audio"])
    df["split"] = df["split"].map(lambda s: None if s.strip().lower() in _NULLS else s.strip().lower())
    df["dataset"] = df["dataset"].str.strip().str.lower()
    df["src"] = str(root)
    return RawSource(root=root, recipe=recipe, index=df, shards=sorted(set(df["shard"])))


def mel_config_of(recipe: dict, path: Path) -> dict:
    """The MelConfig dict recorded in a raw recipe.json (any nested table with MelConfig's fields)."""
    want = set(MelConfig().to_dict())
    stack = [recipe]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            if want <= set(node):
                return {k: node[k] for k in MelConfig().to_dict()}
            stack += list(node.values())
    raise InputError(path, "recipe.json holds no mel configuration (MelConfig fields)")
