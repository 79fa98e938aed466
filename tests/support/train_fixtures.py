"""A tiny training recipe for the trainer tests (model: support.model_configs.TINY_MODEL), and a writer
of recipe TOML files."""

from __future__ import annotations

import json
from pathlib import Path

from support.model_configs import TINY_MODEL

# every stage `--stage all` trains with both ablation chains, in training order
ALL_STAGES = (
    "baseline",
    "stage1",
    "stage2",
    "rnet",
    "stage3",
    "no_r_stage1",
    "no_r_stage2",
    "no_r_stage3",
    "e2e",
)
TINY_TRAIN = {"image_size": 32, "epochs": 2, "batch_size": 4, "lr": 1e-3, "log_every": 1}


def tiny_recipe(**train) -> dict:
    return {
        "model": dict(TINY_MODEL),
        "train": {**TINY_TRAIN, **train},
    }


def write_recipe(path: Path, recipe: dict) -> Path:
    """The recipe as TOML; a nested dict becomes its own table (`[model.backbone_options]`)."""
    lines = []

    def table(name: str, values: dict) -> None:
        lines.append(f"[{name}]")
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        for k, v in values.items():
            if k not in nested:
                lines.append(f"{k} = {json.dumps(v)}")
        for k, v in nested.items():
            table(f"{name}.{k}", v)

    for name, values in recipe.items():
        table(name, values)
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_eval_reports_every_variant(run: Path, split: Path, out: Path, backbone: str) -> None:
    """`aiaic-eval` of a run trained with `--stage all` on its val split (offline, CPU): every Table 2
    variant is scored with a PSNR and SSIM in range, and report.md names the backbone."""
    from typer.testing import CliRunner

    from aiaic.cli.eval import app as eval_app

    args = ["--run", str(run), "--shards", str(split), "--out", str(out), "--split", "val"]
    res = CliRunner().invoke(eval_app, [*args, "--device", "cpu", "--offline"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    variants = {"baseline", "full", "full_missing_audio", "no_r", "no_r_missing_audio", "e2e"}
    assert set(metrics["val"]) >= variants
    for scores in metrics["val"].values():
        assert 5.0 < scores["psnr"] < 60.0 and 0.0 < scores["ssim"] <= 1.0
    assert backbone in (out / "report.md").read_text()
