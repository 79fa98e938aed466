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
from torch import nn

from aiaic.errors import InputError
from aiaic.lab import normalize_ab, normalize_l, rgb_to_lab
from aiaic.models.backbones.chromagan_arch import (
    SIZES,
    ChromaGANCritic,
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
from aiaic.models.keras_h5 import load_chromagan_h5, read_keras_h5
from aiaic.train.chromagan_loss import (
    MSE_WEIGHT_ON_AB_N,
    CriticTrainer,
    gradient_penalty,
    keras_kld,
    wasserstein_generator_term,
)
from tests.support.chromagan_h5 import LAYER_ORDER, tf_keras_name, write_chromagan_h5

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (the dev extra) is needed")

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
    g = torch.zeros(1, mini.size.global_width, 2, 2)
    g[0, 0, 0, 1] = 1.0  # channel 0 at (h=0, w=1): Keras's flat index (0 * 2 + 1) * C + 0 = C
    with torch.no_grad():
        expected = mini.dense_4.weight[:, mini.size.global_width] + mini.dense_4.bias
        flat_out = mini.dense_4(g.permute(0, 2, 3, 1).flatten(1))
        head_in = []
        hook = mini.dense_4.register_forward_hook(lambda m, i, o: head_in.append(o))
        mini.class_logits(g)
        hook.remove()
    assert torch.allclose(head_in[0][0], expected) and torch.allclose(flat_out[0], expected)


# ---- OpenCV's 8-bit Lab -------------------------------------------------------------------------


def _random_rgb(seed: int = 0, shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*shape, 3), dtype=np.uint8)


def test_conventions_match_opencv_8bit_lab():
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


def test_keras_kld_and_mse_weight():
    t = torch.tensor([[0.7, 0.2, 0.1, 0.0]])
    p = torch.tensor([[0.5, 0.25, 0.25, 0.0]])
    tc, pc = t.clamp(1e-7, 1), p.clamp(1e-7, 1)
    assert torch.isclose(keras_kld(t, p), (tc * (tc / pc).log()).sum())
    ab_n, ab_n2 = torch.rand(2, 2, 4, 4), torch.rand(2, 2, 4, 4)
    mse01 = ((ab01_from_ab_n(ab_n) - ab01_from_ab_n(ab_n2)) ** 2).mean()
    assert torch.isclose(mse01, MSE_WEIGHT_ON_AB_N * ((ab_n - ab_n2) ** 2).mean())


class _LinearCritic(nn.Module):
    """C(L, ab) = sum(w * ab) per sample: its gradient norm is ||w|| everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((1, 2, 4, 4), 0.1))

    def forward(self, L01: torch.Tensor, ab01: torch.Tensor) -> torch.Tensor:
        return (self.w * ab01).flatten(1).sum(1, keepdim=True)


def test_gradient_penalty_and_wasserstein_sign():
    c = _LinearCritic()
    L01, real, fake = torch.rand(3, 1, 4, 4), torch.rand(3, 2, 4, 4), torch.rand(3, 2, 4, 4)
    norm = c.w.detach().norm()
    assert torch.isclose(gradient_penalty(c, L01, real, fake), (1 - norm) ** 2)
    ab_n = torch.zeros(3, 2, 4, 4, requires_grad=True)
    wasserstein_generator_term(c, L01 * 2 - 1, ab_n).backward()
    assert c.w.grad is None  # the critic is not trained by the generator's term
    assert (ab_n.grad < 0).all()  # descending it raises the critic's score


def test_critic_learns_to_score_real_above_fake():
    torch.manual_seed(0)
    trainer = CriticTrainer(ChromaGANCritic(width=8), lr=2e-3)
    L_n = torch.rand(4, 1, 8, 8) * 2 - 1
    real = torch.full((4, 2, 8, 8), 1.0)  # colourful truth
    fake = torch.full((4, 2, 8, 8), -1.0)  # the opposite colour predicted
    first = trainer.step(L_n, real, fake)
    for _ in range(25):
        last = trainer.step(L_n, real, fake)
    assert abs(float(first["c_real"] - first["c_fake"])) < 0.1
    assert last["c_real"] - last["c_fake"] > 1.0
    assert last["c_loss"] < first["c_loss"]
