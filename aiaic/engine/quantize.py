"""int8: an fp32 export's colour graph quantized by ONNX Runtime, and what it costs in quality.

`quantize_export(fp32_dir, int8_dir)` writes `color.onnx` with dynamically quantized weights (int8
weights of the matrix products, activations quantized per batch at run time: no calibration set is
needed, so the user's frames only measure the cost) and copies `guidance.onnx` unchanged (it runs
once per second of film). `int8_cost` colours the same frames with both and reports the PSNR of the
int8 RGB against the fp32 RGB and the colourfulness of each: the cost is printed, never refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aiaic.colorize.strips import join_into, model_input_strips
from aiaic.engine.layout import COLOR_FILE, GUIDANCE_FILE, METADATA_KEY
from aiaic.eval.metrics import hasler_colorfulness, psnr

QUANTIZED_OPS = (
    "MatMul",
    "Gemm",
)  # ConvInteger (quantized Conv) is slower than fp32 Conv on ONNX Runtime's CPU


def quantize_export(fp32_dir: Path, int8_dir: Path, ops: tuple[str, ...] = QUANTIZED_OPS) -> Path:
    """Quantize `fp32_dir`'s colour graph into `int8_dir` (replaced); its metadata gains precision = int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32_dir, int8_dir = Path(fp32_dir), Path(int8_dir)
    int8_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{int8_dir.name}.", dir=int8_dir.parent))
    try:
        quantize_dynamic(
            str(fp32_dir / COLOR_FILE),
            str(tmp / COLOR_FILE),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(ops),
        )
        proto = onnx.load(str(tmp / COLOR_FILE))
        for entry in proto.metadata_props:
            if entry.key == METADATA_KEY:
                entry.value = json.dumps({**json.loads(entry.value), "precision": "int8"})
        onnx.save(proto, str(tmp / COLOR_FILE))
        if (fp32_dir / GUIDANCE_FILE).is_file():
            shutil.copy2(fp32_dir / GUIDANCE_FILE, tmp / GUIDANCE_FILE)
        if int8_dir.exists():
            shutil.rmtree(int8_dir)
        os.replace(tmp, int8_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return int8_dir


@dataclass
class QualityCost:
    """int8 against fp32 on the same frames: PSNR (dB, RGB 0..255) and mean colourfulness of each."""

    frames: int
    psnr_db: float
    colorfulness_fp32: float
    colorfulness_int8: float

    def line(self) -> str:
        return (
            f"int8 vs fp32 on {self.frames} frames: PSNR {self.psnr_db:.2f} dB, colourfulness "
            f"{self.colorfulness_int8:.2f} (fp32 {self.colorfulness_fp32:.2f})"
        )


def int8_cost(fp32, int8, frames: list[np.ndarray]) -> QualityCost:
    """Colour uint8 frames (each [H, W, 3]) with the fp32 and int8 models (`OrtModel`s, no audio) and
    compare them; PSNR is the mean over frames (inf where identical is capped at 100 dB)."""
    psnrs, cf32, cf8 = [], [], []
    for frame in frames:
        L_n = model_input_strips(frame[None], fp32.image_size)
        silent = fp32.silent_audio(1)
        no = torch.zeros(1, dtype=torch.bool)
        with torch.inference_mode():
            a32 = join_into(frame[None], fp32.predict(L_n, silent, no)[0])[0]
            a8 = join_into(frame[None], int8.predict(L_n, silent, no)[0])[0]
        psnrs.append(min(psnr(a8, a32), 100.0))
        cf32.append(hasler_colorfulness(a32))
        cf8.append(hasler_colorfulness(a8))
    return QualityCost(len(frames), float(np.mean(psnrs)), float(np.mean(cf32)), float(np.mean(cf8)))
