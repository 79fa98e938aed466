"""ChromaGAN's training objective (Vitoria et al., WACV 2020), in aiaic's units.

ChromaGAN's combined model minimises, per batch (its `loss_weights` [1.0, 0.003, -0.1]),

    mse(ab01, ab01_true) + 0.003 * KL(VGG16(x) || class head) - 0.1 * mean C(L01, ab01)

and its critic C (a PatchGAN, `ChromaGANCritic`) minimises, right after each generator step,

    -mean C(L01, ab01_true) + mean C(L01, ab01_fake) + 10 * mean_i (1 - ||grad_ab C(L01, ab_i)||)^2

with ab_i = u ab01_true + (1 - u) ab01_fake, u ~ U(0, 1) per sample (WGAN-GP); Adam lr 2e-5,
betas (0.5, 0.999) for both. ab01 = (ab + 128) / 255 (OpenCV 8-bit a, b over 255), L01 = L / 100.

In aiaic's loss registry the same objective reads, on ab_n = ab / 110:
- "l2" with weight (110 / 255)^2 = 0.18608: the mean squared error on ab01 equals
  (110 / 255)^2 x the one on ab_n.
- "class_kl" 0.003: Keras's `kld` (both distributions clipped to [1e-7, 1], sum over classes,
  mean over the batch) from a frozen ImageNet VGG16's softmax (the teacher) to the class head's
  softmax. The teacher reads what ChromaGAN.py gives it: the grey L01 tiled to 3 channels
  (`teacher_input = "grey"`, the official behaviour), or the true colour image ("color", the
  paper's wording); torchvision's ImageNet normalisation is applied to either (its weights expect
  it). Needs torchvision's `vgg16-397923af.pth` (a named file or the torch hub cache), never
  downloaded; without it the term is off with the reason.
- "wasserstein" 0.1: the term's value is -mean C(L01, ab01) (the generator maximises the critic's
  score), so the weight stays >= 0 like every other term.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg16

from aiaic.errors import InputError
from aiaic.models.backbones.chromagan_arch import ChromaGANCritic
from aiaic.models.backbones.chromagan_io import ab01_from_ab_n, l01_from_L_n
from aiaic.models.pretrained import read_state_dict

log = logging.getLogger(__name__)

VGG16_FILE = "vgg16-397923af.pth"
MSE_WEIGHT_ON_AB_N = (110.0 / 255.0) ** 2  # ChromaGAN's mse weight 1 on ab01, on ab_n
LOSS_TERMS = {"l2": MSE_WEIGHT_ON_AB_N, "class_kl": 0.003, "wasserstein": 0.1}
GRADIENT_PENALTY = 10.0
ADAM = {"lr": 2e-5, "betas": (0.5, 0.999)}
KERAS_EPS = 1e-7
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def keras_kld(p_true: torch.Tensor, p_pred: torch.Tensor) -> torch.Tensor:
    """Keras's `kld` loss on probabilities [B, K]: mean over B of sum_k t log(t / p), both clipped
    to [1e-7, 1]."""
    t = p_true.float().clamp(KERAS_EPS, 1.0)
    p = p_pred.float().clamp(KERAS_EPS, 1.0)
    return (t * (t.log() - p.log())).sum(-1).mean()


def locate_vgg16(named: Path | None) -> tuple[Path | None, str]:
    """(torchvision's ImageNet VGG16 weights file, "") or (None, the reason the class term is off)."""
    if named is not None:
        if not Path(named).is_file():
            raise InputError(named, "ImageNet VGG16 weights file not found (the class_kl teacher)")
        return Path(named), ""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    if cached.is_file():
        return cached, ""
    return None, f"no ImageNet VGG16 weights: name the file or place {VGG16_FILE} in {cached.parent}"


class VGG16Teacher(nn.Module):
    """A frozen ImageNet VGG16 (torchvision's, with its classifier), always in eval mode:
    RGB [B, 3, H, W] in [0, 1] -> class probabilities [B, 1000] (ImageNet mean/std applied inside)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.net = vgg16(weights=None)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Teacher:
        return super().train(False)  # dropout stays off

    @classmethod
    def from_file(cls, path: Path) -> VGG16Teacher:
        """Load torchvision's vgg16 state dict (weights-only), strictly; InputError naming the file."""
        net = cls()
        state = {k.removeprefix("module."): v for k, v in read_state_dict(path).items()}
        try:
            net.net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise InputError(path, f"not torchvision's ImageNet VGG16 ({str(e)[:300]})") from e
        return net

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net((rgb.float() - self.mean) / self.std), dim=-1)


def wasserstein_generator_term(critic: nn.Module, L_n: torch.Tensor, ab_n: torch.Tensor) -> torch.Tensor:
    """-mean C(L01, ab01) of the prediction (the critic's parameters get no gradient from it)."""
    flags = [p.requires_grad for p in critic.parameters()]
    critic.requires_grad_(False)
    try:
        score = critic(l01_from_L_n(L_n).float(), ab01_from_ab_n(ab_n).float())
    finally:
        for p, f in zip(critic.parameters(), flags, strict=True):
            p.requires_grad_(f)
    return -score.mean()


def gradient_penalty(
    critic: nn.Module, L01: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, generator: Any = None
) -> torch.Tensor:
    """mean over samples of (1 - ||d C / d ab||_2)^2 at u real + (1 - u) fake, u ~ U(0, 1) per sample
    (the norm over every element of the sample's ab gradient, as ChromaGAN's Keras code takes it)."""
    u = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype, generator=generator)
    mix = (u * real + (1 - u) * fake).detach().requires_grad_(True)
    score = critic(L01, mix)
    (grad,) = torch.autograd.grad(score.sum(), mix, create_graph=True)
    norm = grad.flatten(1).pow(2).sum(1).sqrt()
    return (1.0 - norm).pow(2).mean()


def critic_loss(
    critic: nn.Module,
    L_n: torch.Tensor,
    ab_n_real: torch.Tensor,
    ab_n_fake: torch.Tensor,
    gp_weight: float = GRADIENT_PENALTY,
) -> dict[str, torch.Tensor]:
    """ChromaGAN's critic objective on aiaic tensors ([B, 1, H, W], [B, 2, H, W]); the fake is
    detached. Returns {"c_loss", "c_real", "c_fake", "c_gp"} (c_loss has the graph)."""
    L01 = l01_from_L_n(L_n).float().detach()
    real = ab01_from_ab_n(ab_n_real).float().detach()
    fake = ab01_from_ab_n(ab_n_fake).float().detach()
    s_real = critic(L01, real).mean()
    s_fake = critic(L01, fake).mean()
    gp = gradient_penalty(critic, L01, real, fake)
    loss = -s_real + s_fake + gp_weight * gp
    return {"c_loss": loss, "c_real": s_real.detach(), "c_fake": s_fake.detach(), "c_gp": gp.detach()}


class CriticTrainer:
    """ChromaGAN's WGAN-GP critic with its Adam (lr 2e-5, betas (0.5, 0.999)), one step per batch.

    Args:
        critic: the PatchGAN (on the training device); lr, betas: its Adam; gp_weight: 10.
    """

    def __init__(
        self,
        critic: ChromaGANCritic,
        lr: float = ADAM["lr"],  # type: ignore[assignment]
        betas: tuple[float, float] = ADAM["betas"],  # type: ignore[assignment]
        gp_weight: float = GRADIENT_PENALTY,
    ):
        self.module = critic
        self.gp_weight = gp_weight
        self.optimizer = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)

    def step(
        self, L_n: torch.Tensor, ab_n_real: torch.Tensor, ab_n_fake: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """One optimizer step; returns the detached terms of `critic_loss`."""
        self.module.train()
        self.module.requires_grad_(True)
        out = critic_loss(self.module, L_n, ab_n_real, ab_n_fake, self.gp_weight)
        self.optimizer.zero_grad(set_to_none=True)
        out["c_loss"].backward()
        self.optimizer.step()
        return {k: v.detach() for k, v in out.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["weights"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])


def teacher_rgb(
    L_n: torch.Tensor, true_rgb: torch.Tensor | None, teacher_input: Literal["grey", "color"]
) -> torch.Tensor:
    """What the teacher reads: the grey L01 tiled to 3 channels (ChromaGAN.py) or the true colour RGB."""
    if teacher_input == "color":
        if true_rgb is None:
            raise ValueError("teacher_input 'color' needs the true colour image")
        return true_rgb
    return l01_from_L_n(L_n).expand(-1, 3, -1, -1)


def class_kl_term(
    teacher: VGG16Teacher,
    class_logits: torch.Tensor,
    L_n: torch.Tensor,
    true_rgb: torch.Tensor | None = None,
    teacher_input: Literal["grey", "color"] = "grey",
) -> torch.Tensor:
    """Keras kld from the teacher's softmax to the class head's softmax ([B, 1000] logits)."""
    target = teacher(teacher_rgb(L_n, true_rgb, teacher_input))
    return keras_kld(target, F.softmax(class_logits.float(), dim=-1))
