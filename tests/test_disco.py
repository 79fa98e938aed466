"""DISCO as an aiaic backbone: the official state_dict layout (keys, shapes, counts), the gamut tables,
seeded anchors, the released checkpoint format, the insertion point, the loss, and numerical equality
with the official model where a checkout of it is available (`AIAIC_DISCO_OFFICIAL`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support.disco_official import build_official, official_checkout, official_forward, official_shims

from aiaic.errors import InputError
from aiaic.models.backbones import build_backbone, disco_colors
from aiaic.models.backbones.disco import Disco
from aiaic.models.backbones.disco_arch import anchor_mask, kmeans_assign
from aiaic.models.backbones.disco_loss import VGG19Perceptual, rebalanced_ce
from aiaic.models.config import ModelConfig
from aiaic.train.losses import ColorLoss, build_color_loss

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data")).parent / "reference"


def _reference(name: str) -> dict:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"reference facts not found at {path}")
    return json.loads(path.read_text())


def _build(name: str, seed: int = 0) -> Disco:
    torch.manual_seed(seed)
    net = build_backbone(name, ModelConfig(backbone=name))
    assert isinstance(net, Disco)
    return net.eval()


def _L_n(size: int, batch: int = 1, seed: int = 1) -> torch.Tensor:
    """A smooth random grey image (blurred noise), so superpixels and clusters are not degenerate."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, size // 8, size // 8, generator=g)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) * 2 - 1


@pytest.fixture(scope="module")
def mini() -> Disco:
    return _build("disco-mini")


# ---- the official layout ------------------------------------------------------------------------


def test_state_dict_is_the_official_one_key_for_key():
    ref = _reference("disco.state_dict.json")
    net = _build("disco")
    own = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert own == ref["state_dict"]
    assert len(own) == ref["num_keys"] == 461
    assert sum(p.numel() for p in net.parameters()) == ref["total_params"] == 43_063_739
    buffers = sum(v.numel() for k, v in net.state_dict().items() if k in set(ref["buffer_keys"]))
    assert buffers == ref["total_buffer_elements"]
    assert net.get_submodule(net.insertion_point).weight.shape == (64, 65, 3, 3)


def test_gamut_tables_are_the_official_files():
    ref = _reference("disco-gamut.json")
    for name, key in ((disco_colors.PTS_FILE, "gamut_pts"), (disco_colors.PRIORS_FILE, "gamut_probs")):
        data = (ROOT / "aiaic" / "models" / "backbones" / "data" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == ref[f"sha256_{key}_npy"]
    assert torch.equal(disco_colors.bins(), torch.tensor(ref["gamut_pts"], dtype=torch.float32))
    w = disco_colors.class_weights(0.5)
    p = torch.tensor(ref["gamut_probs"], dtype=torch.float32)
    assert torch.isclose((p * w).sum(), torch.tensor(1.0))
    # rare colours weigh more: rebalancing 0.5 halves the way to the uniform prior
    assert w[p.argmin()] > 10 * w[p.argmax()]


# ---- anchors and seeds --------------------------------------------------------------------------


def test_kmeans_draws_its_initial_centres_as_numpy_seeded_once():
    """The initial centres are the points NumPy's legacy generator picks after np.random.seed(seed)."""
    x = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    np.random.seed(130)
    expected = np.random.choice(256, 3, replace=False)
    # one iteration: the assignment is to the nearest of the initially drawn points
    choice = kmeans_assign(x, 3, np.random.RandomState(130), torch.Generator(), iters=1)
    assert torch.equal(choice, torch.cdist(x, x[torch.from_numpy(expected)]).argmin(dim=1))


def test_anchors_are_deterministic_per_seed_and_independent_of_the_batch(mini):
    L = _L_n(128, batch=3)
    with torch.no_grad():
        a = mini.outputs(mini.encode(L))
        b = mini.outputs(mini.encode(L))
        alone = mini.outputs(mini.encode(L[1:2]))
    assert torch.equal(a.ab, b.ab) and torch.equal(a.hint_mask, b.hint_mask)
    assert torch.equal(alone.hint_mask, a.hint_mask[1:2])
    torch.testing.assert_close(alone.ab, a.ab[1:2], rtol=0, atol=1e-5)
    assert (a.hint_mask.flatten(1).sum(1) == 8).all()
    # another seed moves the anchors (of at least one of the images)
    feats = mini.encode(L)
    with torch.no_grad():
        other = [mini.run_decoder(feats, seeds=[s] * 3).hint_mask for s in (1, 2, 3)]
    assert any(not torch.equal(o, a.hint_mask) for o in other)


def test_anchor_mask_places_one_anchor_per_cluster_on_its_largest_superpixel():
    # two well separated groups of tokens; sizes make one token of each the largest
    data = torch.zeros(1, 2, 4, 4)
    data[0, 0, :, 2:] = 5.0
    sizes = torch.ones(1, 1, 4, 4)
    sizes[0, 0, 3, 1] = 3.0
    sizes[0, 0, 0, 3] = 2.0
    mask = anchor_mask(data, sizes, 2, [130])
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 3, 1] = expected[0, 0, 0, 3] = 1.0
    assert torch.equal(mask, expected)


# ---- the insertion point ------------------------------------------------------------------------


def test_guide_acts_at_the_refine_nets_first_conv(mini):
    L = _L_n(64, batch=2)
    seen = []

    def identity(h):
        seen.append(tuple(h.shape))
        return h

    with torch.no_grad():
        feats = mini.encode(L)
        plain = mini.decode(feats)
        same = mini(L, guide=identity, feats=feats)
        zeroed = mini(L, guide=torch.zeros_like, feats=feats)
    assert seen == [(2, mini.insertion_channels, 64, 64)]
    assert torch.equal(plain, same)
    assert not torch.allclose(plain, zeroed)


# ---- weights ------------------------------------------------------------------------------------


def _released_format(net: torch.nn.Module, path: Path) -> Path:
    """A checkpoint as DISCO's training saves it (and the release carries): weights under 'state_dict'."""
    torch.save({"epoch": 59, "state_dict": net.state_dict(), "best_loss": 1.5, "optimizer": {}}, path)
    return path


def test_released_checkpoint_round_trips(tmp_path):
    src = _build("disco-mini", seed=3)
    path = _released_format(src, tmp_path / "disco-beta.pth.tar")
    dst = _build("disco-mini", seed=4)
    report = dst.load_pretrained(path)
    assert report["keys"] == len(src.state_dict())
    L = _L_n(64)
    with torch.no_grad():
        assert torch.equal(src(L), dst.eval()(L))


def test_a_wrong_file_is_refused_naming_it_and_the_keys(tmp_path):
    full = _build("disco")
    wrong = _released_format(_build("disco-mini"), tmp_path / "mini.pth.tar")
    with pytest.raises(InputError, match="mini.pth.tar.*wrong shape"):
        full.load_pretrained(wrong)
    state = _build("disco-mini").state_dict()
    state.pop("enhanceNet.outConv.bias")
    state["head.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "bad.pth.tar")
    with pytest.raises(InputError, match=r"bad.pth.tar.*1 missing.*enhanceNet.outConv.bias.*head.weight"):
        _build("disco-mini").load_pretrained(tmp_path / "bad.pth.tar")
    torch.save([1, 2], tmp_path / "list.pth.tar")
    with pytest.raises(InputError, match="list.pth.tar.*holds no state dict"):
        _build("disco-mini").load_pretrained(tmp_path / "list.pth.tar")


# ---- the loss -----------------------------------------------------------------------------------


def test_rebalanced_ce_has_the_plain_value_and_a_reweighted_gradient():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 313, 3, 3, generator=g, requires_grad=True)
    labels = torch.randint(0, 313, (2, 1, 3, 3), generator=g)
    w = disco_colors.class_weights(0.5)
    value = rebalanced_ce(logits, labels, w)
    plain = F.cross_entropy(logits, labels.squeeze(1))
    assert torch.equal(value, plain)
    (grad,) = torch.autograd.grad(value, logits)
    (plain_grad,) = torch.autograd.grad(F.cross_entropy(logits, labels.squeeze(1)), logits)
    torch.testing.assert_close(grad, plain_grad * w[labels])


def _vgg19_file(path: Path) -> Path:
    """torchvision's vgg19 state dict layout with random values (features and classifier)."""
    from torchvision.models import vgg19

    torch.manual_seed(0)
    torch.save(vgg19(weights=None).state_dict(), path)
    return path


def test_disco_loss_terms_and_their_gradients(tmp_path, mini):
    vgg = VGG19Perceptual.from_file(_vgg19_file(tmp_path / "vgg19-dcbb9e9d.pth"))
    terms = {"disco_palette": 1.0, "disco_reference": 1.0, "disco_perceptual": 5.0}
    loss = ColorLoss(terms, networks={"vgg19": vgg})
    L = _L_n(64, batch=2)
    target = torch.tanh(_L_n(64, batch=2, seed=5).repeat(1, 2, 1, 1)) * 0.5
    mini.train()
    out = mini.forward_outputs(L, feats=mini.teacher_features(mini.encode(L), target))
    mini.eval()
    res = loss(out.ab, target, L, out.extras)
    expected = res["loss_disco_palette"] + res["loss_disco_reference"] + 5 * res["loss_disco_perceptual"]
    torch.testing.assert_close(res["loss"].detach(), expected)
    assert all(res[f"loss_{t}"] > 0 for t in terms)
    res["loss"].backward()
    for name in ("mid_word_prj.weight", "trg_word_prj.weight", "enhanceNet.outConv.weight"):
        assert mini.get_parameter(name).grad is not None and mini.get_parameter(name).grad.abs().sum() > 0
    assert mini.get_parameter("segnet.net.pred_mask0.weight").grad is None  # frozen superpixel net
    mini.zero_grad(set_to_none=True)
    # the perceptual term is zero at the truth
    same = vgg(torch.full((1, 3, 32, 32), 0.3), torch.full((1, 3, 32, 32), 0.3))
    assert same == 0


def test_perceptual_term_is_off_with_the_reason_without_vgg19(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    loss, disabled = build_color_loss({"disco_palette": 1.0, "disco_perceptual": 5.0})
    assert set(loss.terms) == {"disco_palette"}
    assert "vgg19-dcbb9e9d.pth" in disabled["disco_perceptual"]
    with pytest.raises(InputError, match="nope.pth"):
        build_color_loss({"disco_perceptual": 5.0}, network_weights={"vgg19": tmp_path / "nope.pth"})


# ---- numerical equality with the official model -------------------------------------------------


@pytest.fixture(scope="module")
def official():
    repo, why = official_checkout()
    if repo is None:
        pytest.skip(why)
    torch.manual_seed(0)
    net = build_official(repo)
    ours = _build("disco")
    ours.load_state_dict(net.state_dict(), strict=True)  # the official state_dict loads strictly
    return repo, net, ours


def _photo_L_n(size: int = 256) -> torch.Tensor:
    from skimage import color, data, transform

    img = transform.resize(data.astronaut(), (size, size), anti_aliasing=True)
    return (torch.from_numpy(color.rgb2lab(img)[..., :1]).float().permute(2, 0, 1)[None] - 50) / 50


def test_inference_equals_the_official_model(official):
    repo, net, ours = official
    L = _photo_L_n()
    pal, ref, ab, affinity, spix, hint = official_forward(repo, net, L, seed=130)
    with torch.inference_mode():
        out = ours.outputs(ours.encode(L))
    assert torch.equal(out.hint_mask, hint) and hint.sum() == 8
    for mine, theirs in (
        (out.pal_logits, pal),
        (out.ref_logits, ref),
        (out.ab, ab),
        (out.affinity, affinity),
    ):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.spix_colors, spix)


def test_training_forward_and_loss_equal_the_official(official):
    """With the true colours (DISCO's training forward, in eval mode so dropout is off): the same
    anchors, logits and colours; and the same cross-entropy terms as the official loss."""
    repo, net, ours = official
    from skimage import color, data, transform

    img = transform.resize(data.astronaut(), (256, 256), anti_aliasing=True)
    lab = torch.from_numpy(color.rgb2lab(img)).float().permute(2, 0, 1)[None]
    L, ab = (lab[:, :1] - 50) / 50, lab[:, 1:] / 110
    np.random.seed(130)
    with official_shims(repo), torch.no_grad():
        pal, ref, pred, affinity, spix, hint = net(L, ab, False, 0)
    with torch.no_grad():
        out = ours.run_decoder(ours.encode_features(L), target_ab=ab, seeds=[130])
    assert torch.equal(out.hint_mask, hint)
    torch.testing.assert_close(out.spix_colors, spix, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.ref_logits, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.ab, pred, rtol=0, atol=1e-5)
    with official_shims(repo):
        import basic  # type: ignore[import-not-found]
        import loss as official_loss  # type: ignore[import-not-found]

        labeler = basic.ColorLabel(lambda_=0.5)
        labels = torch.max(labeler.encode_ab2ind(spix), dim=1, keepdim=True)[1]
        data_dict = {
            "target_label": labels, "pal_prob": pal, "ref_prob": ref, "pred_color": pred,
            "class_weight": labeler.get_classweights(labels), "input_gray": L, "input_color": ab,
            "spix_color": spix,
        }  # fmt: skip
        theirs = official_loss.AnchorColorProbLoss(enhanced=False)(data_dict, 0)
    extras = {"pal_logits": out.pal_logits, "ref_logits": out.ref_logits, "affinity": out.affinity}
    mine = ColorLoss({"disco_palette": 1.0, "disco_reference": 1.0})(out.ab, ab, L, extras)
    torch.testing.assert_close(mine["loss_disco_palette"], theirs["palLoss"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mine["loss_disco_reference"], theirs["refLoss"], rtol=1e-5, atol=1e-6)


# ---- the audio-infused model and the commands ---------------------------------------------------


def test_guide_none_and_dsg_r0_are_plain_disco_bit_for_bit(mini):
    from aiaic.models.guidance import DynamicSemanticGuidance

    L_n = _L_n(64, batch=2)
    dsg = DynamicSemanticGuidance(mini.insertion_channels, cond_dim=8, hidden=8)
    with torch.no_grad():
        for p in dsg.parameters():  # a guide that would change everything where r > 0
            p.normal_()
        c = torch.randn(2, 8)
        plain = mini(L_n)
        r0 = mini(L_n, guide=lambda h: dsg(h, c, torch.zeros(2)))
        r1 = mini(L_n, guide=lambda h: dsg(h, c, torch.tensor([0.0, 1.0])))
    assert torch.equal(r0, plain)
    assert torch.equal(r1[0], plain[0])
    assert (r1[1] - plain[1]).abs().mean() > 0.05 * plain[1].abs().mean()  # r = 1 does guide


def _photo(tmp_path: Path) -> Path:
    from PIL import Image
    from skimage import data

    path = tmp_path / "photo.png"
    Image.fromarray(data.astronaut()[::4, ::4]).convert("L").save(path)  # 128 x 128 grey
    return path


def test_cli_colorizes_with_disco_alone_and_the_seed_reaches_the_anchors(tmp_path):
    from PIL import Image
    from skimage.color import rgb2lab
    from typer.testing import CliRunner

    from aiaic.cli.colorize import app

    weights = _released_format(_build("disco-mini", seed=6), tmp_path / "disco-mini.pth.tar")
    photo = _photo(tmp_path)

    def colorize(out: str, *extra: str) -> np.ndarray:
        args = [str(photo), "--backbone", "disco-mini", "--backbone-weights", str(weights), "-o"]
        result = CliRunner().invoke(app, [*args, str(tmp_path / out), "--device", "cpu", *extra])
        assert result.exit_code == 0, result.output
        return np.asarray(Image.open(tmp_path / out / "photo.png").convert("RGB"))

    default, again, seed130, other = colorize("a"), colorize("b"), colorize("c", "--seed", "130"), None
    assert default.shape == (128, 128, 3)
    assert np.array_equal(default, again) and np.array_equal(default, seed130)  # 130 is the default
    summary = json.loads((tmp_path / "a" / "colorize-summary.json").read_text())
    assert summary["model"]["image_size"] == 256  # DISCO's official inference size
    dL = np.abs(rgb2lab(default)[..., 0] - rgb2lab(np.asarray(Image.open(photo).convert("RGB")))[..., 0])
    assert dL.mean() < 0.3
    others = [colorize(f"s{s}", "--seed", str(s)) for s in (1, 2)]
    assert any(not np.array_equal(default, o) for o in others)
    del other


@pytest.mark.slow
def test_every_stage_trains_on_disco_mini_and_eval_reports_it(tmp_path):
    """`aiaic-train --backbone disco-mini --stage all` (main chain and both ablations) from a
    released-format checkpoint with DISCO's loss and optimizer, then `aiaic-eval` scores every variant."""
    from support.split_fixtures import write_split_dir
    from support.train_fixtures import ALL_STAGES, assert_eval_reports_every_variant, write_recipe
    from typer.testing import CliRunner

    from aiaic.cli.train import app as train_app

    # a VGG-19 in torchvision's layout (random values: nothing downloads in tests); DISCO's guidance
    # learns from its perceptual term only (the colour-class terms are upstream of the insertion point)
    vgg = _vgg19_file(tmp_path / "vgg19-dcbb9e9d.pth")
    weights = _released_format(_build("disco-mini", seed=7), tmp_path / "mini.pth.tar")
    split = write_split_dir(
        tmp_path / "split", classes=3, videos_per_class=2, seconds=2, size=40, shards_per_split=1,
        ood_classes=1,
    )  # fmt: skip
    model = {
        "backbone_weights": str(weights), "semantic_channels": [4, 4, 8, 8], "semantic_dim": 8,
        "cond_dim": 8, "guidance_hidden": 8, "a2v_hidden": 8, "relevance_dim": 4, "relevance_hidden": 8,
    }  # fmt: skip
    train = {
        "epochs": 1, "batch_size": 4, "image_size": 32, "ablations": ["no_r", "e2e"],
        "lr_schedule": "linear", "network_weights": {"vgg19": str(vgg)},
    }  # fmt: skip
    recipe = write_recipe(tmp_path / "recipe.toml", {"model": model, "train": train})
    run = tmp_path / "run"
    args = ["--shards", str(split), "--out", str(run), "--config", str(recipe), "--backbone", "disco-mini"]
    res = CliRunner().invoke(train_app, [*args, "--device", "cpu"])
    assert res.exit_code == 0, res.output
    for stage in ALL_STAGES:
        cfg = json.loads((run / stage / "config.json").read_text())
        assert cfg["complete"] and cfg["model"]["backbone"] == "disco-mini", stage
        if stage in ("baseline", "stage1", "stage3", "e2e"):  # DISCO's own loss and optimizer
            assert set(cfg["loss_terms"]) == {"disco_palette", "disco_reference", "disco_perceptual"}
            assert cfg["train"]["optimizer"] == "adam" and cfg["train"]["lr"] == 2e-4
            assert not cfg.get("disabled_terms"), stage
    assert_eval_reports_every_variant(run, split, tmp_path / "eval", "disco-mini")


def test_the_disco_recipe_builds_the_papers_plan(tmp_path):
    import shutil

    from aiaic.config import load_recipe
    from aiaic.train.config import build_train_plan

    recipe_dir = tmp_path / "pipelines"  # the recipe names weight files relative to its folder
    recipe_dir.mkdir()
    shutil.copy(ROOT / "pipelines" / "vggsound-disco.toml", recipe_dir)
    recipe = load_recipe(recipe_dir / "vggsound-disco.toml")
    for key in ("vggsound_weights", "vgg19_weights", "backbone_weights"):
        target = recipe_dir / recipe["model"][key]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"placeholder")
    plan = build_train_plan(recipe, {"shards": "s", "out": "o"})
    assert plan.model.backbone == "disco" and plan.model.options().seed == 130
    assert set(plan.stages) >= {"baseline", "stage1", "stage2", "rnet", "stage3", "no_r_stage1", "e2e"}
    for name in ("baseline", "stage1", "stage3", "e2e"):
        s = plan.stages[name]
        assert (s.optimizer, s.lr, s.lr_schedule, s.lr_decay_to) == ("adam", 2e-4, "linear", 0.01)
        assert dict(s.loss_terms()) == {"disco_palette": 1.0, "disco_reference": 1.0, "disco_perceptual": 5.0}
    assert plan.stages["stage2"].lr_schedule == "constant" and plan.stages["stage2"].lr == 1e-3
    assert plan.train.network_weights["vgg19"].name == "vgg19-dcbb9e9d.pth"


@pytest.mark.slow
def test_the_app_serves_disco_as_colorize_writes_it(tmp_path, shared_data):
    """`aiaic-app --backbone disco-mini --backbone-weights FILE --seed 7`: the PNG equals aiaic-colorize's."""
    import requests
    from support.app_fixtures import AppServer
    from typer.testing import CliRunner

    from aiaic.cli.colorize import app as colorize_app

    weights = _released_format(_build("disco-mini", seed=8), tmp_path / "disco-mini.pth.tar")
    photo = shared_data / "images" / "bw" / "skimage" / "camera.png"
    flags = ("--backbone", "disco-mini", "--backbone-weights", str(weights), "--seed", "7")
    ref = tmp_path / "ref.png"
    res = CliRunner().invoke(colorize_app, [str(photo), *flags, "-o", str(ref), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    srv = AppServer(None, tmp_path / "app.log", *flags)
    try:
        with open(photo, "rb") as f:
            resp = requests.post(srv.url + "api/colorize", files={"image": (photo.name, f)}, timeout=300)
        assert resp.status_code == 200, resp.text
        assert resp.content == ref.read_bytes()
    finally:
        srv.stop()


def test_linear_lr_schedule_ends_at_lr_decay_to_of_lr():
    from aiaic.train.config import StageConfig
    from aiaic.train.runner import make_scheduler

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=2e-4)
    sched = make_scheduler(StageConfig(lr_schedule="linear", lr_decay_to=0.01), opt, total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(2e-4) and lrs[5] == pytest.approx(2e-4 * (1 - 0.99 * 0.5))
    assert lrs[-1] == pytest.approx(2e-6)
