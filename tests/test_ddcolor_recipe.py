"""DDColor's training setting as its authors run it, as recipe settings: the MultiStepLR schedule, the
whole-frame 256 x 256 preparation without flip (the loader test checks the pixels), and the DDC recipe
carrying DDColor's values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aiaic.config import load_recipe
from aiaic.train.config import StageConfig
from aiaic.train.runner import make_scheduler

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


def test_multistep_halves_the_lr_at_ddcolors_milestones():
    """DDColor: 400k iterations, lr 1e-4 halved at 80k, 120k, ..., 360k. Scaled to 40 steps: halved
    after steps 8, 12, ..., 36."""
    cfg = StageConfig(lr=1e-4, lr_schedule="multistep")
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    sched = make_scheduler(cfg, opt, 40)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    want = [1e-4 * 0.5 ** sum(step >= m for m in (8, 12, 16, 20, 24, 28, 32, 36)) for step in range(40)]
    assert lrs == pytest.approx(want, rel=1e-12)
    assert lrs[-1] == pytest.approx(1e-4 / 256)
    with pytest.raises(ValueError, match="lr_milestones"):
        StageConfig(lr_schedule="multistep", lr_milestones=(80000.0,))


def test_the_ddc_recipe_carries_ddcolors_values():
    recipe = load_recipe(PIPELINES / "vggsound-ddcolor.toml")
    train = recipe["train"]
    assert (train["lr_schedule"], train["lr_gamma"]) == ("multistep", 0.5)
    assert train["lr_milestones"] == [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert train["stage2"]["lr_schedule"] == train["rnet"]["lr_schedule"] == "constant"
    assert recipe["loader"] == {"prepare": "resize", "flip": False}
    assert recipe["eval"]["protocol"] == "resize" and recipe["eval"]["gamut"] == "clip"
    assert recipe["model"]["backbone"] == "ddcolor-large" and recipe["paper"] is True
