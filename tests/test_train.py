"""The trainer: stages as data (what trains, what is frozen), run outputs, inference variants, configs.

A tiny split (support.split_fixtures) and a tiny model are trained for real through every stage once
per session; the tests read what that run wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from support.split_fixtures import write_split_dir
from support.train_fixtures import ALL_STAGES, tiny_recipe
from typer.testing import CliRunner

from aiaic.cli.train import app
from aiaic.errors import ConfigError, RunError
from aiaic.runs import checkpoint as ckpt
from aiaic.runs.inference import load_inference
from aiaic.train.config import build_train_plan
from aiaic.train.runner import run_training


@pytest.fixture(scope="session")
def tiny_split(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("split") / "split"
    return write_split_dir(root, classes=2, videos_per_class=3, seconds=4, size=32, shards_per_split=4)


def ablation_recipe() -> dict:
    """The tiny recipe with both ablation chains in "all", and half the samples masked where a stage masks."""
    recipe = tiny_recipe(ablations=["no_r", "e2e"])
    recipe["train.stage1"] = {"mask_prob": 0.5}
    recipe["train.e2e"] = {"mask_prob": 0.5}
    return recipe


def nested(recipe: dict) -> dict:
    """{"train.stage1": {...}} tables as TOML nests them: {"train": {"stage1": {...}}}."""
    out: dict = {}
    for table, values in recipe.items():
        node = out
        for part in table.split("."):
            node = node.setdefault(part, {})
        node.update(values)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_split, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    plan = build_train_plan(
        nested(ablation_recipe()), {"shards": tiny_split, "out": out, "stage": "all", "device": "cpu"}
    )
    assert plan.train.stages() == ALL_STAGES
    run_training(plan)
    return out


def _weights(run: Path, stage: str) -> dict[str, torch.Tensor]:
    return load_file(str(run / stage / ckpt.WEIGHTS))


def _changed(a: dict, b: dict) -> set[str]:
    """Top-level components with any tensor (parameter or buffer) that differs."""
    assert a.keys() == b.keys()
    return {k.split(".")[0] for k in a if not torch.equal(a[k], b[k])}


def test_each_stage_changes_exactly_what_it_trains(tiny_run):
    s1, s2, rn, s3 = (_weights(tiny_run, s) for s in ("stage1", "stage2", "rnet", "stage3"))
    assert _changed(s1, s2) == {"audio", "a2v"}  # E_s frozen in stage 2
    assert _changed(s2, rn) == {"relevance"}
    # stage 3: no backbone weight (nor BatchNorm statistic) moves, E_s frozen; only A2V learns
    assert _changed(rn, s3) == {"a2v"}
    backbone = [k for k in s3 if k.startswith("backbone.")]
    assert any(k.endswith("running_mean") for k in backbone)
    assert all(torch.equal(rn[k], s3[k]) for k in backbone)
    assert all(torch.equal(rn[k], s3[k]) for k in s3 if k.startswith("semantic."))
    # the stages without a predecessor start from the same initial weights: what the baseline does not
    # train is still the initial value, and each of them differs from it in exactly what it trains
    base, e2e = _weights(tiny_run, "baseline"), _weights(tiny_run, "e2e")
    assert _changed(base, s1) == {"backbone", "semantic", "condition", "guidance"}
    assert _changed(base, e2e) == {"backbone", "audio", "a2v", "condition", "guidance", "relevance"}
    n1, n2, n3 = (_weights(tiny_run, s) for s in ("no_r_stage1", "no_r_stage2", "no_r_stage3"))
    assert _changed(base, n1) == {"backbone", "semantic", "condition", "guidance"}
    assert _changed(s1, n1) == {"backbone", "semantic", "condition", "guidance"}  # its own model
    assert _changed(n1, n2) == {"audio", "a2v"}
    assert _changed(n2, n3) == {"a2v"}  # no relevance net in the w/o-r model: it stays at its initial value
    assert all(torch.equal(base[k], n3[k]) for k in n3 if k.startswith("relevance."))


def test_run_directory_contents(tiny_run, tiny_split):
    manifest = json.loads((tiny_split / "manifest.json").read_text())
    for stage in ALL_STAGES:
        d = tiny_run / stage
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["complete"] is True and cfg["image_size"] == 32 and cfg["stage"] == stage
        assert cfg["mel_mean"] == pytest.approx(manifest["audio_stats"]["mel_mean"])
        assert cfg["mel_std"] == pytest.approx(manifest["audio_stats"]["mel_std"])
        assert cfg["mel_config"] == manifest["mel_config"]
        assert cfg["model"]["backbone_options"]["base_channels"] == 8 and cfg["train"]["epochs"] == 2
        assert (d / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        state = torch.load(d / ckpt.STATE, weights_only=True)
        assert state["step"] == cfg["steps"] == 2 * (16 // 4)  # 16 train samples, batch 4, 2 epochs
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        train_rows = [r for r in rows if r.get("split") is None]
        assert [r["step"] for r in train_rows] == list(range(1, 9))
        for r in train_rows:
            assert {"step", "epoch", "loss", "lr", "samples_per_s", "world_size"} <= r.keys()
            assert r["world_size"] == 1 and r["lr"] == pytest.approx(1e-3) and r["samples_per_s"] > 0
        assert [r["epoch"] for r in train_rows] == [0] * 4 + [1] * 4
        assert any(r.get("split") == "val" for r in rows)
        if stage in ("stage1", "stage3", "e2e", "no_r_stage1", "no_r_stage3"):
            assert all("r_mean" in r for r in train_rows)
        if stage in ("stage2", "no_r_stage2"):
            assert all("semantic_loss" in r for r in train_rows)
        if stage in ("rnet", "e2e"):
            assert all({"r_true", "r_other", "bce"} <= r.keys() for r in train_rows)
    r_mean = {
        s: [r["r_mean"] for r in _train_rows(tiny_run, s)]
        for s in ("stage1", "e2e", "no_r_stage1", "no_r_stage3")
    }
    # stage 1 masks about half the samples (r = 0); the w/o-r model inherits [train.stage1] (mask_prob
    # 0.5 here) but never masks: SG, r = 1 for every sample
    assert 0.2 < sum(r_mean["stage1"]) / len(r_mean["stage1"]) < 0.8
    assert r_mean["no_r_stage1"] == [1.0] * 8 and r_mean["no_r_stage3"] == [1.0] * 8
    # e2e: r from its relevance net (strictly inside (0, 1)), 0 for the masked share
    assert all(0.0 < r < 0.9 for r in r_mean["e2e"])


def _train_rows(run: Path, stage: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / stage / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("split") is None and "event" not in r]


def test_complete_stages_are_skipped_and_unfinished_ones_need_resume(tiny_run, tiny_split):
    before = (tiny_run / "stage1" / "metrics.jsonl").read_text()
    flags = {"shards": tiny_split, "out": tiny_run, "stage": "all", "device": "cpu"}
    plan = build_train_plan(nested(ablation_recipe()), flags)
    results = run_training(plan)
    assert [r.status for r in results] == ["skipped"] * 9
    assert [r.stage for r in results] == list(ALL_STAGES)
    assert (tiny_run / "stage1" / "metrics.jsonl").read_text() == before
    # a stage that needs an unfinished predecessor says which
    plan3 = build_train_plan(
        tiny_recipe(), {"shards": tiny_split, "out": tiny_run.parent / "empty", "stage": "3", "device": "cpu"}
    )
    with pytest.raises(RunError, match="starts from rnet, which is not complete"):
        run_training(plan3)


def test_inference_variants(tiny_run, tiny_split):
    from aiaic.data.loader import LoaderConfig, make_loader, open_split

    batch = next(
        iter(
            make_loader(open_split(tiny_split, "val"), LoaderConfig(image_size=32, batch_size=8, train=False))
        )
    )
    L, mel = batch["L"], batch["mel"]
    has = torch.tensor([True, False] * 4)
    full = load_inference(tiny_run, "full", "cpu")
    assert full.image_size == 32 and full.mel_mean.shape == (64,) and full.mel_config.n_mels == 64
    assert full.variant == "full" and not full.model.training
    ab, r = full.predict(L, mel, has)
    assert ab.shape == (8, 2, 32, 32) and r.shape == (8,)
    assert (r[~has] == 0).all() and ((r[has] > 0) & (r[has] < 1)).all()
    plain = full.model(L)
    torch.testing.assert_close(ab[~has], plain[~has])  # no audio: r = 0 is the plain backbone

    for name in ("full_missing_audio", "missing_audio"):  # the old name still works
        missing = load_inference(tiny_run, name, "cpu")
        ab_m, r_m = missing.predict(L, mel, has)
        assert missing.variant == "full_missing_audio" and torch.equal(r_m, torch.zeros(8))
        torch.testing.assert_close(ab_m, plain)
    # w/o r: its own model (no_r_stage3), r = 1 where audio exists
    no_r = load_inference(tiny_run, "no_r", "cpu")
    assert no_r.stage_dir.name == "no_r_stage3"
    ab_n, r_n = no_r.predict(L, mel, has)
    assert torch.equal(r_n, has.float())
    plain_no_r = no_r.model(L)
    torch.testing.assert_close(ab_n[~has], plain_no_r[~has])
    assert not torch.allclose(ab_n[has], plain_no_r[has])
    # w/o r with the audio missing: a silent second for every sample, r = 1, whatever audio was given
    silent = load_inference(tiny_run, "no_r_missing_audio", "cpu")
    ab_s, r_s = silent.predict(L, mel, has)
    assert torch.equal(r_s, torch.ones(8))
    silence = silent.normalize_mel(torch.full((64, 97), float(np.log(0.01))))[None, None].expand(8, 1, 64, 97)
    ab_expected, _ = no_r.predict(L, silence, torch.ones(8, dtype=torch.bool))
    torch.testing.assert_close(ab_s, ab_expected)
    torch.testing.assert_close(silent.predict(L, None, None)[0], ab_expected)
    e2e = load_inference(tiny_run, "e2e", "cpu")
    _, r_none = e2e.predict(L, None, None)
    assert torch.equal(r_none, torch.zeros(8))
    _, r_e2e = e2e.predict(L, mel, has)  # e2e keeps the relevance mechanism: r from its relevance net
    assert (r_e2e[~has] == 0).all() and ((r_e2e[has] > 0) & (r_e2e[has] < 1)).all()
    base = load_inference(tiny_run, "baseline", "cpu")
    ab_b, r_b = base.predict(L, mel, has)
    assert torch.equal(r_b, torch.zeros(8)) and not torch.allclose(ab_b, plain)
    raw = torch.randn(3, 64, 97)
    expected = (raw - full.mel_mean[:, None]) / full.mel_std[:, None]
    torch.testing.assert_close(full.normalize_mel(raw), expected)


def test_load_inference_names_the_missing_stage(tmp_path, tiny_run):
    with pytest.raises(RunError, match="'e2e'.*missing"):
        load_inference(tmp_path, "e2e", "cpu")
    with pytest.raises(RunError, match="'stage3'"):
        load_inference(tmp_path, "full", "cpu")
    with pytest.raises(RunError, match="'no_r_stage3'.*missing.*--stage no_r"):
        load_inference(tmp_path, "no_r_missing_audio", "cpu")
    with pytest.raises(RunError, match="unknown variant"):
        load_inference(tiny_run, "colour", "cpu")


def test_train_plan_from_recipe_and_flags(tmp_path):
    recipe = {
        "model": {"backbone_options": {"base_channels": 16}},
        "train": {"epochs": 3, "lr": 0.002, "image_size": 64, "stage2": {"lr": 0.01, "batch_size": 64}},
    }
    plan = build_train_plan(recipe, {"shards": tmp_path, "out": tmp_path / "r"})
    assert plan.model.options().base_channels == 16 and plan.train.image_size == 64
    assert plan.stages["stage1"].epochs == 3 and plan.stages["stage1"].lr == 0.002
    assert plan.stages["stage2"].lr == 0.01 and plan.stages["stage2"].batch_size == 64
    assert plan.train.stages() == ("baseline", "stage1", "stage2", "rnet", "stage3")
    flagged = build_train_plan(
        recipe,
        {"shards": tmp_path, "out": tmp_path, "epochs": 5, "lr": 1e-4, "stage": "3", "backbone": "unet"},
    )
    assert all(s.epochs == 5 and s.lr == 1e-4 for s in flagged.stages.values())
    assert flagged.train.stages() == ("stage3",)
    # the w/o-r chain: --stage no_r trains its three stages; its stages inherit [train.stageN], then
    # their own table; "all" appends the chains the recipe's `ablations` names
    recipe["train"].update(
        {"stage1": {"mask_prob": 0.5, "epochs": 7}, "no_r_stage2": {"lr": 0.02}, "ablations": ["no_r", "e2e"]}
    )
    plan = build_train_plan(recipe, {"shards": tmp_path, "out": tmp_path, "stage": "no_r"})
    assert plan.train.stages() == ("no_r_stage1", "no_r_stage2", "no_r_stage3")
    assert plan.stages["no_r_stage1"].epochs == 7 and plan.stages["no_r_stage1"].mask_prob == 0.5
    assert plan.stages["no_r_stage2"].lr == 0.02 and plan.stages["no_r_stage2"].batch_size == 64
    assert plan.stages["no_r_stage3"].epochs == 3 and plan.stages["e2e"].epochs == 3
    assert build_train_plan(recipe, {"shards": tmp_path, "out": tmp_path}).train.stages() == ALL_STAGES
    with pytest.raises(ConfigError, match="unknown ablations \\['no_multi'\\]"):
        build_train_plan({"train": {"ablations": ["no_multi"]}}, {"shards": tmp_path, "out": tmp_path})
    with pytest.raises(ConfigError, match="unknown \\[train\\] settings \\['epoch'\\]"):
        build_train_plan({"train": {"epoch": 3}}, {"shards": tmp_path, "out": tmp_path})
    with pytest.raises(ConfigError, match="stage4"):
        build_train_plan({"train": {"stage4": {"lr": 1.0}}}, {"shards": tmp_path, "out": tmp_path})
    with pytest.raises(ConfigError, match="multiple of"):
        build_train_plan({}, {"shards": tmp_path, "out": tmp_path, "image_size": 60})
    with pytest.raises(ConfigError, match="stage"):
        build_train_plan({}, {"shards": tmp_path, "out": tmp_path, "stage": "7"})


def test_cli_reports_bad_input_clearly(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        app, ["--shards", str(tmp_path / "nope"), "--out", str(tmp_path / "r"), "--device", "cpu"]
    )
    assert res.exit_code == 2
    assert "nope: no manifest.json: not a split directory" in " ".join(res.output.split())
    res = runner.invoke(app, ["--shards", str(tmp_path), "--out", str(tmp_path), "--stage", "4"])
    assert res.exit_code == 2 and "'4' is not one of" in " ".join(res.output.split())


def test_recipes_build_valid_plans(tmp_path):
    import shutil

    from aiaic.config import load_recipe

    root = Path(__file__).resolve().parents[1] / "pipelines"
    recipe_dir = tmp_path / "pipelines"  # the paper recipes name weight files relative to their folder
    recipe_dir.mkdir()
    for name in ("vggsound", "ave", "demo"):
        shutil.copy(root / f"{name}.toml", recipe_dir)
    for name in ("vggsound", "ave"):
        for key in ("vggsound_weights", "vgg19_weights"):
            target = recipe_dir / load_recipe(root / f"{name}.toml")["model"][key]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"placeholder")
    for name in ("vggsound", "ave", "demo"):
        plan = build_train_plan(load_recipe(recipe_dir / f"{name}.toml"), {"shards": "s", "out": "o"})
        assert plan.stages["stage1"].mask_prob > 0
    vgg = build_train_plan(load_recipe(recipe_dir / "vggsound.toml"), {"shards": "s", "out": "o"})
    # the paper's schedule
    assert (vgg.stages["stage1"].epochs, vgg.stages["stage1"].batch_size) == (20, 16)
    s2 = vgg.stages["stage2"]
    assert (s2.epochs, s2.batch_size, s2.lr) == (20, 64, 1e-3)
    assert vgg.stages["stage2"].optimizer == "adam"
    assert (vgg.stages["stage3"].epochs, vgg.stages["stage3"].batch_size) == (10, 16)
    demo = build_train_plan(load_recipe(root / "demo.toml"), {"shards": "s", "out": "o"})
    assert demo.train.image_size == 64
    # the from-scratch colour stages train twice as long as the others, all four equally long
    assert {n: s.epochs for n, s in demo.stages.items()} == {
        "baseline": 16,
        "stage1": 16,
        "stage2": 8,
        "rnet": 8,
        "stage3": 8,
        "e2e": 16,
        "no_r_stage1": 16,
        "no_r_stage2": 8,
        "no_r_stage3": 8,
    }
    # "all" trains Table 2's ablations in every recipe, the w/o-r stages with their stage's settings
    for name in ("vggsound", "ave", "demo"):
        plan = build_train_plan(load_recipe(recipe_dir / f"{name}.toml"), {"shards": "s", "out": "o"})
        assert plan.train.stages()[-4:] == ("no_r_stage1", "no_r_stage2", "no_r_stage3", "e2e")
        for n in (1, 2, 3):
            a, b = plan.stages[f"stage{n}"], plan.stages[f"no_r_stage{n}"]
            assert (a.epochs, a.batch_size, a.lr) == (b.epochs, b.batch_size, b.lr)


def test_checkpoint_commit_survives_a_crash_between_renames(tmp_path):
    from safetensors.torch import save_file

    from aiaic.models.semantic import ConditionMLP

    d = tmp_path / "stage"
    d.mkdir()
    old, new = ConditionMLP(4, 4), ConditionMLP(4, 4)
    ckpt.save_checkpoint(d, old, {"step": 2}, "x")
    # the process died after writing step 4's temporary files and commit note, before the renames
    save_file(ckpt.model_tensors(new), str(d / ".model.safetensors.tmp"), metadata={"step": "4"})
    torch.save({"step": 4}, d / ".state.pt.tmp")
    (d / ".commit.json").write_text(json.dumps({"step": 4}))
    loaded = ConditionMLP(4, 4)
    ckpt.recover(d)
    assert ckpt.load_checkpoint(d, loaded)["step"] == 4
    assert torch.equal(loaded.net[0].weight, new.net[0].weight)
    assert not (d / ".commit.json").exists() and not (d / ".state.pt.tmp").exists()
    # died before the commit note: the temporary files are dropped, the previous pair stays
    save_file(ckpt.model_tensors(old), str(d / ".model.safetensors.tmp"), metadata={"step": "6"})
    torch.save({"step": 6}, d / ".state.pt.tmp")
    ckpt.recover(d)
    assert ckpt.load_checkpoint(d, loaded)["step"] == 4
    assert not (d / ".model.safetensors.tmp").exists()
    # a weights file and a state from different steps are refused
    torch.save({"step": 3}, d / ckpt.STATE)
    with pytest.raises(RunError, match="inconsistent"):
        ckpt.load_checkpoint(d, loaded)


def test_rng_state_roundtrip_through_weights_only_load(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    torch.save({"rng": ckpt.rng_state()}, tmp_path / "s.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    ckpt.set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]
