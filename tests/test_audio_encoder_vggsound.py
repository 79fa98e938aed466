"""E_a from the VGGSound ResNet-18: a checkpoint in the official layout initialises E_a, the loader
feeds it the VGGSound spectrogram, stage 2 trains from it, and recipes name their weight files.

The checkpoint is built from ../shared/reference/vggsound-resnet18.state_dict.json (the official
layout, recorded from the real model) with random values; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from support.model_configs import TINY_MODEL

from aiaic.config import load_recipe
from aiaic.data.loader import LoaderConfig, make_loader, open_split
from aiaic.data.spectrogram import vggsound_spectrogram
from aiaic.demo.shards import tone, video_id, write_split_dir
from aiaic.errors import ConfigError
from aiaic.models.audio import AudioEncoder
from aiaic.models.colorizer import build_colorizer
from aiaic.models.config import ModelConfig
from aiaic.models.pretrained import load_audio_encoder
from aiaic.runs import checkpoint as ckpt
from aiaic.runs.inference import load_inference
from aiaic.train.config import StageConfig, build_train_plan
from aiaic.train.objectives import StageObjective
from aiaic.train.runner import run_training
from aiaic.train.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data")).parent / "reference"


def _layout() -> dict[str, list[int]]:
    path = REFERENCE / "vggsound-resnet18.state_dict.json"
    if not path.is_file():
        pytest.skip(f"reference layout {path} not found")
    return json.loads(path.read_text())["state_dict"]


def write_vggsound_checkpoint(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random checkpoint in the official layout: {"model_state_dict": {"audnet.*": ...}} with every
    key of the reference (the 309-class fc included). Values like a trained network's scale (He-scaled
    convs, BatchNorm near identity) so features carry the input through; BatchNorm counters at 7."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in _layout().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif len(shape) == 4:  # conv
            state[key] = torch.randn(shape, generator=g) * (2.0 / (shape[1] * shape[2] * shape[3])) ** 0.5
        elif key.endswith(("bn1.weight", "bn2.weight")) or ".downsample.1.weight" in key:
            state[key] = 1.0 + 0.02 * torch.randn(shape, generator=g)
        else:  # BatchNorm biases and running means, the classifier
            state[key] = 0.05 * torch.randn(shape, generator=g)
    torch.save({"model_state_dict": state}, path)
    return state


def test_official_layout_loads_into_e_a(tmp_path):
    layout = _layout()
    path = tmp_path / "H.pth.tar"
    state = write_vggsound_checkpoint(path)
    assert set(state) == set(layout) and "audnet.fc.weight" in state and len(state) == 122
    model = build_colorizer(ModelConfig(**TINY_MODEL, audio_encoder="vggsound", vggsound_weights=path))
    assert model.config.audio_input == "spec" and model.config.relevance_audio_input == "spec"
    lines = load_audio_encoder(model)
    assert "E_a: VGGSound ResNet-18" in lines[0]
    own = model.audio.net.state_dict()
    # every key of the reference but the classifier lands in E_a, value for value
    expected = {k.removeprefix("audnet."): v for k, v in state.items() if not k.startswith("audnet.fc.")}
    assert set(own) == set(expected)
    assert all(torch.equal(own[k], v) for k, v in expected.items())
    # the scratch E_a is left alone
    scratch = build_colorizer(ModelConfig(**TINY_MODEL))
    assert load_audio_encoder(scratch) == [] and scratch.config.audio_input == "mel"


def test_loader_batches_carry_the_spectrogram_of_pcm(tmp_path):
    root = write_split_dir(
        tmp_path / "split",
        classes=2,
        videos_per_class=3,
        seconds=2,
        size=32,
        shards_per_split=2,
        with_pcm=True,
    )
    spec_cfg = ModelConfig(
        audio_encoder="vggsound", vggsound_weights=Path("x"), spec_tile_seconds=1.0
    ).spectrogram
    cfg = LoaderConfig(image_size=32, batch_size=4, train=False, spectrogram=spec_cfg, neg_pool=4)
    with make_loader(open_split(root, "train"), cfg) as loader:
        batch = next(iter(loader))
    assert batch["spec"].shape == (4, 1, 257, 98) and batch["neg_spec"].shape == (4, 1, 257, 98)
    assert batch["mel"].shape == (4, 1, 64, 97)  # the log-mel path is unchanged
    for i, key in enumerate(batch["key"]):
        vid, t = batch["video_id"][i], int(key.rsplit("_s", 1)[1])
        c, v = next((c, v) for c in range(2) for v in range(3) if video_id(c, v) == vid)
        want = vggsound_spectrogram(torch.from_numpy(tone(c, v, t, 3)), spec_cfg)[0]
        assert torch.allclose(batch["spec"][i], want, atol=1e-5)
        assert not torch.allclose(batch["neg_spec"][i], want, atol=1e-2)  # audio of another video

    # E_a from scratch on the log-mel with a VGGSound E_a' on the spectrogram: each reads its own field
    weights = tmp_path / "H.pth.tar"
    write_vggsound_checkpoint(weights)
    cfg_m = ModelConfig(
        **TINY_MODEL, relevance_audio_encoder="vggsound", vggsound_weights=weights, spec_tile_seconds=1.0
    )
    assert (cfg_m.audio_input, cfg_m.relevance_audio_input, cfg_m.audio_inputs) == (
        "mel",
        "spec",
        ("mel", "spec"),
    )
    model = build_colorizer(cfg_m).eval()
    with torch.no_grad():
        out = StageObjective(model, STAGES["rnet"], StageConfig())(batch)
        logits = model.relevance.logits(
            model.relevance_audio(torch.cat([batch["spec"], batch["neg_spec"]])),
            model.relevance_image_features(batch["L"]).repeat(2, 1),
        )
        target = torch.cat([torch.ones(4), torch.zeros(4)])
        want_bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        assert torch.allclose(out["bce"], want_bce, atol=1e-6)
        f_a = StageObjective(model, STAGES["stage2"], StageConfig())(batch)
        assert torch.isfinite(f_a["loss"])  # E_a read the [B, 1, 64, 97] log-mel


@pytest.fixture(scope="module")
def vggsound_run(tmp_path_factory) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    """(run dir, split dir, checkpoint state): stages 1, 2, rnet and 3 of a tiny model whose E_a and
    E_a' both start from a random checkpoint in the official VGGSound layout (spectrogram of 1 s)."""
    root = tmp_path_factory.mktemp("vggsound_run")
    split = write_split_dir(
        root / "split", classes=2, videos_per_class=3, seconds=4, size=32, shards_per_split=2, with_pcm=True
    )
    weights = root / "H.pth.tar"
    state = write_vggsound_checkpoint(weights)
    model = {
        **TINY_MODEL,
        "audio_encoder": "vggsound",
        "vggsound_weights": str(weights),
        "relevance_audio_encoder": "vggsound",
        "spec_tile_seconds": 1.0,
    }
    recipe = {
        "model": model,
        "train": {
            "image_size": 32,
            "epochs": 1,
            "batch_size": 4,
            "lr": 1e-3,
            "log_every": 1,
            "stage2": {"epochs": 3, "lr": 3e-4},
        },
    }
    out = root / "run"
    for stage in ("1", "2", "rnet", "3"):
        plan = build_train_plan(recipe, {"shards": split, "out": out, "stage": stage, "device": "cpu"})
        run_training(plan)
    return out, split, state


@pytest.mark.slow
def test_stage2_starts_from_the_file_and_learns(vggsound_run):
    out, _, state = vggsound_run
    s1 = load_file(str(out / "stage1" / ckpt.WEIGHTS))
    s2 = load_file(str(out / "stage2" / ckpt.WEIGHTS))
    config = json.loads((out / "stage2" / "config.json").read_text())
    n = config["steps"]
    assert n == 12  # 3 epochs x 4 batches
    # E_a began at the file, not at stage 1's random E_a: every BatchNorm counter is the file's 7 plus
    # the steps of stage 2, and the conv weights moved by at most Adam's step bound
    assert int(s2["audio.net.bn1.num_batches_tracked"]) == 7 + n
    assert int(s1["audio.net.bn1.num_batches_tracked"]) == 0
    drift = (s2["audio.net.conv1.weight"] - state["audnet.conv1.weight"]).abs().max().item()
    assert drift <= 3e-4 * n * 1.1
    assert (s1["audio.net.conv1.weight"] - state["audnet.conv1.weight"]).abs().max().item() > 0.05
    assert any("E_a: VGGSound ResNet-18 from" in line for line in config["encoders"])
    assert config["spec_config"]["length_samples"] == 16000
    rows = [json.loads(line) for line in (out / "stage2" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["semantic_loss"] for r in rows if "semantic_loss" in r]
    assert len(losses) >= n and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    # the relevance net's E_a' is the file's network, frozen (its counters never moved)
    rn = load_file(str(out / "rnet" / ckpt.WEIGHTS))
    assert torch.equal(rn["relevance_audio.net.conv1.weight"], state["audnet.conv1.weight"])
    assert int(rn["relevance_audio.net.bn1.num_batches_tracked"]) == 7


@pytest.mark.slow
def test_inference_feeds_e_a_the_spectrogram_training_saw(vggsound_run):
    out, split, _ = vggsound_run
    model = load_inference(out, "full", "cpu")
    spec_cfg = model.model.config.spectrogram
    assert spec_cfg is not None and spec_cfg.shape == (257, 98)
    pcm = [tone(0, 0, 1, 3), tone(1, 0, 1, 3), None]
    audio = model.audio_input(pcm)
    assert audio["spec"].shape == (3, 1, 257, 98) and audio["mel"].shape == (3, 1, 64, 97)
    # the loader's spectrogram of the same sample (what stages 2, rnet and 3 trained on)
    cfg = LoaderConfig(image_size=32, batch_size=16, train=False, spectrogram=spec_cfg, neg_pool=4)
    with make_loader(open_split(split, "train"), cfg) as loader:
        batch = next(iter(loader))
    i = batch["key"].index(f"{video_id(0, 0)}_000000_s01")
    assert torch.allclose(audio["spec"][0], batch["spec"][i], atol=1e-5)
    assert torch.count_nonzero(audio["spec"][2]) == 0  # no audio
    L = batch["L"][:3]
    has = torch.tensor([True, True, False])
    ab_n, r = model.predict(L, audio, has)
    assert ab_n.shape == (3, 2, 32, 32) and r[2] == 0 and bool(((r[:2] > 0) & (r[:2] < 1)).all())
    c, _ = model.guidance(L, audio, has)
    assert not torch.allclose(c[0], c[1])  # different sounds steer differently
    with pytest.raises(ValueError, match="spec"):
        model.predict(L, audio["mel"], has)  # a bare log-mel is not what this E_a reads


def test_missing_weight_files_fail_at_once_naming_each(tmp_path):
    import shutil

    (tmp_path / "recipes").mkdir()
    shutil.copy(ROOT / "pipelines" / "vggsound.toml", tmp_path / "recipes")
    recipe = load_recipe(tmp_path / "recipes" / "vggsound.toml")
    assert recipe["model"]["audio_encoder"] == "vggsound"
    with pytest.raises(ConfigError) as err:
        build_train_plan(recipe, {"shards": tmp_path / "no-such-split", "out": tmp_path / "o"})
    text = str(err.value)
    for key in ("vggsound_weights", "vgg19_weights"):  # named, relative to the recipe's folder
        assert str((tmp_path / "recipes" / recipe["model"][key]).resolve()) in text
    assert "VGGSound authors' model page" in text and "torch hub cache" in text
    # with the files where the recipe says, the same recipe builds
    for key in ("vggsound_weights", "vgg19_weights"):
        target = tmp_path / "recipes" / recipe["model"][key]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x")
    plan = build_train_plan(recipe, {"shards": "s", "out": "o"})
    want = (tmp_path / "recipes" / recipe["model"]["vggsound_weights"]).resolve()
    assert plan.model.vggsound_weights == want
    # the demo recipe needs none
    build_train_plan(load_recipe(ROOT / "pipelines" / "demo.toml"), {"shards": "s", "out": "o"})


def test_e_a_reads_either_input():
    enc = AudioEncoder().eval()
    with torch.no_grad():
        assert enc(torch.randn(2, 1, 257, 1004)).shape == (2, 512)
        assert enc(torch.randn(2, 1, 64, 97)).shape == (2, 512)
