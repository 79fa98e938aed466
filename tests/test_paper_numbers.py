"""The paper's numbers: aiaic.eval.paper_numbers held cell by cell to paper-tables.md (the reference copy
of the paper's Tables 1 and 2), and the report's paper rows and deltas beside ours."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from aiaic.eval.paper_numbers import PAPER_NUMBERS, paper_backbone, paper_value
from aiaic.eval.report import render_report

TABLES = Path(__file__).parent / "support" / "paper-tables.md"
SHARED_TABLES = ROOT.parent / "shared" / "reference" / "paper-tables.md"
SPLITS = ("val", "test", "ood")  # the paper's VGGSound, AVE, VGGSound_OOD columns
METRICS = ("lpips", "psnr", "ssim")
TABLE2_ROWS = {
    "full": "full",
    "w/o multi-step": "e2e",
    "w/o r": "no_r",
    "w/o r (missing audio)": "no_r_missing_audio",
    "full (missing audio)": "full_missing_audio",
}


def _table_rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the markdown table under `## heading...` as lists of cells."""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in r] for r in rows[2:]]  # skip the header and the rule


def _cells(values: list[str]) -> dict[str, dict[str, float]]:
    nums = [float(v) for v in values]
    return {
        s: dict(zip(METRICS, nums[3 * i : 3 * i + 3], strict=True))
        for i, s in enumerate(SPLITS[: len(nums) // 3])
    }


def _parse(text: str) -> dict:
    """{backbone: {"table1": {variant: {split: {metric: value}}}, "table2": ...}} from paper-tables.md."""
    out: dict = {}
    for row in _table_rows(text, "Table 1"):
        method, values = row[0], row[1:]
        backbone, audio = (
            (method[: -len(" + audio")], True) if method.endswith(" + audio") else (method, False)
        )
        out.setdefault(backbone, {"table1": {}, "table2": {}})["table1"]["full" if audio else "baseline"] = (
            _cells(values)
        )
    for row in _table_rows(text, "Table 2"):
        backbone, setting, values = row[0], row[1], row[2:]
        assert len(values) == 6, row  # VGGSound and AVE only
        out[backbone]["table2"][TABLE2_ROWS[setting]] = _cells(values)
    return out


def test_the_module_holds_every_cell_of_the_papers_tables():
    text = TABLES.read_text()
    if SHARED_TABLES.is_file():  # the committed copy is the reference one
        assert SHARED_TABLES.read_text() == text
    parsed = _parse(text)
    assert set(parsed) == set(PAPER_NUMBERS) == {"DisColor", "DDC", "ChromaGAN"}
    n = 0
    for backbone, tables in parsed.items():
        for table, rows in tables.items():
            assert set(PAPER_NUMBERS[backbone][table]) == set(rows), (backbone, table)
            for variant, splits in rows.items():
                ours = PAPER_NUMBERS[backbone][table][variant]
                for split in SPLITS:
                    for metric in METRICS:
                        want = splits.get(split, {}).get(metric)  # None: Table 2 has no OOD column
                        assert ours[split][metric] == want, (backbone, table, variant, split, metric)
                        n += want is not None
    assert n == 3 * (2 * 9 + 5 * 6)  # every published cell, none invented
    # a few cells read by eye from the paper
    assert PAPER_NUMBERS["DDC"]["table1"]["baseline"]["ood"]["psnr"] == 23.535
    assert PAPER_NUMBERS["DisColor"]["table2"]["no_r_missing_audio"]["test"]["ssim"] == 0.098
    assert PAPER_NUMBERS["ChromaGAN"]["table2"]["e2e"]["val"]["lpips"] == 0.153


@pytest.mark.parametrize(
    ("ours", "paper"),
    [
        ("ddcolor-tiny", "DDC"),
        ("ddcolor-large", "DDC"),
        ("disco", "DisColor"),
        ("chromagan", "ChromaGAN"),
        ("unet", None),
    ],
)
def test_backbone_names_map_to_the_papers(ours, paper):
    assert paper_backbone(ours) == paper


def _metrics(backbone: str) -> dict:
    """A metrics.json as run_eval writes it, with hand-picked means on val and test."""
    means = {
        "baseline": (0.150, 24.0, 0.930),
        "full": (0.140, 24.5, 0.935),
        "full_missing_audio": (0.145, 24.2, 0.933),
        "no_r": (0.142, 24.4, 0.934),
        "no_r_missing_audio": (0.300, 18.0, 0.800),
        "e2e": (0.147, 24.1, 0.931),
    }

    def entry(lp, ps, ss):
        return {
            "lpips": lp,
            "psnr": ps,
            "ssim": ss,
            "colorfulness": 20.0,
            "mean_r": 0.5,
            "n": 4,
            "psnr_capped": 0,
        }

    split = {v: entry(*m) for v, m in means.items()}
    return {
        "val": split,
        "test": split,
        "splits": ["val", "test"],
        "variants": list(means),
        "backbone": backbone,
        "reference": {
            s: {"grey_input": entry(0.2, 22.0, 0.9), "ground_truth_colorfulness": 30.0}
            for s in ("val", "test")
        },
        "unavailable": {"splits": {}, "variants": {}},
        "lpips": {"available": True, "official_checksum": True, "weights": "w", "source": "s", "sha256": "x"},
        "protocol": {"ground_truth": "whole frame"},
        "grids": {},
        "provenance": {
            "run": "r",
            "shards": "s",
            "manifest": {"created": "today", "recipe_hash": "h"},
            "code": {"aiaic": "0", "commit": "abc"},
            "date": "today",
        },
    }


def _row(text: str, start: str, after: str = "") -> str:
    body = text.split(after, 1)[1] if after else text
    return next(line for line in body.splitlines() if line.startswith(start))


def test_report_prints_the_papers_rows_and_both_deltas():
    text = render_report(_metrics("ddcolor-large"))
    row = _row(text, "| Paper (DDC): Visual-only backbone")
    assert "| 0.1450 | 23.91 | 0.9250 | 0.1320 | 24.99 | 0.9330 | 0.1520 | 23.54 | 0.9260 |" in row
    # Table 2 on VGGSound: our w/o r (missing audio) row, then the paper's
    row = _row(text, "| w/o r (missing audio)", "### Table 2 on VGGSound (val)")
    assert row.endswith("| 0.2010 | 23.40 | 0.8900 |")
    # deltas: ours (full - baseline on val: -0.01, +0.5, +0.005) beside the paper's DDC deltas
    deltas = text.split("### Deltas on VGGSound (val)", 1)[1]
    row = _row(deltas, "| Audio-infused")
    assert row == (
        "| Audio-infused − visual-only (full − baseline) "
        "| -0.0100 | -0.0070 | +0.50 | +0.54 | +0.0050 | +0.0110 |"
    )
    row = _row(deltas, "| w/o r (missing audio) − full")
    assert row == "| w/o r (missing audio) − full | +0.1600 | +0.0630 | -6.50 | -1.05 | -0.1350 | -0.0460 |"
    ave = text.split("### Deltas on AVE (test)", 1)[1]
    assert _row(ave, "| w/o multi-step − full") == (
        "| w/o multi-step − full | +0.0070 | +0.0030 | -0.40 | -0.19 | -0.0040 | -0.0030 |"
    )
    assert paper_value("chromagan", "full", "ood", "psnr") == 24.940  # Table 1's "+ audio" row
    assert paper_value("chromagan", "no_r", "ood", "psnr") is None  # Table 2 has no OOD column


def test_a_backbone_the_paper_did_not_use_gets_our_deltas_only():
    text = render_report(_metrics("unet"))
    assert "Paper (" not in text and "paper " not in text.split("## Deltas", 1)[1].split("##", 1)[0]
    row = _row(text.split("### Deltas on AVE (test)", 1)[1], "| w/o r − full")
    assert row == "| w/o r − full | +0.0020 | -0.10 | -0.0010 |"
