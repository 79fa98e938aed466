"""DDColor as an aiaic backbone: the official state_dict layout (keys, shapes, buffers, counts), the
forward shapes of the reference, the insertion point and its two consumers, r = 0 exactness, spectral
norm in eval mode, the released file formats, colorize with the backbone alone, and learning."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab
from support.model_configs import MINI_HEADS, model_config
from typer.testing import CliRunner

from aiaic.cli.colorize import app
from aiaic.errors import ConfigError, InputError
from aiaic.models.backbones import available, build_backbone
from aiaic.models.backbones.ddcolor import AB_SCALE, DDColor, grey_rgb
from aiaic.models.colorizer import build_colorizer
from aiaic.models.config import ModelConfig
from aiaic.models.guidance import DynamicSemanticGuidance
from aiaic.models.pretrained import load_backbone_weights, resolve_weights

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data")).parent / "reference"


def _reference(name: str) -> dict:
    path = REFERENCE / f"{name}.state_dict.json"
    if not path.is_file():
        pytest.skip(f"reference facts not found at {path}")
    return json.loads(path.read_text())


def _build(name: str, seed: int = 0) -> DDColor:
    torch.manual_seed(seed)
    net = build_backbone(name, ModelConfig(backbone=name))
    assert isinstance(net, DDColor)
    return net.eval()


@pytest.fixture(scope="module")
def tiny() -> DDColor:
    return _build("ddcolor-tiny")


def _L_n(size: int, batch: int = 1, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=g) * 2 - 1


# ---- the official layout ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ddcolor-tiny", "ddcolor-large"])
def test_state_dict_is_the_official_one_key_for_key(name):
    ref = _reference(name)
    with torch.device("meta"):
        net = build_backbone(name, ModelConfig(backbone=name))
    sd = net.state_dict()
    mine = {k: list(v.shape) for k, v in sd.items()}
    assert len(mine) == ref["num_keys"]
    assert list(mine) == list(ref["state_dict"])  # same keys, in the same order
    assert mine == ref["state_dict"]  # and the same shapes
    buffers = {k for k, _ in net.named_buffers()}
    assert buffers == set(ref["buffer_keys"])  # BN statistics, spectral-norm u/v, mean/std
    assert sum(p.numel() for p in net.parameters()) == ref["total_params"]
    assert sum(b.numel() for b in net.buffers()) == ref["total_buffer_elements"]
    assert all(sd[k].dtype == torch.int64 for k in sd if k.endswith("num_batches_tracked"))
    assert net.insertion_point == ref["insertion_point"]["module"]
    assert net.insertion_channels == ref["insertion_point"]["output_shape_256"][1]


def test_registry_and_contract_values():
    assert {"ddcolor-tiny", "ddcolor-large", "ddcolor-mini"} <= set(available())
    # DDColor's weights; its L1 (0.1 on ab in Lab units) is 11 on our ab_n = ab / 110
    terms = {"l1": 11.0, "perceptual": 5.0, "adversarial": 1.0, "colorfulness": 0.5}
    assert dict(DDColor.loss_terms) == terms
    opt = DDColor.optimizer
    assert (opt.name, opt.lr, opt.betas, opt.weight_decay) == ("adamw", 1e-4, (0.9, 0.99), 0.01)
    net = _build("ddcolor-mini")
    assert net.size_multiple == 32
    with pytest.raises(ValueError, match="multiple of 32"):
        net(_L_n(48))


def test_forward_shapes_at_256_equal_the_reference(tiny):
    ref = _reference("ddcolor-tiny")["forward"]["shapes_256"]
    modules = dict(tiny.named_modules())
    seen: dict[str, list[int]] = {}
    hooks = [
        modules[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, list(o.shape))) for n in ref
    ]
    try:
        with torch.inference_mode():
            ab = tiny.forward_official(torch.rand(1, 3, 256, 256))
    finally:
        for h in hooks:
            h.remove()
    assert seen == ref
    assert list(ab.shape) == [1, 2, 256, 256] and torch.isfinite(ab).all()


# ---- the insertion point ------------------------------------------------------------------------


def test_guide_none_and_dsg_r0_are_the_plain_model_bit_for_bit(tiny):
    L_n = _L_n(64, batch=2)
    dsg = DynamicSemanticGuidance(tiny.insertion_channels, cond_dim=8, hidden=8)
    with torch.no_grad():
        for p in dsg.parameters():  # a guide that would change everything where r > 0
            p.normal_()
        c = torch.randn(2, 8)
        plain = tiny(L_n)
        none = tiny(L_n, guide=None)
        r0 = tiny(L_n, guide=lambda h: dsg(h, c, torch.zeros(2)))
        r1 = tiny(L_n, guide=lambda h: dsg(h, c, torch.tensor([0.0, 1.0])))
        official = tiny.forward_official(grey_rgb(L_n))
    assert torch.equal(none, plain) and torch.equal(r0, plain)
    assert torch.equal(r1[0], plain[0])
    assert (r1[1] - plain[1]).abs().mean() > 0.05 * plain[1].abs().mean()  # r = 1 does guide
    assert torch.equal(plain * AB_SCALE, official) or torch.allclose(plain * AB_SCALE, official, atol=1e-5)


def test_guide_reaches_both_consumers_of_out0(tiny):
    L_n = _L_n(64)
    seen: dict[str, torch.Tensor] = {}
    out0 = {}
    queries: list[torch.Tensor] = []
    modules = dict(tiny.named_modules())
    hooks = [
        modules["decoder.layers.0"].register_forward_hook(lambda m, i, o: out0.__setitem__("h", o.clone())),
        modules["decoder.layers.1"].register_forward_pre_hook(
            lambda m, a: seen.__setitem__("layers.1", a[0])
        ),
        modules["decoder.color_decoder.input_proj.0"].register_forward_pre_hook(
            lambda m, a: seen.__setitem__("input_proj.0", a[0])
        ),
        modules["decoder"].register_forward_hook(lambda m, i, o: queries.append(o)),
    ]
    try:
        with torch.no_grad():
            plain = tiny(L_n)
            guided = tiny(L_n, guide=lambda h: h.flip(1) * 4.0 + 1.0)
    finally:
        for h in hooks:
            h.remove()
    assert list(out0["h"].shape) == [1, 512, 4, 4]  # [B, 512, H/16, W/16]
    expected = out0["h"].flip(1) * 4.0 + 1.0
    assert torch.equal(seen["layers.1"], expected) and torch.equal(seen["input_proj.0"], expected)
    plain_q, guided_q = queries  # the colour decoder's [B, Q, H, W]
    assert (guided_q - plain_q).abs().mean() > 0.05 * plain_q.abs().mean()
    assert not torch.equal(guided, plain)


# ---- spectral norm ------------------------------------------------------------------------------


def test_spectral_norm_in_eval_mode_uses_the_stored_u_v():
    net = _build("ddcolor-mini")
    conv = dict(net.named_modules())["decoder.layers.0.conv.0"]
    with torch.no_grad():  # stored u/v as a checkpoint might carry them: not a converged power iteration
        conv.weight_u.copy_(torch.nn.functional.normalize(torch.randn_like(conv.weight_u), dim=0))
        conv.weight_v.copy_(torch.nn.functional.normalize(torch.randn_like(conv.weight_v), dim=0))
    u, v = conv.weight_u.clone(), conv.weight_v.clone()
    L_n = _L_n(64)
    with torch.no_grad():
        first = net(L_n)
        second = net(L_n)
    assert torch.equal(first, second)
    assert torch.equal(conv.weight_u, u) and torch.equal(conv.weight_v, v)
    sigma = torch.dot(u, conv.weight_orig.flatten(1) @ v)
    assert torch.allclose(conv.weight, conv.weight_orig / sigma, rtol=1e-5, atol=0)
    net.train()
    with torch.no_grad():
        net(L_n)
    assert not torch.equal(conv.weight_u, u)  # training mode runs the power iteration


# ---- released file formats ----------------------------------------------------------------------


def _official_files(tmp_path: Path, net: DDColor) -> dict[str, Path]:
    sd = net.state_dict()
    files = {
        "params": tmp_path / "ddcolor_paper_mini.pth",
        "bare": tmp_path / "bare.pth",
        "hub": tmp_path / "hub" / "pytorch_model.bin",
        "head_cls": tmp_path / "with_head.pth",
        "missing": tmp_path / "missing.pth",
    }
    files["hub"].parent.mkdir()
    torch.save({"params": sd}, files["params"])
    torch.save(sd, files["bare"])
    torch.save(dict(sd), files["hub"])
    dim = net.spec.dims[-1]
    torch.save(
        {
            "params": {
                **sd,
                "encoder.arch.head_cls.weight": torch.zeros(4, dim),
                "encoder.arch.head_cls.bias": torch.zeros(4),
            }
        },
        files["head_cls"],
    )
    torch.save(
        {"params": {k: t for k, t in sd.items() if k != "decoder.layers.1.bn.running_mean"}}, files["missing"]
    )
    return files


def test_released_formats_round_trip_and_bad_files_are_refused(tmp_path, caplog):
    source = _build("ddcolor-mini", seed=3)
    with torch.no_grad():  # make the BN statistics and u/v differ from a fresh model's too
        source.train()
        source(_L_n(64, batch=2))
        source.eval()
    files = _official_files(tmp_path, source)
    L_n = _L_n(64)
    with torch.no_grad():
        expected = source(L_n)
    for kind in ("params", "bare", "hub", "head_cls"):
        target = _build("ddcolor-mini", seed=4)
        with caplog.at_level(logging.INFO, logger="aiaic.models.backbones.ddcolor"):
            caplog.clear()
            info = target.load_pretrained(files[kind])
        for k, t in source.state_dict().items():
            assert torch.equal(target.state_dict()[k], t), (kind, k)
        with torch.no_grad():
            assert torch.equal(target(L_n), expected)
        if kind == "head_cls":
            assert info["ignored"] == ["encoder.arch.head_cls.bias", "encoder.arch.head_cls.weight"]
            assert "ignored 2 classifier keys" in caplog.text
        else:
            assert info["ignored"] == []
    with pytest.raises(InputError) as e:
        _build("ddcolor-mini").load_pretrained(files["missing"])
    assert "missing.pth" in str(e.value) and "decoder.layers.1.bn.running_mean" in str(e.value)
    with pytest.raises(InputError) as e:  # the wrong model's file
        _build("ddcolor-tiny").load_pretrained(files["params"])
    assert "ddcolor_paper_mini.pth" in str(e.value) and "wrong shapes" in str(e.value)


def test_model_config_backbone_weights_load_into_the_colorizer(tmp_path):
    source = _build("ddcolor-mini", seed=5)
    path = tmp_path / "w.pth"
    torch.save({"params": source.state_dict()}, path)
    model = build_colorizer(ModelConfig(backbone="ddcolor-mini", backbone_weights=path))
    assert load_backbone_weights(model) is not None
    for k, t in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], t)
    assert load_backbone_weights(build_colorizer(ModelConfig(backbone="ddcolor-mini"))) is None
    with pytest.raises(InputError, match="not found"):
        resolve_weights(tmp_path / "nope.pth")


def test_hugging_face_repo_id_needs_huggingface_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so "owner/name" is not an existing path here
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="huggingface_hub"):
            resolve_weights("piddnad/ddcolor_paper_tiny")
    else:
        pytest.skip("huggingface_hub is installed: resolving a repo id would download (never in tests)")


# ---- colorize with the backbone alone -----------------------------------------------------------


def test_cli_backbone_alone_keeps_size_and_luminance(tmp_path, shared_data):
    source = _build("ddcolor-mini", seed=6)
    weights = tmp_path / "ddcolor_mini.pth"
    torch.save({"params": source.state_dict()}, weights)
    photo = shared_data / "images" / "bw" / "deoldify" / "1890Surfer.png"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            str(photo),
            "--backbone",
            "ddcolor-mini",
            "--backbone-weights",
            str(weights),
            "--image-size",
            "64",
            "-o",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    rgb_in = np.asarray(Image.open(photo).convert("RGB"))
    rgb_out = np.asarray(Image.open(out / "1890Surfer.png").convert("RGB"))
    assert rgb_out.shape == rgb_in.shape
    dL = np.abs(rgb2lab(rgb_out)[..., 0] - rgb2lab(rgb_in)[..., 0])
    assert dL.max() < 1.0 and dL.mean() < 0.3  # only uint8 rounding
    lab = rgb2lab(rgb_out)
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 0.5  # the backbone's colours reached the output
    summary = json.loads((out / "colorize-summary.json").read_text())
    assert summary["model"] == {"variant": "baseline", "image_size": 64, "backbone": "ddcolor-mini"}

    r = CliRunner().invoke(app, [str(photo), "--backbone", "ddcolor-mini", "-o", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "--backbone-weights" in r.output
    r = CliRunner().invoke(
        app,
        [
            str(photo),
            "--backbone",
            "ddcolor-mini",
            "--backbone-weights",
            str(weights),
            "--image-size",
            "48",
            "-o",
            str(tmp_path / "o3"),
        ],
    )
    assert r.exit_code == 2 and "multiple of 32" in " ".join(r.output.split())


# ---- learning -----------------------------------------------------------------------------------


def test_ddcolor_mini_learns():
    torch.manual_seed(0)
    net = build_backbone("ddcolor-mini", ModelConfig(backbone="ddcolor-mini", activation_checkpointing=True))
    net.train()
    L_n = _L_n(64, batch=4, seed=2)
    target = torch.zeros(4, 2, 64, 64)
    target[:, 0] = 0.03 * L_n[:, 0]  # a colour that depends on the grey level (ab within +-3.3)
    target[:, 1] = -0.02
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    losses = []
    for _ in range(20):
        loss = (net(L_n) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def _mini_training_inputs(tmp_path: Path) -> tuple[DDColor, Path, dict]:
    """A ddcolor-mini saved in the released `{"params": ...}` layout, a small split, and a `[model]` table
    naming that file (small heads): (the saved backbone, the split folder, the table)."""
    from support.split_fixtures import write_split_dir

    source = _build("ddcolor-mini", seed=7)
    weights = tmp_path / "mini.pth"
    torch.save({"params": source.state_dict()}, weights)
    split = write_split_dir(
        tmp_path / "split",
        classes=3,
        videos_per_class=3,
        seconds=2,
        size=40,
        shards_per_split=1,
        ood_classes=1,
    )
    model = {"backbone_weights": str(weights), **MINI_HEADS}
    return source, split, model


def test_baseline_training_starts_from_backbone_weights(tmp_path):
    from aiaic.config import build_config
    from aiaic.runs import checkpoint as ckpt
    from aiaic.train.config import build_train_plan
    from aiaic.train.runner import run_training

    source, split, model = _mini_training_inputs(tmp_path)
    model = {"backbone": "ddcolor-mini", **model}
    recipe = {"model": model, "train": {"epochs": 1, "batch_size": 4, "image_size": 32, "device": "cpu"}}
    run_training(build_train_plan(recipe, {"shards": split, "out": tmp_path / "run", "stage": "baseline"}))
    stage = tmp_path / "run" / "baseline"
    trained = build_colorizer(build_config(ModelConfig, ckpt.read_config(stage)["model"]))
    ckpt.load_weights(stage / ckpt.WEIGHTS, trained)
    got, start = trained.backbone.state_dict(), source.state_dict()
    key = "decoder.color_decoder.query_embed.weight"
    assert (got[key] - start[key]).abs().max() < 0.05  # a few optimizer steps away from the file's values
    assert (got[key] - _build("ddcolor-mini", seed=8).state_dict()[key]).abs().max() > 0.5  # not a fresh init
    norm = "encoder.arch.norm.weight"  # ConvNeXt's descriptor norm: not on the colour path, no gradient
    assert torch.equal(got[norm], start[norm])


def test_audio_guided_inference_with_ddcolor():
    from aiaic.data.audio import MelConfig
    from aiaic.runs.inference import InferenceModel

    torch.manual_seed(9)
    cfg = model_config(MINI_HEADS, backbone="ddcolor-mini")
    net = build_colorizer(cfg).eval()
    model = InferenceModel(
        model=net,
        variant="full",
        image_size=64,
        mel_mean=torch.zeros(64),
        mel_std=torch.ones(64),
        mel_config=MelConfig(),
        device=torch.device("cpu"),
        stage_dir=None,
    )
    L_n = _L_n(64, batch=2)
    ab_n, r = model.predict(L_n, torch.randn(2, 1, 64, 97), torch.tensor([True, False]))
    with torch.no_grad():
        plain = net.backbone(L_n)
    assert 0 < float(r[0]) < 1 and float(r[1]) == 0
    assert torch.equal(ab_n[1], plain[1])  # no audio: DDColor alone, bit for bit
    assert not torch.equal(ab_n[0], plain[0])  # audio: DSG at decoder.layers.0 changes the colours


# ---- building blocks against their definitions ----------------------------------------------------


def test_building_blocks_match_their_definitions():
    import math

    import torch.nn.functional as F

    from aiaic.models.backbones.convnext import LayerNorm2d
    from aiaic.models.backbones.ddcolor_decoder import PixelShuffleUp, sine_positions

    torch.manual_seed(0)
    ln = LayerNorm2d(6)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(2, 6, 5, 7)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(ln(x), ref, atol=1e-5)

    h, w, c = 3, 4, 16
    pos = sine_positions(h, w, c, torch.device("cpu"), torch.float32).reshape(h, w, c)
    n = c // 2
    for row, col, k in ((0, 0, 0), (2, 3, 1), (1, 2, 4), (2, 1, 7)):
        y = (row + 1) / (h + 1e-6) * 2 * math.pi
        xx = (col + 1) / (w + 1e-6) * 2 * math.pi
        f = 10000 ** (2 * (k // 2) / n)
        trig = math.sin if k % 2 == 0 else math.cos
        assert pos[row, col, k].item() == pytest.approx(trig(y / f), abs=1e-5)  # y half
        assert pos[row, col, n + k].item() == pytest.approx(trig(xx / f), abs=1e-5)  # x half

    up = PixelShuffleUp(8, 4, scale=2, blur=False)  # ICNR: each 2x2 output block starts constant
    out = up(torch.randn(1, 8, 3, 3))
    assert out.shape == (1, 4, 6, 6)
    assert torch.allclose(out[..., 0::2, 0::2], out[..., 1::2, 1::2])


@pytest.mark.slow
def test_every_stage_trains_on_ddcolor_mini_and_eval_reports_it(tmp_path):
    """`aiaic-train --backbone ddcolor-mini --stage all` (the main chain and both ablations) on the CPU,
    from released-format weights with DDColor's own loss terms, then `aiaic-eval` scores every variant."""
    from support.train_fixtures import ALL_STAGES, assert_eval_reports_every_variant, write_recipe

    from aiaic.cli.train import app as train_app

    _, split, model = _mini_training_inputs(tmp_path)
    train = {
        "epochs": 1,
        "batch_size": 4,
        "image_size": 32,
        "ablations": ["no_r", "e2e"],
        "disc_channels": 8,
        "disc_blocks": 2,
    }
    recipe = write_recipe(tmp_path / "recipe.toml", {"model": model, "train": train})
    run = tmp_path / "run"
    res = CliRunner().invoke(
        train_app,
        [
            "--shards",
            str(split),
            "--out",
            str(run),
            "--config",
            str(recipe),
            "--backbone",
            "ddcolor-mini",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    for stage in ALL_STAGES:
        cfg = json.loads((run / stage / "config.json").read_text())
        assert cfg["complete"] and cfg["model"]["backbone"] == "ddcolor-mini", stage
        if stage in ("baseline", "stage1", "stage3", "e2e"):  # DDColor's own loss and optimizer
            assert set(cfg["loss_terms"]) >= {"l1", "adversarial", "colorfulness"}
            assert cfg["train"]["optimizer"] == "adamw" and cfg["train"]["lr"] == 1e-4
            assert "perceptual" in cfg["disabled_terms"]  # no VGG16-BN weights here: off, and said so
    assert_eval_reports_every_variant(run, split, tmp_path / "eval", "ddcolor-mini")
