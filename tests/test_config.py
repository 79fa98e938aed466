"""Recipes and config building: required settings, paths relative to the recipe, one error type."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aiaic.cli.train import app as train_app
from aiaic.config import build_config, load_recipe, recipe_section, required
from aiaic.data.extract import ExtractConfig
from aiaic.data.split import SplitConfig
from aiaic.errors import ConfigError
from aiaic.train.config import build_train_plan

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class _Cfg:
    src: Path = required("--src")
    lists: tuple[Path, ...] = ()
    weights: Path | None = None
    name: str = "a"


def _recipe(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "recipes" / "sub"
    folder.mkdir(parents=True)
    path = folder / "r.toml"
    path.write_text(text)
    return path


def test_missing_required_setting_names_the_flag_and_the_recipe_table(tmp_path):
    section = recipe_section(load_recipe(_recipe(tmp_path, "[job]\nname = 'x'\n")), "job")
    with pytest.raises(ConfigError) as e:
        build_config(_Cfg, section)
    assert str(e.value) == "_Cfg: missing src: give --src or set `src` in the recipe's [job] table"
    assert build_config(_Cfg, section, {"src": "a"}).src == Path("a")


def test_recipe_paths_are_relative_to_the_recipe_file_and_flag_paths_are_not(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, "[job]\nsrc = 'data/v'\nlists = ['../l1.txt', '/abs/l2.txt']\n"))
    folder = (tmp_path / "recipes" / "sub").resolve()
    cfg = build_config(_Cfg, recipe_section(recipe, "job"))
    assert cfg.src == folder / "data" / "v"
    assert cfg.lists == (folder.parent / "l1.txt", Path("/abs/l2.txt"))
    assert cfg.weights is None
    flagged = build_config(_Cfg, recipe_section(recipe, "job"), {"src": "here", "weights": "w.pth"})
    assert (flagged.src, flagged.weights) == (Path("here"), Path("w.pth"))
    # a section built in code (no recipe file) keeps its paths as given
    assert build_config(_Cfg, {"src": "rel"}).src == Path("rel")


def test_shipped_vggsound_recipe_finds_its_manifests_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(ROOT / "pipelines" / "vggsound.toml")
    cfg = build_config(SplitConfig, recipe_section(recipe, "split"))
    for path in (cfg.categories, cfg.ood_list, cfg.holdout_ids):
        assert path is not None and path.is_absolute() and path.is_file(), path
    assert cfg.ood_list == ROOT / "manifests" / "vggsound-ood20.txt"


def test_every_bad_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="expected a path"):
        build_config(_Cfg, {"src": 3})
    with pytest.raises(ConfigError, match="unknown recipe setting 'sizee' in \\[extract\\]"):
        build_config(ExtractConfig, recipe_section({"extract": {"sizee": 1}}, "extract"), {"src": "a"})
    with pytest.raises(ConfigError, match="part '3/2'"):
        build_config(ExtractConfig, {"part": "3/2"}, {"src": "a", "out": "b"})
    with pytest.raises(ConfigError, match="val_fraction"):
        SplitConfig(val_fraction=1.5)
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_recipe("/nonexistent/recipe.toml")


def test_train_without_shards_says_which_flag_or_recipe_key_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="give --shards or set `shards` in the recipe's \\[train\\] table"):
        build_train_plan({}, {"out": tmp_path})
    res = CliRunner().invoke(train_app, ["--out", str(tmp_path / "run"), "--device", "cpu"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "missing shards: give --shards or set `shards` in the recipe's [train] table" in text
    assert "TypeError" not in text and "Traceback" not in text


def test_train_paths_in_a_recipe_are_relative_to_it(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, "[train]\nshards = '../split'\nout = 'runs/a'\nepochs = 2\n"))
    plan = build_train_plan(recipe, {})
    folder = (tmp_path / "recipes" / "sub").resolve()
    assert (plan.train.shards, plan.train.out) == (folder.parent / "split", folder / "runs" / "a")
    assert plan.stages["stage1"].epochs == 2


def test_loader_table_reaches_the_loader_and_is_recorded_in_the_stage_config(tmp_path):
    from support.model_configs import TINY_MODEL
    from support.split_fixtures import write_split_dir
    from support.train_fixtures import write_recipe

    from aiaic.data.loader import LoaderConfig
    from aiaic.train.runner import run_training

    split = write_split_dir(
        tmp_path / "split", classes=2, videos_per_class=2, seconds=2, size=32, shards_per_split=1
    )
    recipe = {
        "model": TINY_MODEL,
        "train": {"image_size": 32, "epochs": 1, "batch_size": 4, "log_every": 1},
        "loader": {"shuffle_buffer": 0, "flip": False, "neg_pool": 8, "train_resize": 1.25},
    }
    path = write_recipe(tmp_path / "r.toml", recipe)
    plan = build_train_plan(
        load_recipe(path), {"shards": split, "out": tmp_path / "run", "stage": "baseline", "device": "cpu"}
    )
    assert plan.loader == LoaderConfig(shuffle_buffer=0, flip=False, neg_pool=8, train_resize=1.25)
    run_training(plan)
    record = json.loads((tmp_path / "run" / "baseline" / "config.json").read_text())
    assert record["loader"]["shuffle_buffer"] == 0 and record["loader"]["flip"] is False
    assert record["loader"]["neg_pool"] == 8 and record["loader"]["train_resize"] == 1.25
    with pytest.raises(ConfigError, match=r"\[loader\] cannot set \['batch_size'\]"):
        build_train_plan({"loader": {"batch_size": 3}}, {"shards": split, "out": tmp_path / "r2"})
    with pytest.raises(ConfigError, match="neg_pool must be >= 1"):
        build_train_plan({"loader": {"neg_pool": 0}}, {"shards": split, "out": tmp_path / "r2"})
