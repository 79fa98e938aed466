"""An exported model (`aiaic.engine.export`) run by ONNX Runtime, behind `InferenceModel`'s interface.

    model = load_onnx(Path("out/demo-onnx"))       # the folder aiaic-export wrote
    ab_n, r = model.predict(L_n, model.audio_input([pcm]), has_audio)

`OrtModel` has what `aiaic.colorize` uses of `InferenceModel` (`image_size`, `mel_config`, `variant`,
`audio_input`, `silent_audio`, `predict`, `guidance`, `predict_guided`, and `model.config`), so images
and films go through ONNX Runtime unchanged. Providers: CUDA where onnxruntime-gpu offers it, else the
CPU. A file that is not an ONNX model, was not written by aiaic-export, or does not match what is
expected (graph inputs, checksum) is refused with `InputError` naming it and the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import torch

from aiaic.config import build_config
from aiaic.data.audio import MelConfig
from aiaic.engine.layout import COLOR_FILE, GUIDANCE_FILE, METADATA_KEY
from aiaic.errors import ConfigError, InputError
from aiaic.models.config import ModelConfig
from aiaic.runs.inference import InferenceModel
from aiaic.runs.variants import variant


def _ort():
    try:
        import onnxruntime
    except ImportError as e:
        raise ConfigError(f'the onnxruntime engine needs its extra: pip install "aiaic[onnx]" ({e})') from e
    return onnxruntime


def providers() -> list[str]:
    """ONNX Runtime's CUDA provider where installed, then the CPU's."""
    available = _ort().get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def session(path: Path, threads: int | None = None):
    """An InferenceSession of `path`; InputError when it is not a model ONNX Runtime can load."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers())
    except Exception as e:  # onnxruntime raises its own (pybind) types for every kind of bad file
        if type(e).__module__.startswith("onnxruntime") or isinstance(e, RuntimeError | ValueError):
            raise InputError(
                path, f"not an ONNX model ONNX Runtime can run ({str(e).splitlines()[0]})"
            ) from e
        raise


def read_metadata(sess, path: Path) -> dict:
    """The aiaic metadata of a session's model; InputError where absent (not written by aiaic-export)."""
    raw = sess.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise InputError(path, "has no aiaic metadata: not written by aiaic-export")
    return json.loads(raw)


@dataclass
class OrtGraphs:
    """The ONNX Runtime sessions of one export and its metadata."""

    color: Any
    guidance: Any | None
    meta: dict
    folder: Path

    def color_ab(self, L_n: np.ndarray, c: np.ndarray | None, r: np.ndarray | None) -> np.ndarray:
        feeds = {"L_n": L_n}
        if self.meta["guided"]:
            b = L_n.shape[0]
            dim = int(self.meta["model_config"]["cond_dim"])
            feeds["c"] = np.zeros((b, dim), np.float32) if c is None else c
            feeds["r"] = np.zeros(b, np.float32) if r is None else r
        return self.color.run(["ab_n"], feeds)[0]


def _expect_inputs(sess, path: Path, names: set[str]) -> None:
    got = {i.name for i in sess.get_inputs()}
    if got != names:
        raise InputError(path, f"graph inputs {sorted(got)} do not match the expected {sorted(names)}")


def load_graphs(folder: Path, expect_checksum: str | None = None, threads: int | None = None) -> OrtGraphs:
    """Open an export folder (or its color.onnx) and check it; InputError naming the file and the reason."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    color_path = folder / COLOR_FILE
    if not color_path.is_file():
        raise InputError(folder, f"holds no {COLOR_FILE} (write one with aiaic-export)")
    color = session(color_path, threads)
    meta = read_metadata(color, color_path)
    if meta.get("graph") != "color":
        raise InputError(color_path, f"is the {meta.get('graph')!r} graph, not the colour graph")
    if expect_checksum is not None and meta.get("checksum") != expect_checksum:
        raise InputError(
            color_path,
            f"was exported from other weights (checksum {meta.get('checksum')}, expected {expect_checksum})",
        )
    _expect_inputs(color, color_path, {"L_n", "c", "r"} if meta["guided"] else {"L_n"})
    guide = None
    if meta["guided"]:
        guide_path = folder / GUIDANCE_FILE
        if not guide_path.is_file():
            raise InputError(folder, f"has a guided {COLOR_FILE} but no {GUIDANCE_FILE}")
        guide = session(guide_path, threads)
        gmeta = read_metadata(guide, guide_path)
        if gmeta.get("checksum") != meta["checksum"] or gmeta.get("graph") != "guidance":
            raise InputError(guide_path, f"does not belong with {color_path} (another export's graph)")
        _expect_inputs(guide, guide_path, {"L_n", *meta["audio_fields"]})
    return OrtGraphs(color, guide, meta, folder)


class OrtModel:
    """`InferenceModel`'s interface over ONNX Runtime (see the module docstring). Tensors in and out
    are torch tensors on the CPU; the audio front end is `InferenceModel.audio_input` itself."""

    def __init__(self, graphs: OrtGraphs):
        meta = graphs.meta
        self.graphs, self.meta = graphs, meta
        cfg = build_config(ModelConfig, meta["model_config"])
        self.model = SimpleNamespace(config=cfg)  # what colorize reads of a model: its config
        self.variant: str = meta["variant"]
        self.image_size: int = int(meta["image_size"])
        self.mel_config = build_config(MelConfig, meta["mel_config"])
        self.device = torch.device("cpu")
        self.front = InferenceModel(
            model=cast(Any, self.model),
            variant=self.variant,
            image_size=self.image_size,
            mel_mean=torch.tensor(meta["mel_mean"], dtype=torch.float32),
            mel_std=torch.tensor(meta["mel_std"], dtype=torch.float32),
            mel_config=self.mel_config,
            device=self.device,
            stage_dir=None,
        )

    def audio_input(self, pcm, mels=None) -> dict[str, torch.Tensor]:
        return self.front.audio_input(pcm, mels)

    def silent_audio(self, batch: int) -> dict[str, torch.Tensor]:
        return self.front.silent_audio(batch)

    def _check_size(self, L_n: torch.Tensor) -> None:
        m = int(self.meta["size_multiple"])
        if L_n.dim() != 4 or L_n.shape[1] != 1 or L_n.shape[2] % m or L_n.shape[3] % m:
            raise ValueError(f"L_n must be [B, 1, H, W] with H, W multiples of {m}, got {list(L_n.shape)}")

    def guidance(self, L_n: torch.Tensor, mel=None, has_audio: torch.Tensor | None = None):
        """(c [B, cond_dim] or None, r [B]) as `InferenceModel.guidance`."""
        spec, B = variant(self.variant), L_n.shape[0]
        zeros = torch.zeros(B)
        if spec.audio == "silenced":
            mel, has_audio = self.silent_audio(B), torch.ones(B, dtype=torch.bool)
        if spec.c != "audio" or spec.r == "zero" or mel is None or self.graphs.guidance is None:
            return None, zeros
        present = torch.ones(B, dtype=torch.bool) if has_audio is None else has_audio.cpu().bool()
        if not bool(present.any()):
            return None, zeros
        fields = self.front._audio_fields(mel, B)
        feeds = {"L_n": L_n.detach().cpu().float().numpy()}
        feeds.update({k: fields[k].cpu().numpy() for k in self.meta["audio_fields"]})
        c, r = self.graphs.guidance.run(["c", "r"], feeds)
        r_t = torch.from_numpy(r) if spec.r == "relevance" else torch.ones(B)
        return torch.from_numpy(c), torch.where(present, r_t, zeros)

    def predict_guided(self, L_n: torch.Tensor, c: torch.Tensor | None, r: torch.Tensor) -> torch.Tensor:
        """ab_n [B, 2, H, W] for L_n [B, 1, H, W] with guidance c (None: the backbone alone) and r [B]."""
        self._check_size(L_n)
        L = L_n.detach().cpu().float().numpy()
        if c is None or variant(self.variant).c == "none":
            return torch.from_numpy(self.graphs.color_ab(L, None, None))
        cc = c.detach().cpu().float().numpy()
        rr = r.detach().cpu().float().reshape(-1).numpy()
        return torch.from_numpy(self.graphs.color_ab(L, cc, rr))

    def predict(self, L_n: torch.Tensor, mel=None, has_audio: torch.Tensor | None = None):
        """(ab_n [B, 2, H, W], r [B]) as `InferenceModel.predict`."""
        self._check_size(L_n)
        c, r = self.guidance(L_n, mel, has_audio)
        return self.predict_guided(L_n, c, r), r


def load_onnx(folder: Path, expect_checksum: str | None = None, threads: int | None = None) -> OrtModel:
    """The export in `folder` (aiaic-export's output) as an `OrtModel`; InputError for a bad or
    mismatched file."""
    return OrtModel(load_graphs(folder, expect_checksum, threads))
