"""Big pictures in bounded memory: strip-wise model input, join and PNG against the whole-picture path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aiaic.colorize.compose import join_full_resolution, luminance_uint8, model_input
from aiaic.colorize.image import read_image
from aiaic.colorize.strips import frame_batch, join_into, model_input_strips, write_png
from aiaic.errors import InputError


def _picture(shared_data) -> np.ndarray:
    path = shared_data / "images" / "bw" / "deoldify" / "1895BikeMaidens.jpg"
    return read_image(path)


def test_model_input_in_strips_equals_the_whole_picture_bit_for_bit(shared_data):
    rgb = _picture(shared_data)
    frames = np.stack([rgb, rgb[::-1]])
    whole = model_input(luminance_uint8(frames), 256)
    for rows in (1, 37, 10_000):
        assert torch.equal(model_input_strips(frames, 256, rows=rows), whole)


def test_join_in_strips_within_one_level_of_the_whole_picture(shared_data):
    """Same float32 operations as torch's upsample; its compiled kernel may fuse a multiply-add, so a
    value on a rounding edge can land one uint8 level away: at most 1 level, on very few pixels."""
    rgb = _picture(shared_data)
    torch.manual_seed(0)
    ab_n = torch.randn(1, 2, 64, 48) * 0.4
    whole = join_full_resolution(luminance_uint8(rgb[None]), ab_n)
    strips = join_into(rgb[None], ab_n, rows=53)
    diff = np.abs(whole.astype(np.int16) - strips.astype(np.int16))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 1e-4
    in_place = rgb[None].copy()
    assert join_into(in_place, ab_n, out=in_place, rows=7) is in_place
    assert np.array_equal(in_place, strips)


def test_png_written_in_strips_reads_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (101, 67, 3), dtype=np.uint8)
    rgb[40:60] = 200  # flat rows as well as noise
    write_png(tmp_path / "x.png", rgb, rows=9)
    with Image.open(tmp_path / "x.png") as im:
        assert im.mode == "RGB" and im.size == (67, 101)
        assert np.array_equal(np.asarray(im), rgb)


def test_picture_above_the_pixel_limit_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (300, 200), 128).save(path)
    message = r"big.png: picture of 300 x 200 = 60,000 pixels is above the limit of 59,999 pixels"
    with pytest.raises(InputError, match=message):
        read_image(path, max_pixels=59_999)
    grey = read_image(path, max_pixels=60_000)
    assert grey.shape == (200, 300, 3) and (grey == 128).all()


def test_16_bit_grey_scaled_as_before(tmp_path):
    arr = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 31).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(arr).save(path)
    got = read_image(path)
    expected = np.clip(np.round(arr / 65535.0 * 255.0), 0, 255).astype(np.uint8)
    assert np.array_equal(got[..., 0], expected) and np.array_equal(got[..., 2], expected)


def test_frame_batch_sized_from_the_frame():
    assert frame_batch(8, 1920, 1080) == 8
    assert frame_batch(8, 7680, 4320) == 1  # 8K: one frame at a time (the pixels of 8 x 1080p / 16)
    assert frame_batch(8, 3840, 2160) == 2
    assert frame_batch(4, 320, 240) == 4


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_colorize_image_in_strips_equals_the_whole_picture_path(shared_data, tmp_path, suffix):
    """`colorize_image` (strips from the decoded picture, PNG written strip by strip) against
    `colorize_batch` (the whole picture as float arrays, `compose.join_full_resolution`), same model:
    within one uint8 level (see `aiaic.colorize.strips`), lossless for PNG."""
    from aiaic.colorize.guided import colorize_batch, no_guidance
    from aiaic.colorize.image import colorize_image
    from aiaic.runs.inference import load_backbone

    torch.manual_seed(0)
    model = load_backbone("ddcolor-mini", None, 64, "cpu")
    src = shared_data / "images" / "bw" / "deoldify" / "1895BikeMaidens.jpg"
    guide = no_guidance(model, "disabled")
    res = colorize_image(src, tmp_path / f"out{suffix}", model, guide, torch.device("cpu"))
    whole, _ = colorize_batch(model, read_image(src)[None], [guide], torch.device("cpu"))
    with Image.open(tmp_path / f"out{suffix}") as im:
        got = np.asarray(im.convert("RGB"))
    assert (res.width, res.height) == (640, 895) and got.shape == whole[0].shape
    diff = np.abs(got.astype(np.int16) - whole[0].astype(np.int16))
    if suffix == ".png":
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-4
    else:  # JPEG's own loss on top
        assert diff.mean() < 2.0
    assert np.abs(got.astype(np.int16) - read_image(src).astype(np.int16)).max() > 0  # it did colour


def test_app_refuses_an_upload_above_the_pixel_limit_naming_the_users_file(tmp_path):
    from aiaic.app.uploads import inspect_media

    path = tmp_path / "upload.bin"
    Image.new("L", (300, 200), 128).save(path, format="PNG")
    with pytest.raises(InputError, match=r"^scan.png: picture of 300 x 200 = 60,000 pixels is above"):
        inspect_media(path, "scan.png", max_pixels=59_999)
    media = inspect_media(path, "scan.png", max_pixels=60_000)
    assert (media.kind, media.width, media.height) == ("image", 300, 200)
