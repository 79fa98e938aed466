"""ONNX export of a trained run's colorizer or a backbone alone, checked against PyTorch before it is written.

    export_onnx(load_inference(Path("runs/demo"), "full", "cpu"), Path("out/demo-onnx"), check_frames)

writes into the folder:

- `color.onnx`: the colour path. Inputs L_n [B, 1, H, W] (float32, (L - 50) / 50), and for a model
  with DSG c [B, cond_dim] and r [B]; output ab_n [B, 2, H, W] (ab / 110). Batch, height and width
  are dynamic (H and W multiples of the backbone's `size_multiple`). c = 0 with r = 0 is the
  backbone alone (DSG returns its input exactly where r = 0).
- `guidance.onnx` (only where the variant's c comes from audio): one second of audio, as the model's
  audio front end makes it (`InferenceModel.audio_input`: "mel" [B, 1, 64, 97], and "spec"
  [B, 1, 257, T] where the model reads it), and the second's key frame L_n [B, 1, S, S] -> c
  [B, cond_dim] and r [B] (the relevance net's score, or 1 for the w/o-r variants), before the
  "no audio -> r = 0" rule, which the engine applies.

Each graph carries metadata (`METADATA_KEY`, JSON): the aiaic version, the backbone, the image size,
the size multiple, the variant, the checksum of the exported weights, the model config and the log-mel
front end with its train statistics, so `aiaic.engine.ort.load_onnx` needs nothing else.

The check: ab_n from ONNX Runtime against PyTorch's on the given real frames (and, for a model with
DSG, their guidance from silence and from a real second where given); max and mean |difference| in
ab / 110 units are reported, and a model above `tolerance` (default 1e-3) is not written
(`ExportError` says by how much).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import aiaic
from aiaic.colorize.strips import model_input_strips
from aiaic.config import config_to_dict
from aiaic.engine.layout import COLOR_FILE, GUIDANCE_FILE, METADATA_KEY
from aiaic.errors import AiaicError
from aiaic.runs import checkpoint as ckpt
from aiaic.runs.variants import variant

log = logging.getLogger(__name__)

OPSET = 20  # the TorchScript exporter's newest opset; ONNX Runtime 1.32 runs opsets up to 23
TOLERANCE = 1e-3  # max |ab_n difference| (ab / 110 units) allowed between ONNX Runtime and PyTorch


class ExportError(AiaicError):
    """The exported model does not reproduce PyTorch's colours (or cannot be exported)."""


@dataclass
class ExportReport:
    """What `export_onnx` wrote and how close ONNX Runtime came to PyTorch (ab / 110 units)."""

    folder: Path
    files: list[str]
    max_diff: float
    mean_diff: float
    frames: int
    metadata: dict


class _ColorGraph(nn.Module):
    def __init__(self, model: nn.Module, guided: bool):
        super().__init__()
        self.model, self.guided = model, guided

    def forward(self, L_n: torch.Tensor, c: torch.Tensor | None = None, r: torch.Tensor | None = None):
        return self.model(L_n, c, r) if self.guided else self.model(L_n)


class _GuidanceGraph(nn.Module):
    model: Any  # the AudioInfusedColorizer

    def __init__(self, model: nn.Module, r_source: str, fields: tuple[str, ...]):
        super().__init__()
        self.model, self.r_source, self.fields = model, r_source, fields

    def forward(self, L_n: torch.Tensor, *audio: torch.Tensor):
        cfg = self.model.config
        named = dict(zip(self.fields, audio, strict=True))
        mel = named[cfg.audio_input]
        audio_feat = self.model.audio_features(mel)
        c = self.model.condition(self.model.a2v(audio_feat))
        if self.r_source == "one":
            return c, torch.ones_like(c[:, 0])
        rel = named[cfg.relevance_audio_input]
        r = torch.sigmoid(self.model.relevance_logits(L_n, rel, audio_feat))
        return c, r


def weights_checksum(model) -> str:
    """sha256 of the run's weights file (RUN/<stage>/model.safetensors), or of the model's tensors
    (names, shapes and bytes, in name order) for a backbone alone."""
    h = hashlib.sha256()
    stage_dir = getattr(model, "stage_dir", None)
    if stage_dir is not None and (Path(stage_dir) / ckpt.WEIGHTS).is_file():
        with open(Path(stage_dir) / ckpt.WEIGHTS, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return "sha256:" + h.hexdigest()
    for name, t in sorted(model.model.state_dict().items()):
        h.update(f"{name}{list(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return "sha256:" + h.hexdigest()


def export_metadata(model) -> dict:
    """The metadata both graphs carry (see the module docstring)."""
    cfg = model.model.config
    spec = variant(model.variant)
    return {
        "aiaic_version": aiaic.__version__,
        "backbone": cfg.backbone,
        "image_size": int(model.image_size),
        "size_multiple": int(model.model.backbone.size_multiple),
        "variant": model.variant,
        "guided": spec.c == "audio",
        "audio_fields": sorted(model.audio_input([None])),
        "checksum": weights_checksum(model),
        "model_config": json.loads(json.dumps(config_to_dict(cfg), default=str)),
        "mel_config": dataclasses.asdict(model.mel_config),
        "mel_mean": [float(x) for x in model.mel_mean],
        "mel_std": [float(x) for x in model.mel_std],
        "opset": OPSET,
    }


def _to_onnx(module: nn.Module, args: tuple, names: list[str], outputs: list[str], dynamic: dict) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's tracer warnings on shape checks
        torch.onnx.export(
            module,
            args,
            buf,  # type: ignore[arg-type]
            input_names=names,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    return buf.getvalue()


def _with_metadata(data: bytes, meta: dict, graph: str):
    import onnx

    proto = onnx.load_from_string(data)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps({**meta, "graph": graph})
    proto.producer_name, proto.producer_version = "aiaic", aiaic.__version__
    return proto


def _export_graphs(model, folder: Path, meta: dict) -> list[str]:
    """Write color.onnx (and guidance.onnx) into `folder`; the names written."""
    import onnx

    torch_model = model.model.eval()
    S = int(model.image_size)
    L = torch.zeros(1, 1, S, S)
    img_axes = {0: "batch", 2: "height", 3: "width"}
    if meta["guided"]:
        c = torch.zeros(1, int(torch_model.config.cond_dim))
        args: tuple = (L, c, torch.ones(1))
        names, dyn = ["L_n", "c", "r"], {"L_n": img_axes, "c": {0: "batch"}, "r": {0: "batch"}}
    else:
        args, names, dyn = (L,), ["L_n"], {"L_n": img_axes}
    data = _to_onnx(
        _ColorGraph(torch_model, meta["guided"]).eval(), args, names, ["ab_n"], {**dyn, "ab_n": img_axes}
    )
    onnx.save(_with_metadata(data, meta, "color"), str(folder / COLOR_FILE))
    files = [COLOR_FILE]
    if meta["guided"]:
        audio = model.silent_audio(1)
        fields = tuple(meta["audio_fields"])
        graph = _GuidanceGraph(torch_model, variant(model.variant).r, fields).eval()
        dyn = {"L_n": {0: "batch"}, **{k: {0: "batch"} for k in fields}, "c": {0: "batch"}, "r": {0: "batch"}}
        data = _to_onnx(graph, (L, *[audio[k] for k in fields]), ["L_n", *fields], ["c", "r"], dyn)
        onnx.save(_with_metadata(data, meta, "guidance"), str(folder / GUIDANCE_FILE))
        files.append(GUIDANCE_FILE)
    return files


def check_against_torch(
    engine, model, frames: np.ndarray, pcm: np.ndarray | None = None
) -> tuple[float, float]:
    """(max, mean) |ab_n(ONNX) - ab_n(PyTorch)| over uint8 frames [N, H, W, 3] at the model's size,
    through `predict` with silence and, where given, one second of real audio `pcm` (the model's rate)."""
    L_n = model_input_strips(frames, int(model.image_size))
    n = L_n.shape[0]
    seconds: list[np.ndarray | None] = [None]
    if pcm is not None and variant(model.variant).c == "audio":
        seconds.append(pcm)
    diffs = []
    for second in seconds:
        audio = model.audio_input([second] * n) if second is not None else model.silent_audio(n)
        has = torch.full((n,), second is not None, dtype=torch.bool)
        with torch.inference_mode():
            ref, _ = model.predict(L_n, audio, has)
            got, _ = engine.predict(L_n, audio, has)
        diffs.append((got.float() - ref.float()).abs())
    d = torch.cat([x.reshape(-1) for x in diffs])
    return float(d.max()), float(d.mean())


def export_onnx(
    model,
    folder: Path,
    frames: np.ndarray,
    pcm: np.ndarray | None = None,
    tolerance: float = TOLERANCE,
    overwrite: bool = False,
) -> ExportReport:
    """Export `model` (an `InferenceModel`, on the CPU) into `folder` and check it on uint8 frames
    [N, H, W, 3] (and one second of mono PCM `pcm` at the model's sample rate, if given); ExportError,
    with nothing written, when ONNX Runtime's ab_n differs from PyTorch's by more than `tolerance`."""
    from aiaic.engine.ort import load_onnx

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise ExportError(f"{folder} exists and is not empty; pass --overwrite to replace it")
    meta = export_metadata(model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        files = _export_graphs(model, tmp, meta)
        engine = load_onnx(tmp, expect_checksum=meta["checksum"])
        max_diff, mean_diff = check_against_torch(engine, model, frames, pcm)
        log.info(
            "ONNX vs PyTorch on %d frames: max |d ab_n| %.3g, mean %.3g", len(frames), max_diff, mean_diff
        )
        if not max_diff <= tolerance:
            raise ExportError(
                f"the ONNX model's colours differ from PyTorch's by up to {max_diff:.3g} in ab / 110 "
                f"units (mean {mean_diff:.3g}), above the bound {tolerance:g} by {max_diff - tolerance:.3g}; "
                "nothing written"
            )
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportReport(folder, files, max_diff, mean_diff, len(frames), meta)
