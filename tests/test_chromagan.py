"""ChromaGAN: the generator against the reference layer list (names, shapes, parameter count), Keras
semantics (TF "same" padding, conv -> ReLU -> BN with eps 1e-3, NHWC flatten), OpenCV's 8-bit Lab
conventions against cv2, the official picture path, the Keras h5 reader (files written here in
Keras's own layouts, round-tripping exactly; other files refused), and the training objective."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from support.chromagan_h5 import LAYER_ORDER, tf_keras_name, write_chromagan_h5
from torch import nn

from aiaic.errors import InputError
from aiaic.lab import normalize_ab, normalize_l, rgb_to_lab
from aiaic.models.backbones import build_backbone, spec_of
from aiaic.models.backbones.chromagan import MSE_WEIGHT_ON_AB_N, ChromaGAN, ChromaGANLabCritic, convert_h5
from aiaic.models.backbones.chromagan_arch import (
    SIZES,
    ChromaGANGenerator,
    KerasConv2d,
    keras_param_count,
    tf_same_pads,
)
from aiaic.models.backbones.chromagan_io import (
    L_n_from_l01,
    ab01_from_ab_n,
    ab_n_from_ab01,
    colorize_bgr,
    generator_input,
    l01_from_L_n,
)
from aiaic.models.colorizer import build_colorizer
from aiaic.models.config import ModelConfig
from aiaic.models.guidance import DynamicSemanticGuidance
from aiaic.models.keras_h5 import load_chromagan_h5, read_keras_h5
from aiaic.models.pretrained import load_backbone_weights
from aiaic.train.chromagan_loss import VGG16Teacher, class_kl_term, keras_kld


def _cv2():
    return pytest.importorskip("cv2", reason="opencv-python-headless (the dev extra) is needed")


ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data")).parent / "reference"


def _reference() -> dict:
    path = REFERENCE / "chromagan.layers.json"
    if not path.is_file():
        pytest.skip(f"reference facts not found at {path}")
    return json.loads(path.read_text())


def _randomised(name: str, seed: int = 0) -> ChromaGANGenerator:
    """A generator with random weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = ChromaGANGenerator(SIZES[name])
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0, 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def full() -> ChromaGANGenerator:
    return _randomised("chromagan")


@pytest.fixture(scope="module")
def mini() -> ChromaGANGenerator:
    return _randomised("chromagan-mini")


# ---- the reference layer list -------------------------------------------------------------------


def test_parameter_count_is_the_keras_one(full):
    ref = _reference()["totals"]
    assert keras_param_count(full) == ref["count_params"] == 171_171_722
    assert sum(p.numel() for p in full.parameters()) == ref["trainable_params"]
    assert len([k for k in full.state_dict() if not k.endswith("num_batches_tracked")]) == 80


def test_every_layer_has_the_reference_weights_and_output_shape(full):
    ref = _reference()
    modules = dict(full.named_modules())
    outputs: dict[str, tuple[int, ...]] = {}
    hooks = [
        modules[n].register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, tuple(o.shape)))
        for n in modules
        if isinstance(modules[n], (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
    ]
    with torch.no_grad():
        ab, logits = full(torch.rand(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert ab.shape == (1, 2, 224, 224) and logits.shape == (1, 1000)
    checked = 0
    for layer in ref["layers"]:
        name, shape = layer["keras2_name_derived"], layer["output_shape_224"]
        if name not in modules:
            continue
        nhwc = (1, *shape[1:])
        assert outputs[name] == ((1, nhwc[3], nhwc[1], nhwc[2]) if len(nhwc) == 4 else nhwc), name
        w = layer["weights"]
        if "kernel" in w:  # Keras (kh, kw, in, out) / (in, out) against ours, transposed
            k = modules[name].weight.shape
            want = (w["kernel"][3], w["kernel"][2], *w["kernel"][:2]) if len(k) == 4 else w["kernel"][::-1]
            assert tuple(k) == tuple(want), name
        else:
            assert modules[name].running_var.shape == tuple(w["moving_variance"])
        checked += 1
    assert checked == 24  # conv2d_6..17, batch_normalization_1..6, dense_1..6
    for layer in ref["vgg16_trunk_layers"]["layers"]:
        if layer["class"] == "Conv2D":
            conv = modules[f"trunk.{layer['name']}"]
            assert tuple(conv.weight.shape[2:]) + (conv.in_channels, conv.out_channels) == tuple(
                layer["weights"]["kernel"]
            )
            s = layer["output_shape_224"]
            assert outputs[f"trunk.{layer['name']}"] == (1, s[3], s[1], s[2])


def test_insertion_point_is_conv2d_13_at_the_reference_shape(full):
    ref = _reference()["insertion_point"]["primary"]
    seen = []
    hook = full.get_submodule("conv2d_13").register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        full(torch.rand(1, 3, 224, 224))
    hook.remove()
    assert list(seen[0].shape) == ref["shape_pytorch_nchw_224"] == [1, 128, 28, 28]
    assert seen[0].min() >= 0  # the ReLU is part of the Keras layer


# ---- Keras semantics ----------------------------------------------------------------------------


def test_stride2_convs_pad_as_tensorflow_same():
    assert tf_same_pads(28, 3, 2) == (0, 1) and tf_same_pads(7, 3, 1) == (1, 1)
    assert tf_same_pads(224, 4, 2) == (1, 1) and tf_same_pads(28, 4, 1) == (1, 2)
    conv = KerasConv2d(1, 1, 3, stride=2, activation="linear")
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = conv(x)[0, 0]
    # TF pads the one extra row/column at the bottom/right only (PyTorch's padding=1 would pad
    # top/left too): the first window covers rows/cols 0..2, the second 2..3 and the padding
    assert y[0, 0] == x[0, 0, :3, :3].sum() == 45 and y[1, 1] == x[0, 0, 2:, 2:].sum()
    assert y.shape == (2, 2)


def test_batch_norm_follows_the_relu_with_keras_epsilon(mini):
    seen = []
    bn = mini.batch_normalization_1
    hook = bn.register_forward_pre_hook(lambda m, i: seen.append(i[0]))
    with torch.no_grad():
        mini(torch.rand(2, 3, 64, 64))
    hook.remove()
    assert seen[0].min() >= 0 and (seen[0] == 0).any()  # post-ReLU input
    assert all(m.eps == 1e-3 for m in mini.modules() if isinstance(m, nn.BatchNorm2d))


def test_dense_layers_read_the_flatten_in_nhwc_order(mini):
    C = mini.size.global_width
    g = torch.zeros(1, C, 2, 2)
    g[0, 0, 0, 1] = 1.0  # channel 0 at (h=0, w=1): Keras's flat index (0 * 2 + 1) * C + 0 = C
    outs = {}
    hooks = [
        getattr(mini, n).register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o[0]))
        for n in ("dense_1", "dense_4")
    ]
    with torch.no_grad():
        mini.class_logits(g)
        mini.colour(torch.zeros(1, mini.size.vgg[3], 8, 8), g)
    for h in hooks:
        h.remove()
    for name in ("dense_1", "dense_4"):
        dense = getattr(mini, name)
        assert torch.allclose(outs[name], dense.weight[:, C] + dense.bias), name
        assert not torch.allclose(outs[name], dense.weight[:, 1] + dense.bias)  # PyTorch's NCHW order


# ---- OpenCV's 8-bit Lab -------------------------------------------------------------------------


def _random_rgb(seed: int = 0, shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*shape, 3), dtype=np.uint8)


def test_conventions_match_opencv_8bit_lab():
    cv2 = _cv2()
    rgb = _random_rgb()
    lab8 = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).astype(np.float32)
    lab = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255.0)
    l01 = l01_from_L_n(normalize_l(lab[:, :1]))[0, 0].numpy()
    ab01 = ab01_from_ab_n(normalize_ab(lab[:, 1:]))[0].permute(1, 2, 0).numpy()
    # OpenCV rounds to 8 bits (and uses its own fixed-point tables): within 1.5 levels of 255
    assert np.abs(l01 * 255 - lab8[..., 0]).max() <= 1.5
    assert np.abs(ab01 * 255 - lab8[..., 1:]).max() <= 1.5
    # and back: ChromaGAN's (L8, a8, b8) / 255 -> aiaic's L_n, ab_n -> the same RGB as OpenCV's
    l_back = L_n_from_l01(torch.from_numpy(lab8[..., :1] / 255).permute(2, 0, 1)[None])
    ab_back = ab_n_from_ab01(torch.from_numpy(lab8[..., 1:] / 255).permute(2, 0, 1)[None])
    assert torch.allclose(l_back, normalize_l(lab[:, :1]), atol=1.5 / 127.5)
    assert torch.allclose(ab_back, normalize_ab(lab[:, 1:]), atol=1.5 / 110)
    assert torch.allclose(ab_n_from_ab01(ab01_from_ab_n(ab_back)), ab_back, atol=1e-6)


def test_generator_input_is_l_tiled(mini):
    l01 = torch.rand(2, 1, 64, 64)
    x = generator_input(l01)
    assert x.shape == (2, 3, 64, 64) and torch.equal(x[:, 2], l01[:, 0])


def test_official_picture_path_keeps_size_and_l(mini):
    cv2 = _cv2()
    bgr = cv2.cvtColor(_random_rgb(1, (75, 101)), cv2.COLOR_RGB2BGR)
    out = colorize_bgr(mini, bgr)
    assert out.shape == bgr.shape and out.dtype == np.uint8
    L_in = cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab)[..., 0].astype(int)
    L_out = cv2.cvtColor(out, cv2.COLOR_BGR2Lab)[..., 0].astype(int)
    assert np.median(np.abs(L_in - L_out)) <= 1  # gamut clipping may move a few saturated pixels
    # the colour is the model's: its ab at 64 x 64, resized onto the picture
    small = cv2.cvtColor(cv2.resize(bgr, (64, 64)), cv2.COLOR_BGR2Lab)[..., :1] / 255.0
    with torch.no_grad():
        ab = mini(generator_input(torch.from_numpy(small).float().permute(2, 0, 1)[None]))[0]
    mean_ab = (ab[0] * 255).mean(dim=(1, 2)).numpy()
    out_ab = cv2.cvtColor(out, cv2.COLOR_BGR2Lab)[..., 1:].reshape(-1, 2).mean(0)
    assert np.abs(out_ab - mean_ab).max() < 3


# ---- the h5 reader ------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["keras-2.2.4", "tf.keras"])
def test_h5_in_keras_layout_round_trips_exactly(mini, tmp_path, layout):
    path = write_chromagan_h5(mini, tmp_path / "my_model_colorization.h5", layout)
    with h5py.File(path) as f:  # Keras's own layout, as written
        mw = f["model_weights"]
        names = [n.decode() for n in mw.attrs["layer_names"]]
        assert names == [tf_keras_name(n) if layout == "tf.keras" else n for n in LAYER_ORDER]
        trunk = "model_2" if layout == "keras-2.2.4" else "model"
        assert mw[trunk].attrs["weight_names"][0] == b"block1_conv1/kernel:0"
        assert mw[trunk]["block1_conv1"]["kernel:0"].shape == (3, 3, 3, 8)
        assert json.loads(f.attrs["training_config"])["loss"] == ["mse", "kld"]
        assert json.loads(f.attrs["model_config"])["config"]["output_layers"][1][0] == names[-1]
    h5 = read_keras_h5(path)
    assert h5.keras_version == ("2.2.4" if layout == "keras-2.2.4" else "2.15.0")
    assert h5.model_config is not None and h5.training_config is not None
    net = ChromaGANGenerator(SIZES["chromagan-mini"]).eval()
    info = load_chromagan_h5(net, path)
    assert info["layers"] == 34 and info["keys"] == 86
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = mini(x), net(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_h5_of_another_model_is_refused_naming_file_and_layers(mini, tmp_path):
    path = write_chromagan_h5(mini, tmp_path / "mini.h5")
    with pytest.raises(InputError) as e:
        load_chromagan_h5(ChromaGANGenerator(SIZES["chromagan"]), path)
    assert (
        str(path) in str(e.value)
        and "trunk.block1_conv1.weight" in str(e.value)
        and "[8, 3, 3, 3]" in str(e.value)
    )
    with h5py.File(path, "a") as f:  # drop a layer: the class head's last Dense
        mw = f["model_weights"]
        mw.attrs["layer_names"] = np.array([n for n in mw.attrs["layer_names"] if n != b"dense_6"])
    with pytest.raises(InputError, match="5 dense layers where ChromaGAN has 6"):
        load_chromagan_h5(ChromaGANGenerator(SIZES["chromagan-mini"]), path)
    bad = tmp_path / "photo.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not an HDF5 file"):
        read_keras_h5(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(InputError, match="no 'layer_names'"):
        read_keras_h5(other)


@pytest.mark.slow
def test_full_size_h5_round_trips(full, tmp_path):
    path = write_chromagan_h5(full, tmp_path / "my_model_colorization.h5")
    net = ChromaGANGenerator(SIZES["chromagan"]).eval()
    load_chromagan_h5(net, path)
    assert all(
        torch.equal(a, b) for a, b in zip(full.state_dict().values(), net.state_dict().values(), strict=True)
    )


# ---- the objective ------------------------------------------------------------------------------


def test_keras_kld_and_the_mse_weight_on_ab_n():
    t = torch.tensor([[0.7, 0.2, 0.1, 0.0]])
    p = torch.tensor([[0.5, 0.25, 0.25, 0.0]])
    tc, pc = t.clamp(1e-7, 1), p.clamp(1e-7, 1)
    assert torch.isclose(keras_kld(t, p), (tc * (tc / pc).log()).sum())
    assert keras_kld(t, t) == 0
    ab_n, ab_n2 = torch.rand(2, 2, 4, 4), torch.rand(2, 2, 4, 4)
    mse01 = ((ab01_from_ab_n(ab_n) - ab01_from_ab_n(ab_n2)) ** 2).mean()
    assert torch.isclose(mse01, MSE_WEIGHT_ON_AB_N * ((ab_n - ab_n2) ** 2).mean())


def test_class_kl_reads_the_teacher_on_the_tiled_grey_input():
    torch.manual_seed(0)
    teacher = VGG16Teacher()  # random weights: the arithmetic, not ImageNet
    L_n = torch.rand(2, 1, 32, 32) * 2 - 1
    logits = torch.randn(2, 1000)
    grey = ((L_n + 1) / 2).repeat(1, 3, 1, 1)  # L8 / 255 tiled, as np.tile in ChromaGAN.py
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        t = torch.softmax(teacher.net((grey - mean) / std), -1).clamp(1e-7, 1).numpy().astype(np.float64)
    p = torch.softmax(logits, -1).clamp(1e-7, 1).numpy().astype(np.float64)
    expected = (t * np.log(t / p)).sum(-1).mean()
    got = class_kl_term(teacher, logits, L_n)
    assert abs(float(got) - expected) < 1e-4 * max(1.0, expected)
    rgb = torch.rand(2, 3, 32, 32)
    assert not torch.isclose(class_kl_term(teacher, logits, L_n, rgb, "color"), got)


def _critic_trainer(lr: float):
    from aiaic.train.discriminator import build_discriminator_trainer
    from aiaic.train.distributed import DistInfo
    from aiaic.train.precision import MixedPrecision

    spec = spec_of("chromagan-mini").critic
    assert spec is not None
    amp = MixedPrecision("fp32", torch.device("cpu"))
    dist = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    return build_discriminator_trainer(8, spec.blocks, lr, spec.optimizer.betas, amp, dist, spec)


def test_critic_is_chromagans_patchgan_on_its_own_units():
    critic = ChromaGANLabCritic(64, 3)
    assert sum(p.numel() for p in critic.parameters()) == _reference()["discriminator"]["params"]
    L_n, ab_n = torch.rand(2, 1, 224, 224) * 2 - 1, torch.rand(2, 2, 224, 224) * 2 - 1
    with torch.no_grad():
        scores = critic(torch.cat([L_n, ab_n], 1))
        direct = critic.critic(l01_from_L_n(L_n), ab01_from_ab_n(ab_n))
    assert scores.shape == (2, 28 * 28) and torch.equal(scores, direct.flatten(1))


def test_critic_learns_to_score_real_above_fake_with_wgan_gp():
    torch.manual_seed(0)
    trainer = _critic_trainer(lr=2e-3)
    L_n = torch.rand(4, 1, 8, 8) * 2 - 1
    real = torch.cat([L_n, torch.full((4, 2, 8, 8), 1.0)], 1)  # colourful truth
    fake = torch.cat([L_n, torch.full((4, 2, 8, 8), -1.0)], 1)  # the opposite colour predicted
    first = trainer.step(real, fake)
    for _ in range(25):
        last = trainer.step(real, fake)
    assert "d_gp" in first and abs(float(first["d_real"] - first["d_fake"])) < 0.1
    assert last["d_real"] - last["d_fake"] > 1.0
    assert last["d_loss"] < first["d_loss"]


# ---- the backbone ------------------------------------------------------------------------------


def test_spec_declares_chromagans_recipe():
    spec = spec_of("chromagan")
    assert spec.input_policy().fixed_size == 224 and spec_of("chromagan-mini").input_policy().fixed_size == 64
    assert (
        spec.optimizer.lr == 2e-5 and spec.optimizer.betas == (0.5, 0.999) and spec.optimizer.name == "adam"
    )
    assert dict(spec.loss) == {"l2": MSE_WEIGHT_ON_AB_N, "class_kl": 0.003, "adversarial": 0.1}
    assert spec.critic is not None and spec.critic.loss == "wgan-gp" and spec.critic.input == "lab"
    assert spec.critic.gp_weight == 10.0 and spec.critic.optimizer.lr == 2e-5
    assert set(spec.extras) == {"class_logits"}
    assert spec.weight_set("chromagan_imagenet").file == "my_model_colorization.h5"


def _backbone(name: str = "chromagan-mini", seed: int = 0) -> ChromaGAN:
    torch.manual_seed(seed)
    net = build_backbone(name, ModelConfig(backbone=name))
    assert isinstance(net, ChromaGAN)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_backbone_is_the_generator_in_aiaic_units_and_refuses_other_sizes():
    net = _backbone()
    L_n = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        out = net.forward_outputs(L_n)
        ab01, logits = net.forward_official(generator_input(l01_from_L_n(L_n)))
    assert torch.equal(out.ab, ab_n_from_ab01(ab01)) and torch.equal(out.extras["class_logits"], logits)
    with pytest.raises(ValueError, match="64 x 64"):
        net(torch.zeros(1, 1, 96, 96))


def test_guide_none_and_dsg_r0_are_plain_chromagan_bit_for_bit():
    net = _backbone()
    L_n = torch.rand(2, 1, 64, 64) * 2 - 1
    dsg = DynamicSemanticGuidance(net.insertion_channels, cond_dim=8, hidden=8)
    seen = []
    with torch.no_grad():
        for p in dsg.parameters():
            p.normal_()
        c = torch.randn(2, 8)
        plain = net(L_n)

        def guide(h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            seen.append(h.shape)
            return dsg(h, c, r)

        r0 = net(L_n, guide=lambda h: guide(h, torch.zeros(2)))
        r1 = net(L_n, guide=lambda h: guide(h, torch.tensor([0.0, 1.0])))
    assert torch.equal(r0, plain) and torch.equal(r1[0], plain[0])
    assert (r1[1] - plain[1]).abs().mean() > 0.01 * plain[1].abs().mean()
    assert seen[0] == (2, net.insertion_channels, 8, 8)  # conv2d_13's output at 64: S / 8


def test_backbone_weights_h5_and_safetensors_copy(tmp_path):
    source = _backbone(seed=3)
    h5 = write_chromagan_h5(source, tmp_path / "my_model_colorization.h5")
    model = build_colorizer(ModelConfig(backbone="chromagan-mini", backbone_weights=h5))
    assert load_backbone_weights(model) is not None
    for k, t in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], t), k
    from typer.testing import CliRunner

    from aiaic.cli.convert import app as convert_app

    copy = tmp_path / "chromagan-mini.safetensors"
    res = CliRunner().invoke(convert_app, [str(h5), "-o", str(copy)])
    assert res.exit_code == 0, res.output
    assert convert_h5(h5, tmp_path / "again.safetensors").read_bytes() == copy.read_bytes()
    other = _backbone(seed=9)
    assert other.load_pretrained(copy)["keys"] == 86
    L_n = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(other(L_n), source(L_n))
    with pytest.raises(InputError, match="my_model_colorization.h5"):
        _backbone("chromagan").load_pretrained(h5)  # a mini file is not the released model
    bad = tmp_path / "weights.h5"
    bad.write_bytes(b"a photo, not HDF5")
    with pytest.raises(InputError, match="weights.h5: not an HDF5 file"):
        other.load_pretrained(bad)


def test_cli_colorizes_with_chromagan_alone_keeping_size_and_l(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from aiaic.cli.colorize import app

    h5 = write_chromagan_h5(_backbone(seed=4), tmp_path / "my_model_colorization.h5")
    photo = tmp_path / "photo.png"
    Image.fromarray(_random_rgb(5, (90, 70))).save(photo)
    out = tmp_path / "out"
    args = [str(photo), "--backbone", "chromagan-mini", "--backbone-weights", str(h5), "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rgb_in = np.asarray(Image.open(photo).convert("RGB"))
    rgb_out = np.asarray(Image.open(out / "photo.png").convert("RGB"))
    assert rgb_out.shape == rgb_in.shape
    from skimage.color import rgb2lab

    dL = np.abs(rgb2lab(rgb_out)[..., 0] - rgb2lab(rgb_in)[..., 0])
    assert dL.max() < 1.0
    summary = json.loads((out / "colorize-summary.json").read_text())
    assert summary["model"]["image_size"] == 64 and summary["model"]["backbone"] == "chromagan-mini"
    r = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "o2"), "--image-size", "96"])
    assert r.exit_code == 2 and "64 x 64" in " ".join(r.output.split())


def test_app_serves_chromagan_alone_as_colorize_writes(tmp_path):
    """`aiaic-app --backbone chromagan-mini --backbone-weights FILE.h5`: the PNG equals `aiaic-colorize`'s."""
    requests = pytest.importorskip("requests", reason="the app tests need requests")
    pytest.importorskip("fastapi", reason='aiaic-app needs its extra: pip install "aiaic[app]"')
    from PIL import Image
    from support.app_fixtures import AppServer
    from typer.testing import CliRunner

    from aiaic.cli.colorize import app as colorize_app

    h5 = write_chromagan_h5(_backbone(seed=8), tmp_path / "my_model_colorization.h5")
    photo = tmp_path / "photo.png"
    Image.fromarray(_random_rgb(6, (80, 120))).save(photo)
    flags = ("--backbone", "chromagan-mini", "--backbone-weights", str(h5))
    ref = tmp_path / "ref.png"
    res = CliRunner().invoke(colorize_app, [str(photo), *flags, "-o", str(ref), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    srv = AppServer(None, tmp_path / "app.log", *flags)
    try:
        with open(photo, "rb") as f:
            resp = requests.post(srv.url + "api/colorize", files={"image": ("photo.png", f)}, timeout=300)
        info = requests.get(srv.url + "api/info", timeout=10).json()
    finally:
        srv.stop()
    assert resp.status_code == 200, resp.text
    assert resp.content == ref.read_bytes() and "chromagan-mini" in json.dumps(info)


# ---- training every stage -----------------------------------------------------------------------


@pytest.mark.slow
def test_every_stage_trains_on_chromagan_mini_and_eval_reports_it(tmp_path):
    """`aiaic-train --backbone chromagan-mini --stage all` (the main chain and both ablations) on the CPU,
    from an h5 in the released layout, with ChromaGAN's loss, optimizer and WGAN-GP critic; then
    `aiaic-eval` scores every variant."""
    from support.split_fixtures import write_split_dir
    from support.train_fixtures import ALL_STAGES, assert_eval_reports_every_variant, write_recipe
    from typer.testing import CliRunner

    from aiaic.cli.train import app as train_app

    weights = write_chromagan_h5(_backbone(seed=7), tmp_path / "my_model_colorization.h5")
    split = write_split_dir(
        tmp_path / "split",
        classes=3,
        videos_per_class=3,
        seconds=2,
        size=72,
        shards_per_split=1,
        ood_classes=1,
    )
    model = {
        "backbone_weights": str(weights),
        "semantic_channels": [4, 4, 8, 8],
        "semantic_dim": 8,
        "cond_dim": 8,
        "guidance_hidden": 8,
        "a2v_hidden": 8,
        "relevance_dim": 4,
        "relevance_hidden": 8,
    }
    train = {"epochs": 1, "batch_size": 4, "image_size": 64, "ablations": ["no_r", "e2e"], "disc_channels": 8}
    recipe = write_recipe(tmp_path / "recipe.toml", {"model": model, "train": train})
    run = tmp_path / "run"
    args = [
        "--shards",
        str(split),
        "--out",
        str(run),
        "--config",
        str(recipe),
        "--backbone",
        "chromagan-mini",
    ]
    res = CliRunner().invoke(train_app, [*args, "--device", "cpu"])
    assert res.exit_code == 0, res.output
    for stage in ALL_STAGES:
        cfg = json.loads((run / stage / "config.json").read_text())
        assert cfg["complete"] and cfg["model"]["backbone"] == "chromagan-mini", stage
        if stage in ("baseline", "stage1", "stage3", "e2e"):  # ChromaGAN's own loss, optimizer and critic
            assert set(cfg["loss_terms"]) == {"l2", "adversarial"}, stage
            assert "class_kl" in cfg["disabled_terms"]  # no ImageNet VGG16 here: off, and said so
            t = cfg["train"]
            assert t["optimizer"] == "adam" and t["lr"] == 2e-5 and list(t["betas"]) == [0.5, 0.999]
            assert t["disc_lr"] == 2e-5 and list(t["disc_betas"]) == [0.5, 0.999]
    log = (run / "baseline" / "metrics.jsonl").read_text()
    assert "d_gp" in log  # the critic trained with the gradient penalty
    assert_eval_reports_every_variant(run, split, tmp_path / "eval", "chromagan-mini")
