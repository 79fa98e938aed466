"""The choices the paper leaves open, each beside the paper's own words: what the report's "Setting"
section states, so that nobody mistakes one of our assumptions for the paper's setting.

`collect_setting(run, manifest, models)` reads what this evaluation actually used (the split's class
lists and seed, the model's backbone, insertion point and audio front end, stage 1's masked share)
into a JSON-safe record (metrics.json "setting"); `setting_lines(record)` renders it.
"""

from __future__ import annotations

import json
from pathlib import Path

from aiaic.data.manifest import Manifest

# DSG's position as the paper states it (section 4.1), per paper backbone
PAPER_DSG = {
    "DDC": "after the first convolution of its decoder",
    "DisColor": "after the first convolution of the refine net of its colouring module",
    "ChromaGAN": "before the seventh layer from the end of its colouring network",
}


def _stage_setting(run: Path, stage: str, key: str):
    """A stage's training setting from RUN/<stage>/config.json (None where absent)."""
    path = Path(run) / stage / "config.json"
    if not path.is_file():
        return None
    cfg = json.loads(path.read_text())
    return (cfg.get("train") or {}).get(key)  # the stage's StageConfig (runner's _stage_record)


def collect_setting(run: Path, manifest: Manifest, models: dict) -> dict:
    """What the evaluated run and split used, for the choices the paper leaves open."""
    model = next(iter(models.values())).model
    cfg = model.config
    split_recipe = manifest.recipe
    return {
        "id_categories": len(manifest.id_categories),
        "id_list": split_recipe.get("categories"),
        "ood_categories": len(manifest.ood_categories),
        "ood_list": split_recipe.get("ood_list"),
        "split_seed": manifest.seed,
        "backbone": cfg.backbone,
        "insertion_point": getattr(model.backbone, "insertion_point", None),
        "mask_prob": _stage_setting(run, "stage1", "mask_prob"),
        "audio_encoder": getattr(cfg, "audio_encoder", None),
        "spec_tile_seconds": getattr(cfg, "spec_tile_seconds", None),
    }


def setting_lines(setting: dict, paper_name: str | None) -> list[str]:
    """The report's "Setting" section: for each open choice, the paper's words, then ours."""
    s = setting
    ids = f"{s['id_categories']} classes" + (f" from `{s['id_list']}`" if s.get("id_list") else "")
    ood = f"{s['ood_categories']} classes" + (
        f" from `{s['ood_list']}`" if s.get("ood_list") else f", drawn with seed {s.get('split_seed')}"
    )
    dsg_paper = PAPER_DSG.get(paper_name or "", "(a backbone the paper did not use)")
    audio = (
        f"the VGGSound spectrogram of the 1-s window tiled to {s.get('spec_tile_seconds')} s (the "
        "network's 10-s input is the official loader's looping of a short clip)"
        if s.get("audio_encoder") == "vggsound"
        else f"E_a = {s.get('audio_encoder')}: the 64-band log-mel of the 1-s window, not tiled"
    )
    mask = "not recorded" if s.get("mask_prob") is None else f"{s['mask_prob']}"
    rows = [
        (
            "In-distribution classes",
            '"164 classes" of VGGSound for train and validation (named only by example: "skiing", "diving")',
            f"{ids}. Our assumption: VGGSound's `Common.txt` (which lacks skiing and diving; the paper's "
            "train/val ratio differs from VGGSound's official split). Set `aiaic-data split "
            "--id-classes FILE` (recipe [split] categories) to use the authors' list if you have it.",
        ),
        (
            "OOD classes",
            '"20 further VGGSound classes" outside the 164, 1,000 pairs drawn at random',
            f"{ood} (`--ood-classes FILE` / [split] ood_list for a fixed list).",
        ),
        ("DSG position", dsg_paper, f"`{s.get('insertion_point')}` of backbone `{s.get('backbone')}`."),
        (
            "Masked share in step 1",
            "a share of samples has the semantics masked (r = 0) so the backbone keeps working alone; "
            "the share is not given",
            f"mask_prob = {mask} (stage 1's recipe table).",
        ),
        (
            "E_a in step 2",
            '"E_a: ResNet-18 pretrained on VGGSound"; whether step 2 fine-tunes it is not said',
            "E_a and A2V are both trained in step 2 (L_s = ||f_a - f_v||^2, E_s frozen).",
        ),
        ("f_a", "f_a = A2V(E_a(A)) replaces f_v; f_v is normalised", "f_a is L2-normalised like f_v."),
        ("Audio input", "one second of audio per frame", audio + "."),
    ]
    lines = [
        "## Setting: the choices the paper leaves open",
        "",
        "| choice | the paper | ours |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {paper} | {ours} |" for name, paper, ours in rows]
    return [*lines, ""]
