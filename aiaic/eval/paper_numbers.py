"""The paper's published numbers, printed beside ours in report.md when the run's backbone is one the
paper used (DDColor = the paper's "DDC", DISCO = "DisColor", ChromaGAN).

Source: Zhao, Chen, Zhao, Zhang, "Audio-Infused Automatic Image Colorization by Exploiting Audio Scene
Semantics" (arXiv:2401.13270), section 4: Table 1 (visual-only backbone and audio-infused model x
VGGSound, AVE, VGGSound_OOD x LPIPS, PSNR, SSIM) and Table 2 (the ablations, VGGSound and AVE only:
its "ood" slots stay None). Copied cell by cell from /work/shared/reference/paper-tables.md (a test
holds this module to that file). Splits are ours: VGGSound = "val", AVE = "test", VGGSound_OOD = "ood".
Variants are ours (`aiaic.runs.variants`): baseline = the visual-only row, full = "+ audio" / "full",
full_missing_audio, no_r, no_r_missing_audio, e2e = "w/o multi-step".
"""

from __future__ import annotations

Cell = dict[str, float | None]  # metric ("lpips", "psnr", "ssim") -> value
PaperTables = dict[str, dict[str, dict[str, Cell]]]  # table -> variant -> split -> cell

PAPER_SPLITS = ("val", "test", "ood")  # the paper's VGGSound, AVE, VGGSound_OOD columns, in its order
# our backbone name's prefix -> the paper's name (ddcolor-tiny, ddcolor-large, disco, chromagan, ...)
PAPER_BACKBONE_PREFIXES = {"ddcolor": "DDC", "disco": "DisColor", "chromagan": "ChromaGAN"}


def _row(*values: float | None) -> dict[str, Cell]:
    """(LPIPS, PSNR, SSIM) x (val, test[, ood]) in the paper's column order -> {split: cell}."""
    cells = [values[i : i + 3] for i in range(0, len(values), 3)]
    out = {s: {"lpips": c[0], "psnr": c[1], "ssim": c[2]} for s, c in zip(PAPER_SPLITS, cells, strict=False)}
    for s in PAPER_SPLITS[len(cells) :]:
        out[s] = {"lpips": None, "psnr": None, "ssim": None}  # a column the table does not have
    return out


PAPER_NUMBERS: dict[str, PaperTables] = {
    "DisColor": {
        "table1": {
            "baseline": _row(0.156, 24.195, 0.937, 0.145, 25.224, 0.943, 0.161, 23.881, 0.937),
            "full": _row(0.147, 24.463, 0.938, 0.136, 25.475, 0.946, 0.147, 24.620, 0.942),
        },
        "table2": {
            "full": _row(0.147, 24.463, 0.938, 0.136, 25.475, 0.946),
            "e2e": _row(0.163, 23.752, 0.929, 0.151, 24.583, 0.932),
            "no_r": _row(0.149, 24.435, 0.936, 0.140, 25.374, 0.942),
            "no_r_missing_audio": _row(0.807, 7.467, 0.103, 0.792, 7.670, 0.098),
            "full_missing_audio": _row(0.154, 23.970, 0.938, 0.143, 24.822, 0.943),
        },
    },
    "DDC": {
        "table1": {
            "baseline": _row(0.145, 23.908, 0.925, 0.132, 24.991, 0.933, 0.152, 23.535, 0.926),
            "full": _row(0.138, 24.446, 0.936, 0.128, 25.315, 0.941, 0.147, 23.944, 0.935),
        },
        "table2": {
            "full": _row(0.138, 24.446, 0.936, 0.128, 25.315, 0.941),
            "e2e": _row(0.144, 24.200, 0.930, 0.131, 25.128, 0.938),
            "no_r": _row(0.143, 24.174, 0.929, 0.131, 25.089, 0.933),
            "no_r_missing_audio": _row(0.201, 23.396, 0.890, 0.179, 24.225, 0.889),
            "full_missing_audio": _row(0.141, 24.221, 0.931, 0.129, 25.208, 0.939),
        },
    },
    "ChromaGAN": {
        "table1": {
            "baseline": _row(0.153, 24.381, 0.922, 0.142, 25.070, 0.925, 0.158, 24.149, 0.923),
            "full": _row(0.152, 24.783, 0.924, 0.138, 25.812, 0.933, 0.154, 24.940, 0.932),
        },
        "table2": {
            "full": _row(0.152, 24.783, 0.924, 0.138, 25.812, 0.933),
            "e2e": _row(0.153, 24.471, 0.922, 0.137, 25.235, 0.927),
            "no_r": _row(0.150, 24.761, 0.923, 0.139, 25.674, 0.931),
            "no_r_missing_audio": _row(0.639, 10.546, 0.311, 0.628, 10.757, 0.292),
            "full_missing_audio": _row(0.157, 24.490, 0.920, 0.142, 25.319, 0.923),
        },
    },
}


def paper_backbone(backbone: str) -> str | None:
    """The paper's name for our backbone `backbone` ("ddcolor-large" -> "DDC"), or None."""
    for prefix, name in PAPER_BACKBONE_PREFIXES.items():
        if backbone.startswith(prefix):
            return name
    return None


def paper_numbers(backbone: str) -> tuple[str, PaperTables] | None:
    """(the paper's name for `backbone`, its tables) where the paper used it, else None."""
    name = paper_backbone(backbone)
    return None if name is None else (name, PAPER_NUMBERS[name])


def paper_value(backbone: str, variant: str, split: str, metric: str) -> float | None:
    """One published number: Table 2 where the variant is one of its rows, else Table 1 (None where
    the paper has no such cell). Table 1's "+ audio" row and Table 2's "full" row are the same model."""
    found = paper_numbers(backbone)
    if found is None:
        return None
    tables = found[1]
    row = tables["table2"].get(variant) or tables["table1"].get(variant)
    if row is None or split not in row:
        return None
    value = row[split].get(metric)
    if value is None and variant in tables["table1"]:
        value = tables["table1"][variant].get(split, {}).get(metric)
    return value
