"""The colour-loss terms, each against a reference computation, and how the perceptual term finds its
weights (a file named in the recipe, the torch hub cache, or off with the reason)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.vgg import cfgs, make_layers

from aiaic.errors import InputError
from aiaic.train.losses import (
    PERCEPTUAL_LAYERS,
    VGG16_BN_FILE,
    ColorLoss,
    VGGPerceptual,
    build_color_loss,
    colorfulness,
    locate_vgg16_bn,
    rgb_of,
)


def _ab_pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    L = torch.rand(3, 1, 16, 16, generator=g) * 1.6 - 0.8
    pred = (torch.rand(3, 2, 16, 16, generator=g) - 0.5) * 0.8
    target = (torch.rand(3, 2, 16, 16, generator=g) - 0.5) * 0.8
    return L, pred, target


def test_pixel_terms_match_torch_functional():
    L, pred, target = _ab_pair()
    loss = ColorLoss({"l1": 0.3, "l2": 0.5, "huber": 2.0, "colorfulness": 0.0}, huber_delta=0.07)
    out = loss(pred, target, L)
    l1, l2 = F.l1_loss(pred, target), F.mse_loss(pred, target)
    hub = F.smooth_l1_loss(pred, target, beta=0.07)
    torch.testing.assert_close(out["loss_l1"], l1)
    torch.testing.assert_close(out["loss_l2"], l2)
    torch.testing.assert_close(out["loss_huber"], hub)
    torch.testing.assert_close(out["loss"], 0.3 * l1 + 0.5 * l2 + 2.0 * hub)
    assert "loss_colorfulness" not in out and "rgb_fake" not in out  # weight 0: not computed
    assert float(ColorLoss({"l1": 1.0})(target, target, L)["loss"]) == 0.0


def _numpy_colorfulness(rgb: np.ndarray) -> np.ndarray:
    out = []
    for img in rgb.astype(np.float64):
        r, g, b = img[0].ravel(), img[1].ravel(), img[2].ravel()
        rg, yb = np.abs(r - g), np.abs(0.5 * (r + g) - b)
        std_root = np.sqrt(np.std(rg, ddof=1) ** 2 + np.std(yb, ddof=1) ** 2)
        mean_root = np.sqrt(np.mean(rg) ** 2 + np.mean(yb) ** 2)
        out.append(std_root + 0.3 * mean_root)
    return np.array(out)


def test_colorfulness_matches_its_formula_and_the_term_is_one_minus_it():
    rgb = torch.rand(4, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(colorfulness(rgb).numpy(), _numpy_colorfulness(rgb.numpy()), rtol=1e-5)
    L, pred, target = _ab_pair(2)
    out = ColorLoss({"colorfulness": 1.0})(pred, target, L)
    fake = rgb_of(L, pred).numpy()
    torch.testing.assert_close(
        out["loss"], torch.tensor(float((1 - _numpy_colorfulness(fake)).mean())), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(out["rgb_fake"], rgb_of(L, pred))
    # grey has (almost) none; the gradient at grey is finite and pushes towards colour
    grey_ab = torch.zeros(1, 2, 8, 8, requires_grad=True)
    grey = ColorLoss({"colorfulness": 1.0})(grey_ab, grey_ab.detach(), torch.zeros(1, 1, 8, 8))
    assert float(grey["loss"].detach()) == pytest.approx(1.0, abs=1e-4)
    grey["loss"].backward()
    assert torch.isfinite(grey_ab.grad).all()


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    """A random VGG16-BN state dict in torchvision's layout (features.* and classifier.* keys)."""
    torch.manual_seed(0)
    features = make_layers(cfgs["D"], batch_norm=True)  # what vgg16_bn(weights=None).features builds
    for m in features:  # non-trivial BatchNorm statistics, so a wrong key order would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)  # a classifier tensor: present in the file, ignored
    path = tmp_path_factory.mktemp("vgg") / VGG16_BN_FILE
    torch.save(state, path)
    return path


def _reference_perceptual(path: Path, pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    features = make_layers(cfgs["D"], batch_norm=True)  # torchvision's vgg16_bn().features
    features.load_state_dict(
        {k[len("features.") :]: v for k, v in torch.load(path).items() if k.startswith("features.")}
    )
    features.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x, y = (pred - mean) / std, (true - mean) / std
    total = torch.zeros(())
    weights = dict(PERCEPTUAL_LAYERS.values())
    with torch.no_grad():
        for i, layer in enumerate(features[:35]):
            x, y = layer(x), layer(y)
            if i in weights:
                total += weights[i] * (x - y).abs().mean()
    return total


def test_perceptual_term_on_vgg16_bn_features(vgg_file):
    net = VGGPerceptual.from_file(vgg_file)
    net.train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    value = net(a, b)
    assert float(value) > 0
    torch.testing.assert_close(value, _reference_perceptual(vgg_file, a, b), rtol=1e-4, atol=1e-6)
    assert float(net(a, a)) == 0.0
    # through ColorLoss: on the RGB of (L, ab); identical ab gives 0
    L, pred, target = _ab_pair(4)
    loss = ColorLoss({"perceptual": 5.0}, perceptual=net)
    out = loss(pred, target, L)
    expected = _reference_perceptual(vgg_file, rgb_of(L, pred), rgb_of(L, target))
    torch.testing.assert_close(out["loss"], 5.0 * expected, rtol=1e-4, atol=1e-6)
    assert float(loss(target, target, L)["loss"]) == 0.0


def test_perceptual_weights_from_the_recipe_the_hub_cache_or_off(vgg_file, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path, reason = locate_vgg16_bn(None)
    assert path is None and VGG16_BN_FILE in reason
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in reason
    loss, disabled = build_color_loss({"huber": 1.0, "perceptual": 5.0})
    assert set(loss.terms) == {"huber"} and disabled == {"perceptual": reason}
    assert loss.perceptual is None
    with pytest.raises(InputError, match="no term left"):
        build_color_loss({"perceptual": 5.0})
    # a file the recipe names must exist and be VGG16-BN
    with pytest.raises(InputError, match="not found"):
        build_color_loss({"perceptual": 1.0}, vgg16_bn_weights=tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, wrong)
    with pytest.raises(InputError, match=r"wrong\.pth: not torchvision's VGG16-BN"):
        build_color_loss({"perceptual": 1.0}, vgg16_bn_weights=wrong)
    named, disabled = build_color_loss({"perceptual": 1.0}, vgg16_bn_weights=vgg_file)
    assert disabled == {} and named.perceptual is not None
    # the hub cache serves when nothing is named
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / VGG16_BN_FILE).symlink_to(vgg_file)
    assert locate_vgg16_bn(None) == (cache / VGG16_BN_FILE, "")


def test_color_loss_refuses_unknown_or_unmet_terms():
    with pytest.raises(ValueError, match="unknown loss terms"):
        ColorLoss({"l3": 1.0})
    with pytest.raises(ValueError, match="needs a discriminator"):
        ColorLoss({"adversarial": 1.0})
    with pytest.raises(ValueError, match="VGG16-BN"):
        ColorLoss({"perceptual": 1.0})
