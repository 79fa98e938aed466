"""A paper recipe runs the paper's setting or stops: `paper = true` and [requires] make aiaic-train refuse
to start, before any data is read, listing every missing file with where it comes from; departures only
where the recipe says so; recipes without either key (the demo, the tests) need no file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.train_fixtures import tiny_recipe, write_recipe
from typer.testing import CliRunner

from aiaic.cli.train import app
from aiaic.config import load_recipe
from aiaic.errors import ConfigError
from aiaic.train.config import build_train_plan

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
PAPER_FILES = ("ddcolor_paper.pth", "H.pth.tar", "vgg19-dcbb9e9d.pth", "vgg16_bn-6c64b313.pth")


@pytest.fixture()
def ddc_recipe(tmp_path, monkeypatch) -> Path:
    """The DDC recipe copied into tmp/pipelines (its weights would be in tmp/weights), empty torch hub."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "pipelines").mkdir()
    shutil.copy(PIPELINES / "vggsound-ddcolor.toml", tmp_path / "pipelines")
    return tmp_path / "pipelines" / "vggsound-ddcolor.toml"


def _place(tmp_path: Path, *names: str) -> None:
    for name in names:
        folder = tmp_path / ("torch/hub/checkpoints" if name.startswith("vgg16_bn") else "weights")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"placeholder")


def _recipe(recipe_path: Path) -> dict:
    """The recipe (its DDColor-L is built on the meta device: no memory for its 228 M parameters)."""
    return load_recipe(recipe_path)


def test_the_ddc_recipe_lists_every_missing_file_at_once(ddc_recipe, tmp_path):
    with pytest.raises(ConfigError) as err:
        build_train_plan(_recipe(ddc_recipe), {"shards": "s", "out": "o"})
    text = str(err.value)
    assert "nothing was started" in text
    for name in PAPER_FILES:
        assert name in text, name
    assert "piddnad/DDColor-models" in text and "robots.ox.ac.uk" in text and "download.pytorch.org" in text
    _place(tmp_path, *PAPER_FILES[:3])
    with pytest.raises(ConfigError) as err:
        build_train_plan(_recipe(ddc_recipe), {"shards": "s", "out": "o"})
    assert "vgg16_bn-6c64b313.pth" in str(err.value) and "H.pth.tar" not in str(err.value)
    _place(tmp_path, PAPER_FILES[3])
    build_train_plan(_recipe(ddc_recipe), {"shards": "s", "out": "o"})  # everything there: it starts


def test_the_cli_stops_before_reading_any_data(ddc_recipe, tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "--config",
            str(ddc_recipe),
            "--shards",
            str(tmp_path / "no_shards"),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    text = " ".join(res.output.split())
    assert res.exit_code != 0 and "needs files that are missing" in text
    assert "ddcolor_paper.pth" in text and "vgg16_bn-6c64b313.pth" in text
    assert "manifest" not in text  # the shards were never looked at
    assert not (tmp_path / "run").exists()


def test_departures_only_where_the_recipe_says_so(ddc_recipe, tmp_path):
    _place(tmp_path, *PAPER_FILES[1:3])
    text = ddc_recipe.read_text()
    text = text.replace('backbone_weights = "../weights/ddcolor_paper.pth"\n', "")
    ddc_recipe.write_text(text)
    with pytest.raises(ConfigError, match="random_init = true") as err:
        build_train_plan(_recipe(ddc_recipe), {"shards": "s", "out": "o"})
    assert "vgg16_bn" in str(err.value)
    text = text.replace("random_init = false", "random_init = true").replace(
        "drop_terms = []", 'drop_terms = ["perceptual"]'
    )
    ddc_recipe.write_text(text)
    build_train_plan(_recipe(ddc_recipe), {"shards": "s", "out": "o"})  # both departures said explicitly


def test_a_requires_list_and_recipes_that_require_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no VGG16-BN anywhere
    plain = write_recipe(tmp_path / "plain.toml", tiny_recipe())
    plain.write_text(plain.read_text() + "[train.loss]\nhuber = 1.0\nperceptual = 1.0\n")
    build_train_plan(load_recipe(plain), {"shards": "s", "out": "o"})  # no paper key: nothing required
    build_train_plan(load_recipe(PIPELINES / "demo.toml"), {"shards": "s", "out": "o"})
    path = write_recipe(tmp_path / "req.toml", tiny_recipe())
    path.write_text(
        '[requires]\nfiles = [{ path = "nets/extra.pth", what = "my net", source = "the NAS" }]\n\n'
        + path.read_text()
    )
    with pytest.raises(ConfigError, match=r"extra.pth \(my net\): not found; get it from the NAS"):
        build_train_plan(load_recipe(path), {"shards": "s", "out": "o"})
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "extra.pth").write_bytes(b"x")
    build_train_plan(load_recipe(path), {"shards": "s", "out": "o"})  # relative to the recipe's folder
    bad = write_recipe(tmp_path / "bad.toml", {"requires": {"files_typo": []}, **tiny_recipe()})
    with pytest.raises(ConfigError, match="unknown \\[requires\\] settings"):
        build_train_plan(load_recipe(bad), {"shards": "s", "out": "o"})


@pytest.mark.parametrize(
    ("recipe", "files"),
    [
        ("vggsound-disco.toml", ("disco-beta.pth.tar", "H.pth.tar", "vgg19-dcbb9e9d.pth")),
        (
            "vggsound-chromagan.toml",
            ("my_model_colorization.h5", "H.pth.tar", "vgg19-dcbb9e9d.pth", "vgg16-397923af.pth"),
        ),
    ],
)
def test_the_discolor_and_chromagan_recipes_run_the_papers_setting_or_stop(
    recipe, files, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "pipelines").mkdir()
    shutil.copy(PIPELINES / recipe, tmp_path / "pipelines")
    with pytest.raises(ConfigError) as err:
        build_train_plan(load_recipe(tmp_path / "pipelines" / recipe), {"shards": "s", "out": "o"})
    text = str(err.value)
    assert "nothing was started" in text
    for name in files:
        assert name in text, name
