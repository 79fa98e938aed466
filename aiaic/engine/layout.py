"""What an `aiaic-export` folder holds: its file names and the metadata key each ONNX file carries.

    OUT/color.onnx      the colour path: L_n [B, 1, H, W] (+ c [B, cond_dim], r [B]) -> ab_n [B, 2, H, W]
    OUT/guidance.onnx   a run whose colours listen: one second of audio + its key frame -> c, r
Each file's `metadata_props` has METADATA_KEY = the export's JSON description (`aiaic.engine.export`).
"""

from __future__ import annotations

METADATA_KEY = "aiaic"
COLOR_FILE = "color.onnx"
GUIDANCE_FILE = "guidance.onnx"
