"""report.md from metrics.json: the paper's Table 1 and Table 2, the protocol, and provenance.

Table 1 (as in the paper): rows are methods (the visual-only backbone and the audio-infused model),
columns LPIPS (lower is better), PSNR and SSIM (higher is better) for each of the paper's datasets:
VGGSound (our split "val"), AVE ("test"), VGGSound_OOD ("ood"), then any other split evaluated.
Table 2: the paper's five rows (full; full with missing audio; w/o r; w/o r with missing audio; w/o
multi-step), one table per split, each row naming its variant. Where the run's backbone is one the
paper used, the paper's published numbers (`aiaic.eval.paper_numbers`) stand beside ours: extra rows
in Table 1, extra columns in Table 2. A value that could not be computed is "n/a", with the reason
listed under the tables.
"""

from __future__ import annotations

from pathlib import Path

from aiaic.eval.mismatch import mismatched_name
from aiaic.eval.paper_numbers import paper_numbers
from aiaic.eval.setting import setting_lines
from aiaic.io import write_text_atomic
from aiaic.runs.variants import VARIANTS

PAPER_SPLITS = {"val": "VGGSound", "test": "AVE", "ood": "VGGSound_OOD"}  # our split -> the paper's column
TABLE1 = ("baseline", "full")
TABLE2 = ("full", "full_missing_audio", "no_r", "no_r_missing_audio", "e2e")
TABLE2_ROWS = {
    "full": "Full",
    "full_missing_audio": "Full (missing audio)",
    "no_r": "w/o r",
    "no_r_missing_audio": "w/o r (missing audio)",
    "e2e": "w/o multi-step",
}
METHOD_NAMES = {v.name: v.title for v in VARIANTS.values()} | {"grey_input": "Reference: grey input (ab = 0)"}
DIGITS = {"lpips": 4, "psnr": 2, "ssim": 4, "colorfulness": 2, "mean_r": 2}
NO_CELL = "-"  # the paper has no such cell (Table 2 has no VGGSound_OOD column)


def _fmt(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def split_title(split: str) -> str:
    """ "VGGSound (val)" for a split the paper names, else the split's own name."""
    return f"{PAPER_SPLITS[split]} ({split})" if split in PAPER_SPLITS else split


def _table_splits(metrics: dict) -> list[str]:
    """The paper's three columns in its order (evaluated or not), then the other evaluated splits."""
    return list(PAPER_SPLITS) + [s for s in metrics["splits"] if s not in PAPER_SPLITS]


def _cell(metrics: dict, split: str, variant: str, key: str) -> str:
    if variant == "grey_input":
        entry = metrics.get("reference", {}).get(split, {}).get("grey_input")
    else:
        entry = metrics.get(split, {}).get(variant) if split in metrics["splits"] else None
    if entry is None:
        return "n/a"
    text = _fmt(entry.get(key), DIGITS[key])
    if key == "lpips" and entry.get(key) is not None and not metrics["lpips"].get("official_checksum"):
        text += "†"
    return text


def _paper_cell(value: float | None, key: str) -> str:
    return NO_CELL if value is None else _fmt(value, DIGITS[key])


METRIC_HEADS = [("lpips", "LPIPS↓"), ("psnr", "PSNR↑"), ("ssim", "SSIM↑")]


def table1(metrics: dict) -> list[str]:
    """Table 1: methods x (split x LPIPS, PSNR, SSIM); the paper's rows for its backbone, if any."""
    splits = _table_splits(metrics)
    head = ["Method"] + [f"{split_title(s)} {label}" for s in splits for _, label in METRIC_HEADS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant in (*TABLE1, "grey_input"):
        ours = (_cell(metrics, s, variant, k) for s in splits for k, _ in METRIC_HEADS)
        cells = [METHOD_NAMES[variant], *ours]
        lines.append("| " + " | ".join(cells) + " |")
    paper = paper_numbers(metrics.get("backbone", ""))
    if paper is not None:
        name, tables = paper
        for variant in TABLE1:
            row = tables["table1"][variant]
            cells = [f"Paper ({name}): {METHOD_NAMES[variant]}"] + [
                _paper_cell(row[s][k], k) if s in row else NO_CELL for s in splits for k, _ in METRIC_HEADS
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def table2(metrics: dict, split: str) -> list[str]:
    """Table 2 on one split: the paper's five rows, each naming its variant; ours, then the paper's."""
    keys = [*METRIC_HEADS, ("colorfulness", "colour"), ("mean_r", "mean r")]
    paper = paper_numbers(metrics.get("backbone", ""))
    head = ["Row (variant)"] + [f"{split} {label}" for _, label in keys]
    if paper is not None:
        head += [f"paper {paper[0]} {label}" for _, label in METRIC_HEADS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant in TABLE2:
        ours = (_cell(metrics, split, variant, k) for k, _ in keys)
        cells = [f"{TABLE2_ROWS[variant]} (`{variant}`)", *ours]
        if paper is not None:
            row = paper[1]["table2"][variant].get(split)
            cells += [_paper_cell(row[k], k) if row else NO_CELL for k, _ in METRIC_HEADS]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# (variant, minus variant, row name, the paper's table holding both): the deltas that should reproduce
DELTAS = (
    ("full", "baseline", "Audio-infused − visual-only (full − baseline)", "table1"),
    ("full_missing_audio", "full", "Full (missing audio) − full", "table2"),
    ("no_r", "full", "w/o r − full", "table2"),
    ("no_r_missing_audio", "full", "w/o r (missing audio) − full", "table2"),
    ("e2e", "full", "w/o multi-step − full", "table2"),
)


def _our_delta(metrics: dict, split: str, a: str, b: str, key: str) -> float | None:
    entries = metrics.get(split, {}) if split in metrics["splits"] else {}
    va, vb = (entries.get(v, {}).get(key) for v in (a, b))
    return None if va is None or vb is None else va - vb


def _paper_delta(tables: dict, table: str, split: str, a: str, b: str, key: str) -> float | None:
    va, vb = (tables[table][v].get(split, {}).get(key) for v in (a, b))
    return None if va is None or vb is None else va - vb


def _signed(value: float | None, key: str) -> str:
    return "n/a" if value is None else f"{value:+.{DIGITS[key]}f}"


def deltas(metrics: dict, split: str) -> list[str]:
    """The deltas on one split, ours beside the paper's (where the backbone is one the paper used):
    audio-infused minus visual-only, and each ablation minus full. LPIPS: negative is better."""
    paper = paper_numbers(metrics.get("backbone", ""))
    head = ["Delta"]
    for _, label in METRIC_HEADS:
        head += [f"ours {label}"] + ([f"paper {paper[0]} {label}"] if paper else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a, b, name, table in DELTAS:
        cells = [name]
        for key, _ in METRIC_HEADS:
            cells.append(_signed(_our_delta(metrics, split, a, b, key), key))
            if paper:
                value = _paper_delta(paper[1], table, split, a, b, key)
                cells.append(NO_CELL if value is None else _signed(value, key))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def table2b(metrics: dict, split: str) -> list[str]:
    """Table 2b on one split: each audio-hearing variant with its own audio and with mismatched audio
    (a second of another class), beside the visual-only baseline."""
    keys = [*METRIC_HEADS, ("mean_r", "mean r")]
    head = ["Variant"] + [f"{which} {label}" for which in ("own", "mismatched") for _, label in keys]
    head += ["mismatched − baseline PSNR"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = metrics.get(split, {}).get("baseline", {}).get("psnr")
    if base is not None:
        cells = [_cell(metrics, split, "baseline", k) for k, _ in keys]
        lines.append(
            "| " + " | ".join([METHOD_NAMES["baseline"], *cells, *(["-"] * len(keys)), "0.00"]) + " |"
        )
    for variant in metrics["mismatched"]["variants"]:
        if mismatched_name(variant) not in metrics.get(split, {}):
            continue
        own = [_cell(metrics, split, variant, k) for k, _ in keys]
        mis = [_cell(metrics, split, mismatched_name(variant), k) for k, _ in keys]
        psnr = metrics[split][mismatched_name(variant)]["psnr"]
        delta = _signed(None if base is None else psnr - base, "psnr")
        lines.append("| " + " | ".join([f"{METHOD_NAMES[variant]} (`{variant}`)", *own, *mis, delta]) + " |")
    return lines


def _mismatched_section(metrics: dict) -> list[str]:
    info = metrics.get("mismatched")
    if not info:
        return []
    lines = [
        "## Table 2b: mismatched audio",
        "",
        "Every picture hears the second of audio of a sample of another class (a fixed derangement drawn "
        f"with seed {info['seed']} within windows of {info['window']} samples), instead of its own. The "
        'paper builds the relevance mechanism to "increase dependency on the visual backbone when audio '
        'and vision are irrelevant": the full model should stay near the visual-only baseline (r falls), '
        "the w/o-r model (r = 1 always) should fall below it.",
        "",
    ]
    for split in metrics["splits"]:
        if split in metrics["unavailable"].get("mismatched", {}):
            why = metrics["unavailable"]["mismatched"][split]
            lines += [f"### Table 2b on {split_title(split)}", "", f"Not available: {why}", ""]
            continue
        lines += [f"### Table 2b on {split_title(split)}", "", *table2b(metrics, split), ""]
    return lines


SEGMENTS = {
    "in_event": "in-event segments",
    "background": "background segments (audio and picture may not match)",
}


def _segments_section(metrics: dict) -> list[str]:
    """AVE's in-event and background segments, scored apart (where a split carries the annotation)."""
    segments = metrics.get("segments") or {}
    if not segments:
        return []
    lines = [
        "## AVE segments: in-event and background",
        "",
        "AVE marks each second as inside its audio-visual event or not; the paper expects the relevance "
        "mechanism to matter most on the background seconds, where sound and picture may be unrelated.",
        "",
    ]
    for split, per in segments.items():
        heads = [f"{seg} {label}" for seg in per for _, label in (*METRIC_HEADS, ("mean_r", "mean r"))]
        lines += [f"### {split_title(split)}", ""]
        counts = ", ".join(
            f"{SEGMENTS.get(seg, seg)}: {next(iter(v.values()))['n']}" for seg, v in per.items()
        )
        lines += [f"Images: {counts}.", ""]
        lines += ["| Variant | " + " | ".join(heads) + " |", "|" + "---|" * (len(heads) + 1)]
        names = next(iter(per.values())).keys()
        for name in names:
            cells = [
                _fmt(per[seg].get(name, {}).get(k), DIGITS[k])
                for seg in per
                for k, _ in (*METRIC_HEADS, ("mean_r", ""))
            ]
            title = METHOD_NAMES.get(name, name)
            lines.append(f"| {title} (`{name}`) | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _header(metrics: dict) -> list[str]:
    prov = metrics["provenance"]
    code = prov["code"]
    commit = code.get("commit") or f"unknown ({code.get('reason')})"
    if code.get("dirty"):
        commit += " (with uncommitted changes)"
    n = {s: next(iter(metrics[s].values()))["n"] for s in metrics["splits"]}
    return [
        "# Evaluation report",
        "",
        f"- Run: `{prov['run']}` (backbone `{metrics.get('backbone', 'unknown')}`)",
        f"- Shards: `{prov['shards']}` (manifest created {prov['manifest'].get('created')}, "
        f"recipe hash {prov['manifest'].get('recipe_hash')})",
        f"- Code: aiaic {code.get('aiaic')}, commit {commit}",
        f"- Date: {prov['date']}",
        "- Images per split: " + ", ".join(f"{s} {k}" for s, k in n.items()),
        f"- Protocol: {metrics['protocol'].get('name', 'crop, grey-mixed gamut')} (see Protocol below)",
        "",
    ]


def _tables(metrics: dict) -> list[str]:
    lp = metrics["lpips"]
    dagger = (
        " † LPIPS from an AlexNet file that is not torchvision's ImageNet IMAGENET1K_V1 (checksum"
        " mismatch): not comparable with published LPIPS."
        if lp["available"] and not lp.get("official_checksum")
        else ""
    )
    lines = [
        "## Table 1: colorization quality",
        "",
        "LPIPS lower is better; PSNR (dB) and SSIM higher is better. Columns: the paper's datasets with "
        "the split that stands for each (VGGSound = val, AVE = test, VGGSound_OOD = ood)." + dagger,
        "",
        *table1(metrics),
        "",
        "## Table 2: ablations",
        "",
        "The paper's five rows: full (r from the relevance net); full (missing audio) = the full model "
        "with r = 0; w/o r = a separate model trained with SG instead of DSG (no masking in stage 1, r = 1 "
        "in stage 3); w/o r (missing audio) = that model hearing a silent second (r = 1); w/o multi-step = "
        "audio guidance trained end to end from the same initial weights, relevance net kept. Colourfulness "
        "(Hasler-Suesstrunk): higher is more colourful; mean r is the relevance used.",
        "",
    ]
    for split in metrics["splits"]:
        lines += [f"### Table 2 on {split_title(split)}", "", *table2(metrics, split), ""]
    paper = paper_numbers(metrics.get("backbone", ""))
    if paper is not None:
        lines += [
            f"Backbone `{metrics['backbone']}` is the paper's {paper[0]}: its published numbers "
            f'(`aiaic/eval/paper_numbers.py`) stand beside ours ("{NO_CELL}": the paper has no such cell).',
            "",
        ]
    lines += [
        "## Deltas: ours beside the paper's",
        "",
        "Absolute values depend on the data and the protocol; the differences between rows are what "
        "should reproduce. Each row: the first variant minus the second, per metric (LPIPS: negative "
        "is better; PSNR, SSIM: positive is better)."
        + (f" The paper's deltas are those of its {paper[0]} rows." if paper else ""),
        "",
    ]
    for split in metrics["splits"]:
        lines += [f"### Deltas on {split_title(split)}", "", *deltas(metrics, split), ""]
    ref = metrics["reference"]
    gt = ", ".join(f"{s} {ref[s]['ground_truth_colorfulness']:.2f}" for s in metrics["splits"])
    return lines + [f"Ground-truth colourfulness: {gt}", ""]


def _not_available(metrics: dict) -> list[str]:
    lp = metrics["lpips"]
    notes = []
    if not lp["available"]:
        notes.append(f"- LPIPS: {lp['reason']}")
    elif not lp.get("official_checksum"):
        notes.append(f"- LPIPS computed, but {lp['reason']}")
    for v in dict.fromkeys(TABLE1 + TABLE2):
        if v not in metrics["variants"] and v not in metrics["unavailable"]["variants"]:
            notes.append(f"- variant {v}: not requested")
    for v, why in metrics["unavailable"]["variants"].items():
        notes.append(f"- variant {v}: {why}")
    for s, why in metrics["unavailable"]["splits"].items():
        notes.append(f"- split {s}: {why}")
    for s in PAPER_SPLITS:
        if s not in metrics["splits"] and s not in metrics["unavailable"]["splits"]:
            notes.append(f"- split {s} ({PAPER_SPLITS[s]}): not requested")
    for s in metrics["splits"]:
        for v, e in metrics[s].items():
            if e["psnr_capped"]:
                notes.append(
                    f"- {s}/{v}: {e['psnr_capped']} image(s) identical to the ground truth "
                    "(PSNR = inf) enter the mean as 100 dB"
                )
    lines = [
        "## Not available",
        "",
        *(notes or ["- nothing: every requested split, variant and metric was computed"]),
    ]
    if lp["available"]:
        lines += ["", f"LPIPS weights: `{lp['weights']}` ({lp['source']}), sha256 {lp['sha256']}"]
    grids = metrics.get("grids", {})
    if grids:
        lines += ["", "## Image grids", ""]
        lines += [
            f"- {s}: `{p}` (grey input, baseline, audio-infused with r, ground truth)"
            for s, p in grids.items()
        ]
    return lines


def _protocol(metrics: dict) -> list[str]:
    return [
        "",
        "## Protocol",
        "",
        *(
            f"- {k.replace('_', ' ')}: {v}"
            for k, v in metrics["protocol"].items()
            if k not in ("size", "protocol", "gamut")
        ),
        "- PSNR of an image identical to its ground truth is infinite; split means use 100 dB for it.",
        "- Variants: baseline = the visual-only backbone trained alone (RUN/baseline); full = stage 3 with "
        "r from the relevance net, r = 0 for samples without audio (RUN/stage3); full_missing_audio = the "
        "same model with r = 0; no_r = the w/o-r model (RUN/no_r_stage3), r = 1 where audio exists; "
        "no_r_missing_audio = that model given a silent second for every sample, r = 1; e2e = audio "
        "guidance and relevance net trained end to end (RUN/e2e).",
        "",
    ]


def render_report(metrics: dict) -> str:
    """The markdown text of report.md (see the module docstring)."""
    setting = metrics.get("setting")
    paper = paper_numbers(metrics.get("backbone", ""))
    lines = _header(metrics) + _tables(metrics) + _mismatched_section(metrics) + _segments_section(metrics)
    if setting:
        lines += setting_lines(setting, paper[0] if paper else None)
    return "\n".join(lines + _not_available(metrics) + _protocol(metrics))


def write_report(metrics: dict, path: Path) -> Path:
    """Write report.md (atomically: temporary name, then rename)."""
    path = Path(path)
    write_text_atomic(path, render_report(metrics))
    return path
