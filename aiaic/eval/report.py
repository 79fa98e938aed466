"""report.md from metrics.json: the paper's Table 1 and Table 2, the protocol, and provenance.

Table 1 (as in the paper): rows are methods (the visual-only backbone and the audio-infused model),
columns are LPIPS (lower is better), PSNR and SSIM (higher is better) for each split. Table 2: the
ablations (missing audio, without r, without the multi-step schedule) against the full model, with
colourfulness and the mean relevance r. A value that could not be computed is "n/a", with the reason
listed under the tables.
"""

from __future__ import annotations

from pathlib import Path

from aiaic.io import write_text_atomic

METHOD_NAMES = {
    "baseline": "Visual-only backbone (baseline)",
    "full": "Audio-infused (full: r from the relevance net)",
    "missing_audio": "Missing audio (r = 0)",
    "no_r": "Without r (r = 1)",
    "e2e": "Without multi-step training (end to end)",
    "grey_input": "Reference: grey input (ab = 0)",
}
TABLE1 = ("baseline", "full")
TABLE2 = ("full", "missing_audio", "no_r", "e2e")


def _fmt(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _cell(metrics: dict, split: str, variant: str, key: str, reference: dict) -> str:
    if variant == "grey_input":
        entry = reference.get(split, {}).get("grey_input")
    else:
        entry = metrics.get(split, {}).get(variant)
    if entry is None:
        return "n/a"
    digits = {"lpips": 4, "psnr": 2, "ssim": 4, "colorfulness": 2, "mean_r": 2}[key]
    text = _fmt(entry.get(key), digits)
    if key == "lpips" and entry.get(key) is not None and not metrics["lpips"].get("official_checksum"):
        text += "†"
    return text


def _table(
    metrics: dict, rows: tuple[str, ...], keys: list[tuple[str, str]], with_reference: bool
) -> list[str]:
    splits = metrics["splits"]
    reference = metrics.get("reference", {})
    head = ["Method"] + [f"{split} {label}" for split in splits for _, label in keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    all_rows = list(rows) + (["grey_input"] if with_reference else [])
    for variant in all_rows:
        cells = [METHOD_NAMES.get(variant, variant)]
        for split in splits:
            for key, _ in keys:
                cells.append(_cell(metrics, split, variant, key, reference))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_report(metrics: dict) -> str:
    """The markdown text of report.md (see the module docstring)."""
    lp = metrics["lpips"]
    prov = metrics["provenance"]
    code = prov["code"]
    commit = code.get("commit") or f"unknown ({code.get('reason')})"
    if code.get("dirty"):
        commit += " (with uncommitted changes)"
    n = {s: next(iter(metrics[s].values()))["n"] for s in metrics["splits"]}
    lines = [
        "# Evaluation report",
        "",
        f"- Run: `{prov['run']}`",
        f"- Shards: `{prov['shards']}` (manifest created {prov['manifest'].get('created')}, "
        f"recipe hash {prov['manifest'].get('recipe_hash')})",
        f"- Code: aiaic {code.get('aiaic')}, commit {commit}",
        f"- Date: {prov['date']}",
        "- Images per split: " + ", ".join(f"{s} {k}" for s, k in n.items()),
        "",
        "## Table 1: colorization quality",
        "",
        "LPIPS lower is better; PSNR (dB) and SSIM higher is better."
        + (
            " † LPIPS from an AlexNet file that is not torchvision's ImageNet IMAGENET1K_V1 (checksum"
            " mismatch): not comparable with published LPIPS."
            if lp["available"] and not lp.get("official_checksum")
            else ""
        ),
        "",
        *_table(metrics, TABLE1, [("lpips", "LPIPS↓"), ("psnr", "PSNR↑"), ("ssim", "SSIM↑")], True),
        "",
        "## Table 2: ablations",
        "",
        "Colourfulness (Hasler-Suesstrunk) higher means more colourful; mean r is the relevance used.",
        "",
        *_table(
            metrics,
            TABLE2,
            [
                ("lpips", "LPIPS↓"),
                ("psnr", "PSNR↑"),
                ("ssim", "SSIM↑"),
                ("colorfulness", "colour"),
                ("mean_r", "mean r"),
            ],
            False,
        ),
        "",
        "Ground-truth colourfulness: "
        + ", ".join(
            f"{s} {metrics['reference'][s]['ground_truth_colorfulness']:.2f}" for s in metrics["splits"]
        ),
        "",
        "## Not available",
        "",
    ]
    notes = []
    if not lp["available"]:
        notes.append(f"- LPIPS: {lp['reason']}")
    elif not lp.get("official_checksum"):
        notes.append(f"- LPIPS computed, but {lp['reason']}")
    for v in TABLE2 + TABLE1:
        if v not in metrics["variants"] and v not in metrics["unavailable"]["variants"]:
            notes.append(f"- variant {v}: not requested")
    for v, why in metrics["unavailable"]["variants"].items():
        notes.append(f"- variant {v}: {why}")
    for s, why in metrics["unavailable"]["splits"].items():
        notes.append(f"- split {s}: {why}")
    capped = [
        (s, v, e["psnr_capped"]) for s in metrics["splits"] for v, e in metrics[s].items() if e["psnr_capped"]
    ]
    for s, v, k in capped:
        notes.append(
            f"- {s}/{v}: {k} image(s) identical to the ground truth (PSNR = inf) enter the mean as 100 dB"
        )
    lines += notes or ["- nothing: every requested split, variant and metric was computed"]
    if lp["available"]:
        lines += ["", f"LPIPS weights: `{lp['weights']}` ({lp['source']}), sha256 {lp['sha256']}"]
    grids = metrics.get("grids", {})
    if grids:
        lines += ["", "## Image grids", ""]
        lines += [
            f"- {s}: `{p}` (grey input, baseline, audio-infused with r, ground truth)"
            for s, p in grids.items()
        ]
    lines += ["", "## Protocol", ""]
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in metrics["protocol"].items() if k != "size"]
    lines += [
        "- PSNR of an image identical to its ground truth is infinite; split means use 100 dB for it.",
        "- Variants: baseline = the visual-only backbone trained alone; full = stage 3 with r from the "
        "relevance net (r = 0 for samples without audio); missing_audio = the same model with r = 0; "
        "no_r = r fixed at 1 where audio exists; e2e = audio guidance trained end to end without the "
        "multi-step schedule.",
        "",
    ]
    return "\n".join(lines)


def write_report(metrics: dict, path: Path) -> Path:
    """Write report.md (atomically: temporary name, then rename)."""
    path = Path(path)
    write_text_atomic(path, render_report(metrics))
    return path
