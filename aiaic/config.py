"""Recipes (`pipelines/*.toml`) and typed, frozen config dataclasses.

A recipe is a TOML file with one table per concern: `[extract]`, `[split]`, `[model]`, `[train]`
(shared training settings) and `[train.<stage>]`, `[loader]`, `[eval]`, `[colorize]`. A command builds
its config from the recipe's table, then applies the flags the user gave (a flag left at None does not
override). Unknown keys are errors, never silently ignored. The resulting config is saved beside
every output (`config_to_dict`) and identified by `recipe_hash`.

Declaring a table's settings: a frozen dataclass whose fields are the table's keys. A setting that has
no default is marked with `required(flag)`, so a missing one is reported with the flag and the recipe
key that give it:

    @dataclass(frozen=True)
    class TrainConfig:
        shards: Path = required("--shards")
        image_size: int = 128

A relative path given in a recipe is taken relative to the recipe file's folder (a flag's relative
path stays relative to the working directory). Every bad setting raises `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from aiaic.errors import ConfigError
from aiaic.io import write_json_atomic

T = TypeVar("T")


_REQUIRED_FLAG = "aiaic_required_flag"


def required(flag: str) -> Any:
    """A dataclass field with no default that the user must give, as `flag` or as the recipe key.

    `build_config` reports it missing as a ConfigError naming both, e.g. "give --shards or set
    `shards` in the recipe's [train] table".
    """
    return dataclasses.field(metadata={_REQUIRED_FLAG: flag})


class Recipe(dict):
    """A parsed recipe: its tables, and `folder`, the recipe file's folder (None: no file)."""

    def __init__(self, tables: Mapping[str, Any] | None = None, folder: Path | None = None):
        super().__init__(tables or {})
        self.folder = folder


class RecipeSection(dict):
    """The settings of one recipe table: `name` ("train.stage1"), `folder` for its relative paths."""

    def __init__(
        self, items: Mapping[str, Any] | None = None, name: str | None = None, folder: Path | None = None
    ):
        super().__init__(items or {})
        self.name = name
        self.folder = folder

    def subset(self, keys: Iterable[str]) -> RecipeSection:
        """The entries whose key is in `keys`, with the same name and folder."""
        wanted = set(keys)
        return RecipeSection({k: v for k, v in self.items() if k in wanted}, self.name, self.folder)


def load_recipe(path: str | Path | None) -> Recipe:
    """Read a TOML recipe; None gives an empty recipe (all defaults)."""
    if path is None:
        return Recipe()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: recipe file not found")
    try:
        with p.open("rb") as f:
            return Recipe(tomllib.load(f), folder=p.resolve().parent)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the recipe: {e.strerror or e}") from e


def recipe_section(recipe: Mapping[str, Any], name: str) -> RecipeSection:
    """The table `name` (dotted for nesting, e.g. "train.stage1"); empty when absent.

    Nested tables inside the returned section are dropped, so `[train]` does not carry its stage tables.
    """
    folder = recipe.folder if isinstance(recipe, Recipe) else None
    node: Any = recipe
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return RecipeSection(name=name, folder=folder)
        node = node[part]
    if not isinstance(node, Mapping):
        raise ConfigError(f"recipe entry [{name}] is not a table")
    return RecipeSection({k: v for k, v in node.items() if not isinstance(v, Mapping)}, name, folder)


# scalar type -> (accepts the value, what it expects, conversion)
_SCALARS: dict[Any, tuple[Callable[[Any], bool], str, Callable[[Any], Any]]] = {
    Path: (lambda v: isinstance(v, (str, Path)), "a path", Path),
    bool: (lambda v: isinstance(v, bool), "true/false", lambda v: v),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", lambda v: v),
    float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number", float),
    str: (lambda v: isinstance(v, str), "a string", lambda v: v),
}


def _coerce(name: str, tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        for a in args:
            try:
                return _coerce(name, a, value)
            except ConfigError:
                continue
        raise ConfigError(f"{name}: cannot use {value!r} as {tp}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{name}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (tuple, list):
        return _coerce_sequence(name, tp, value)
    if tp in _SCALARS:
        accepts, expected, convert = _SCALARS[tp]
        if not accepts(value):
            raise ConfigError(f"{name}: expected {expected}, got {value!r}")
        return convert(value)
    return value  # Any, and types without a check


def _coerce_sequence(name: str, tp: Any, value: Any) -> list | tuple:
    """A list or tuple field: a list, or a comma-separated string, each item coerced."""
    type_args = typing.get_args(tp)
    inner = type_args[0] if type_args else Any
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name}: expected a list, got {value!r}")
    items = [_coerce(name, inner, v) for v in value]
    return tuple(items) if typing.get_origin(tp) is tuple else items


def _relative_to(value: Any, folder: Path) -> Any:
    """`value` with every relative Path in it (also inside tuples and lists) joined onto `folder`."""
    if isinstance(value, Path):
        value = value.expanduser()
        return value if value.is_absolute() else Path(os.path.normpath(folder / value))
    if isinstance(value, (tuple, list)):
        return type(value)(_relative_to(v, folder) for v in value)
    return value


def _missing_required(
    cls: type, fields: Mapping[str, dataclasses.Field], given: Mapping[str, Any], table: str | None
) -> None:
    missing = [f for name, f in fields.items() if _REQUIRED_FLAG in f.metadata and name not in given]
    if missing:
        where = f"the recipe's [{table}] table" if table else "the recipe"
        wants = "; ".join(f"give {f.metadata[_REQUIRED_FLAG]} or set `{f.name}` in {where}" for f in missing)
        raise ConfigError(f"{cls.__name__}: missing {', '.join(f.name for f in missing)}: {wants}")


def build_config(cls: type[T], section: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> T:
    """Build the frozen dataclass `cls` from a recipe section, then from flags (None = not given).

    A relative path in the section is joined onto its recipe's folder (`RecipeSection.folder`).
    Raises ConfigError for unknown keys, values of the wrong type, a missing `required` setting, or a
    value `__post_init__` refuses.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    table = section.name if isinstance(section, RecipeSection) else None
    folder = section.folder if isinstance(section, RecipeSection) else None
    merged: dict[str, Any] = {}
    for source_name, source in (("recipe", section), ("flags", overrides or {})):
        for key, value in source.items():
            k = key.replace("-", "_")
            if k not in fields:
                where = f" in [{table}]" if source_name == "recipe" and table else ""
                raise ConfigError(
                    f"unknown {source_name} setting '{key}'{where} for {cls.__name__}; "
                    f"known: {sorted(fields)}"
                )
            if value is None:
                continue
            merged[k] = _coerce(f"{cls.__name__}.{k}", hints[k], value)
            if source_name == "recipe" and folder is not None:
                merged[k] = _relative_to(merged[k], folder)
    _missing_required(cls, fields, merged, table)
    try:
        return cls(**merged)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cls.__name__}: {e}") from e


def config_to_dict(cfg: Any) -> Any:
    """A JSON-safe copy of a config dataclass (paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def recipe_hash(obj: Any) -> str:
    """A short stable hash (12 hex digits) of a config or mapping: canonical JSON, sha256."""
    text = json.dumps(config_to_dict(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_config_json(path: str | Path, obj: Any) -> None:
    """Write a config (or any mapping holding configs) as JSON through `config_to_dict`, atomically
    (`aiaic.io.write_json_atomic`)."""
    write_json_atomic(path, config_to_dict(obj))
