"""The paper's published numbers, printed beside ours in report.md when the run's backbone is one the
paper used (DDColor, the paper's "DDC").

Source: Zhao, Chen, Zhao, Zhang, "Audio-Infused Automatic Image Colorization by Exploiting Audio Scene
Semantics" (arXiv:2401.13270): Table 1 (visual-only backbone and audio-infused model x VGGSound, AVE,
VGGSound_OOD x LPIPS, PSNR, SSIM) and Table 2 (the ablations). Splits are ours: VGGSound = "val",
AVE = "test", VGGSound_OOD = "ood".

EMPTY SLOTS: every value below is None. When this file was written no available copy of the paper
showed its tables (the searchable copies stop before the experiments), and a number that cannot be
read from the paper is not written here: the report prints "not filled in" for each None. Fill a
value only from the paper's own table (and say which table and version in the commit), never by
estimate. Which DDColor size the paper used is not known here either, so both map to "DDC".
"""

from __future__ import annotations

PAPER_BACKBONES = {"ddcolor-tiny": "DDC", "ddcolor-large": "DDC"}  # our backbone name -> the paper's name

# paper backbone -> table -> variant (ours) -> split -> metric -> value (None = empty slot)
PAPER_NUMBERS: dict[str, dict[str, dict[str, dict[str, dict[str, float | None]]]]] = {
    "DDC": {
        "table1": {
            "baseline": {
                "val": {"lpips": None, "psnr": None, "ssim": None},
                "test": {"lpips": None, "psnr": None, "ssim": None},
                "ood": {"lpips": None, "psnr": None, "ssim": None},
            },
            "full": {
                "val": {"lpips": None, "psnr": None, "ssim": None},
                "test": {"lpips": None, "psnr": None, "ssim": None},
                "ood": {"lpips": None, "psnr": None, "ssim": None},
            },
        },
        "table2": {
            "full": {
                "val": {"lpips": None, "psnr": None, "ssim": None},
                "test": {"lpips": None, "psnr": None, "ssim": None},
                "ood": {"lpips": None, "psnr": None, "ssim": None},
            },
            "full_missing_audio": {
                "val": {"lpips": None, "psnr": None, "ssim": None},
                "test": {"lpips": None, "psnr": None, "ssim": None},
                "ood": {"lpips": None, "psnr": None, "ssim": None},
            },
            "no_r": {
                "val": {"lpips": None, "psnr": None, "ssim": None},
                "test": {"lpips": None, "psnr": None, "ssim": None},
                "ood": {"lpips": None, "psnr": None, "ssim": None},
            },
            "no_r_missing_audio": {
                "val": {"lpips": None, "psnr": None, "ssim": None},
                "test": {"lpips": None, "psnr": None, "ssim": None},
                "ood": {"lpips": None, "psnr": None, "ssim": None},
            },
            "e2e": {
                "val": {"lpips": None, "psnr": None, "ssim": None},
                "test": {"lpips": None, "psnr": None, "ssim": None},
                "ood": {"lpips": None, "psnr": None, "ssim": None},
            },
        },
    },
}


def paper_numbers(backbone: str) -> tuple[str, dict] | None:
    """(the paper's name for `backbone`, its tables) where the paper used it, else None."""
    name = PAPER_BACKBONES.get(backbone)
    return None if name is None else (name, PAPER_NUMBERS[name])
