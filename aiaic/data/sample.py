"""The sample contract of every shard: key, fields, encoding.

A sample is one second of one video::

    __key__   "{video_id}_{start:06d}_s{segment:02d}"   (no dot; ids may begin with '-')
    jpg       the frame, RGB, short side resized (png/webp by option)
    mel.npy   float16 log-mel [64, 97] (absent when the video has no audio)
    pcm.npy   float32 16 kHz mono PCM [16000] in [-1, 1] (absent when no audio)
    json      metadata (dataset, video_id, source, label, label_id, segment, frame_time, ...)
    cls       label id as ASCII digits

`encode_sample` and `decode_sample` are the only places that know this byte layout.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

IMAGE_FORMATS = ("jpg", "png", "webp")


def sample_key(video_id: str, start: int, segment: int) -> str:
    """`{video_id}_{start:06d}_s{segment:02d}`; dots in the id become '_' (a WebDataset key ends at a dot)."""
    return f"{video_id.replace('.', '_')}_{int(start):06d}_s{int(segment):02d}"


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def load_npy(data: bytes) -> np.ndarray:
    """The array of a `.npy` field's bytes (no pickles)."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_image(image: np.ndarray, image_format: str = "jpg", quality: int = 95) -> bytes:
    """uint8 RGB [H, W, 3] -> encoded bytes."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format {image_format!r} not in {IMAGE_FORMATS}")
    buf = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB")
    if image_format == "jpg":
        pil.save(buf, format="JPEG", quality=quality, subsampling=0)
    elif image_format == "webp":
        pil.save(buf, format="WEBP", quality=quality)
    else:
        pil.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def encode_sample(
    key: str,
    image: np.ndarray,
    meta: dict[str, Any],
    mel: np.ndarray | None = None,
    pcm: np.ndarray | None = None,
    image_format: str = "jpg",
    quality: int = 95,
) -> dict[str, Any]:
    """Build the dict a `webdataset.TarWriter` writes. `meta` must hold `label_id`."""
    if "." in key:
        raise ValueError(f"sample key {key!r} contains a dot")
    sample: dict[str, Any] = {
        "__key__": key,
        image_format: encode_image(image, image_format, quality),
        "json": json.dumps(meta, sort_keys=True).encode(),
        "cls": str(int(meta["label_id"])).encode(),
    }
    if mel is not None:
        sample["mel.npy"] = _npy_bytes(np.asarray(mel, dtype=np.float16))
    if pcm is not None:
        sample["pcm.npy"] = _npy_bytes(np.asarray(pcm, dtype=np.float32))
    return sample


@dataclass
class DecodedSample:
    """A sample read back: image uint8 [H, W, 3], mel float32 [64, 97] or None, pcm float32 or None."""

    key: str
    image: np.ndarray
    meta: dict[str, Any]
    mel: np.ndarray | None
    pcm: np.ndarray | None
    label_id: int


def decode_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def decode_sample(sample: dict[str, Any]) -> DecodedSample:
    """Decode a raw webdataset sample (bytes values, as `wds.WebDataset(url)` yields without `.decode()`)."""
    image_field = next((f for f in IMAGE_FORMATS if f in sample), None)
    if image_field is None:
        raise ValueError(f"sample {sample.get('__key__')!r} has no image field")
    meta = json.loads(sample["json"])
    mel = load_npy(sample["mel.npy"]).astype(np.float32) if "mel.npy" in sample else None
    pcm = load_npy(sample["pcm.npy"]).astype(np.float32) if "pcm.npy" in sample else None
    return DecodedSample(
        key=sample["__key__"],
        image=decode_image(sample[image_field]),
        meta=meta,
        mel=mel,
        pcm=pcm,
        label_id=int(sample["cls"]),
    )
