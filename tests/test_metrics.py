"""Metrics of the evaluation protocol: PSNR / SSIM against scikit-image on real photos, colourfulness
against hand-computed values, and LPIPS that is unavailable (never faked) without ImageNet weights."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from aiaic.errors import InputError
from aiaic.eval import perceptual
from aiaic.eval.metrics import hasler_colorfulness, load_lpips, psnr, ssim
from aiaic.eval.protocol import protocol_image

PHOTOS = [
    "skimage/astronaut.png",
    "skimage/coffee.png",
    "imagebind/dog_image.jpg",
    "matplotlib/grace_hopper.jpg",
]


def _photo(shared_data: Path, rel: str) -> np.ndarray:
    with Image.open(shared_data / "images" / "color" / rel) as im:
        return protocol_image(np.asarray(im.convert("RGB")))


def _degraded(img: np.ndarray) -> dict[str, np.ndarray]:
    """Realistic prediction errors: JPEG, blur, a colour cast, the grey version, noise."""
    pil = Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=20)
    jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    blur = np.asarray(pil.filter(ImageFilter.GaussianBlur(2)))
    cast = np.clip(img.astype(int) + np.array([25, -10, -30]), 0, 255).astype(np.uint8)
    grey = np.repeat(np.asarray(pil.convert("L"))[..., None], 3, axis=-1)
    noise = np.clip(img + np.random.default_rng(0).normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    return {"jpeg": jpeg, "blur": blur, "cast": cast, "grey": grey, "noise": noise}


@pytest.mark.parametrize("rel", PHOTOS)
def test_psnr_ssim_agree_with_skimage_on_real_photos(shared_data, rel):
    target = _photo(shared_data, rel)
    assert target.shape == (256, 256, 3)
    for name, pred in _degraded(target).items():
        ref_psnr = peak_signal_noise_ratio(target, pred, data_range=255)
        ref_ssim = structural_similarity(target, pred, channel_axis=-1, data_range=255)
        assert abs(psnr(pred, target) - ref_psnr) < 1e-3, name
        assert abs(ssim(pred, target) - ref_ssim) < 1e-3, name
    assert math.isinf(psnr(target, target))
    assert ssim(target, target) == pytest.approx(1.0, abs=1e-9)


def test_psnr_ssim_distinguish_better_from_worse(shared_data):
    target = _photo(shared_data, PHOTOS[0])
    d = _degraded(target)
    assert psnr(d["jpeg"], target) > psnr(d["noise"], target)
    assert ssim(d["jpeg"], target) > ssim(d["noise"], target)


def test_metrics_reject_wrong_input():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        psnr(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="shape"):
        ssim(a, np.zeros((16, 17, 3), np.uint8))


def test_colorfulness_known_values(shared_data):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    # rg = 255, yb = 127.5, no spread: M = 0.3 * sqrt(255^2 + 127.5^2)
    assert hasler_colorfulness(red) == pytest.approx(0.3 * math.hypot(255.0, 127.5), rel=1e-12)
    half = np.zeros((8, 8, 3), np.uint8)
    half[:4, :, 0] = 255  # half red, half black: rg in {255, 0}, yb in {127.5, 0}
    expected = math.hypot(127.5, 63.75) + 0.3 * math.hypot(127.5, 63.75)
    assert hasler_colorfulness(half) == pytest.approx(expected, rel=1e-12)
    photo = _photo(shared_data, PHOTOS[0])
    grey = _degraded(photo)["grey"]
    assert hasler_colorfulness(grey) == 0.0
    assert hasler_colorfulness(photo) > 20.0


# ---- LPIPS -----------------------------------------------------------------------------------


@pytest.fixture()
def no_downloads(monkeypatch, tmp_path):
    """An empty torch hub cache, and any download fails the test (reading a cached file is allowed)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "torch_home"


@pytest.fixture(scope="module")
def random_alexnet(tmp_path_factory) -> Path:
    """A torchvision AlexNet state dict with random values (shapes as the ImageNet file, not its values)."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("alex") / perceptual.ALEXNET_CACHE_FILE
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


def test_lpips_unavailable_without_weights(no_downloads, monkeypatch):
    import torchvision.models._api as tv_api

    def refuse(*args, **kwargs):
        raise AssertionError(f"weights were fetched: {args}")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    metric, status = load_lpips(None)
    assert metric is None
    assert status.available is False
    assert str(no_downloads / "hub" / "checkpoints" / perceptual.ALEXNET_CACHE_FILE) in status.reason
    assert "--lpips-weights" in status.reason


def test_lpips_user_file_errors(no_downloads, tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_lpips(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(InputError, match="features.0.weight"):
        load_lpips(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="junk.pth"):
        load_lpips(junk)


def test_lpips_from_hub_cache_matches_the_lpips_package(no_downloads, random_alexnet, shared_data):
    """With an AlexNet file in the hub cache, our loader gives exactly what lpips.LPIPS(net='alex') gives
    when torchvision reads that same cached file; the file is flagged as not the official checksum."""
    import lpips

    cache = no_downloads / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / perceptual.ALEXNET_CACHE_FILE).symlink_to(random_alexnet)
    metric, status = load_lpips(None)
    assert status.available and status.source == "hub-cache"
    assert status.official_checksum is False and "not comparable" in status.reason

    target = _photo(shared_data, PHOTOS[1])
    d = _degraded(target)
    preds = np.stack([d["jpeg"], d["noise"], target])
    ours = metric.distance(preds, np.stack([target] * 3))
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated pretrained=True
        warnings.simplefilter("ignore", UserWarning)
        ref_model = lpips.LPIPS(net="alex", verbose=False)  # torchvision reads the cached file, no download
    with torch.no_grad():
        ref = ref_model(perceptual.to_lpips_tensor(preds), perceptual.to_lpips_tensor(np.stack([target] * 3)))
    np.testing.assert_allclose(ours, ref.reshape(-1).numpy(), rtol=1e-5, atol=1e-6)
    assert ours[2] == pytest.approx(0.0, abs=1e-7)
    assert ours[1] > 0 and ours[0] > 0


def test_lpips_user_file_reported_available(no_downloads, random_alexnet):
    metric, status = load_lpips(random_alexnet)
    assert metric is not None and status.available and status.source == "user"
    assert status.weights == str(random_alexnet) and len(status.sha256) == 64
