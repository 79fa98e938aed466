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
    assert train["color_enhance"] == 1.2 and train["loss"]["colorfulness_ddcolor"] == 0.5


def _ddcolor_colorfulness_loss(pred: torch.Tensor) -> torch.Tensor:
    """DDColor's ColorfulnessLoss.forward (basicsr/losses/losses.py), step by step, weight 1."""
    loss = 0
    for i in range(pred.shape[0]):
        R, G, B = pred[i][0], pred[i][1], pred[i][2]
        rg = torch.abs(R - G)
        yb = torch.abs(0.5 * (R + G) - B)
        std_root = torch.sqrt(torch.std(rg) ** 2 + torch.std(yb) ** 2)
        mean_root = torch.sqrt(torch.mean(rg) ** 2 + torch.mean(yb) ** 2)
        loss += 1 - (std_root + 0.3 * mean_root)
    return loss


def _ddcolor_enhance(x: torch.Tensor, factor: float) -> torch.Tensor:
    """DDColor's color_enhacne_blend (basicsr/utils/color_enhance.py) on one image [3, H, W]."""
    from torchvision.transforms import Grayscale

    out = Grayscale(3)(x) * (1.0 - factor) + x * factor
    out[out < 0] = 0
    out[out > 1] = 1
    return out


def _batch(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    L_n = torch.rand(n, 1, 16, 16, generator=g) * 1.6 - 0.8
    ab = (torch.rand(n, 2, 16, 16, generator=g) - 0.5) * 0.8
    return L_n, ab, (torch.rand(n, 2, 16, 16, generator=g) - 0.5) * 0.8


def test_colorfulness_ddcolor_is_ddcolors_sum_over_its_gpu_batch():
    from aiaic.train.losses import ColorLoss, rgb_of

    L_n, pred, target = _batch(4)
    out = ColorLoss({"colorfulness_ddcolor": 1.0, "colorfulness": 1.0})(pred, target, L_n)
    ref = _ddcolor_colorfulness_loss(rgb_of(L_n, pred))  # DDColor: one GPU, its batch of 4
    assert float(out["loss_colorfulness_ddcolor"]) == pytest.approx(float(ref), rel=1e-5)
    assert float(out["loss_colorfulness"]) == pytest.approx(float(ref) / 4, rel=1e-5)  # the mean
    L_n, pred, target = _batch(2)  # another batch size: the same pull per image as DDColor's
    out = ColorLoss({"colorfulness_ddcolor": 1.0})(pred, target, L_n)
    assert float(out["loss_colorfulness_ddcolor"]) == pytest.approx(
        2 * float(_ddcolor_colorfulness_loss(rgb_of(L_n, pred))), rel=1e-5
    )


def test_color_enhance_boosts_the_truth_the_perceptual_term_and_critic_read():
    from aiaic.train.losses import ColorLoss, color_enhance, rgb_of

    L_n, pred, target = _batch(3)
    real = rgb_of(L_n, target)
    want = torch.stack([_ddcolor_enhance(real[i], 1.2) for i in range(3)])
    assert torch.allclose(color_enhance(real, 1.2), want, atol=1e-6)
    assert (color_enhance(real, 1.2) != real).any()
    out = ColorLoss({"colorfulness": 1.0}, color_enhance=1.2)(pred, target, L_n)
    assert torch.allclose(out["rgb_real"], want, atol=1e-6)  # what the discriminator step reads
    assert torch.allclose(out["rgb_fake"], rgb_of(L_n, pred))  # the prediction is left alone
    plain = ColorLoss({"colorfulness": 1.0})(pred, target, L_n)
    assert torch.equal(plain["rgb_real"], real)
    with pytest.raises(ValueError, match="color_enhance"):
        StageConfig(color_enhance=0.0)
