"""Image grids for the report: per sample a row of grey input | baseline | audio-infused | ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TILE = 160
HEADER = 22
CAPTION = 18


@dataclass
class GridRow:
    """One sample: uint8 RGB [S, S, 3] images by column name, plus its label and the audio-infused r."""

    key: str
    label: str
    images: dict[str, np.ndarray]
    r: float | None


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def write_grid(rows: list[GridRow], columns: list[tuple[str, str]], path: Path, title: str) -> Path:
    """Write a PNG grid. columns: (image key, heading); a missing image is drawn as a crossed tile."""
    ncol = len(columns)
    width = ncol * TILE
    height = HEADER * 2 + len(rows) * (TILE + CAPTION)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    draw.text((4, 4), title, fill=(0, 0, 0), font=font)
    for c, (_, heading) in enumerate(columns):
        draw.text((c * TILE + 4, HEADER + 4), heading, fill=(0, 0, 0), font=font)
    for i, row in enumerate(rows):
        y = HEADER * 2 + i * (TILE + CAPTION)
        for c, (name, _) in enumerate(columns):
            x = c * TILE
            img = row.images.get(name)
            if img is None:
                draw.rectangle([x, y, x + TILE - 1, y + TILE - 1], outline=(160, 160, 160))
                draw.line([x, y, x + TILE - 1, y + TILE - 1], fill=(160, 160, 160))
                draw.line([x, y + TILE - 1, x + TILE - 1, y], fill=(160, 160, 160))
                continue
            tile = Image.fromarray(img).resize((TILE, TILE), Image.Resampling.BILINEAR)
            canvas.paste(tile, (x, y))
        r_text = "r = n/a" if row.r is None else f"r = {row.r:.2f}"
        draw.text((4, y + TILE + 3), f"{row.label}  |  {r_text}  |  {row.key}", fill=(0, 0, 0), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
