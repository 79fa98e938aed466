"""ChromaGAN's class term (Vitoria et al., WACV 2020): Keras's `kld` against a frozen ImageNet VGG16.

ChromaGAN's combined model minimises, per batch (its `loss_weights` [1.0, 0.003, -0.1]),

    mse(ab01, ab01_true) + 0.003 * KL(VGG16(x) || class head) - 0.1 * mean C(L01, ab01)

and its critic C minimises -mean C(real) + mean C(fake) + 10 * GP (WGAN-GP); Adam lr 2e-5, betas
(0.5, 0.999) for both. ab01 = (ab + 128) / 255 (OpenCV 8-bit a, b over 255), L01 = L / 100.
In aiaic (`aiaic.models.backbones.chromagan`'s spec): "l2" with weight (110 / 255)^2 (the mean
squared error on ab01 is that times the one on ab_n), "class_kl" 0.003 (this module), and the shared
"adversarial" term 0.1 (-mean C(fake)) against ChromaGAN's critic with the shared WGAN-GP trainer.

The teacher reads what ChromaGAN.py gives it: the grey L01 tiled to 3 channels ("grey", the
official behaviour; Keras's VGG16 then sees it without its caffe preprocessing), or the true colour
image ("color", the paper's wording); torchvision's ImageNet normalisation is applied to either
(its weights expect it). Its weights are torchvision's `vgg16-397923af.pth` (a named file or the
torch hub cache), never downloaded; without them the term is off with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg16

from aiaic.errors import InputError
from aiaic.models.weights import read_state_dict

KERAS_EPS = 1e-7
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def keras_kld(p_true: torch.Tensor, p_pred: torch.Tensor) -> torch.Tensor:
    """Keras's `kld` loss on probabilities [B, K]: mean over B of sum_k t log(t / p), both clipped
    to [1e-7, 1]."""
    t = p_true.float().clamp(KERAS_EPS, 1.0)
    p = p_pred.float().clamp(KERAS_EPS, 1.0)
    return (t * (t.log() - p.log())).sum(-1).mean()


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


def teacher_rgb(
    L_n: torch.Tensor, true_rgb: torch.Tensor | None, teacher_input: Literal["grey", "color"]
) -> torch.Tensor:
    """What the teacher reads: the grey L01 = (L_n + 1) / 2 tiled to 3 channels (ChromaGAN.py) or
    the true colour RGB [B, 3, H, W]."""
    if teacher_input == "color":
        if true_rgb is None:
            raise ValueError("teacher_input 'color' needs the true colour image")
        return true_rgb
    return ((L_n + 1.0) / 2.0).expand(-1, 3, -1, -1)


def class_kl_term(
    teacher: nn.Module,
    class_logits: torch.Tensor,
    L_n: torch.Tensor,
    true_rgb: torch.Tensor | None = None,
    teacher_input: Literal["grey", "color"] = "grey",
) -> torch.Tensor:
    """Keras kld from the teacher's softmax to the class head's softmax ([B, 1000] logits)."""
    target = teacher(teacher_rgb(L_n, true_rgb, teacher_input))
    return keras_kld(target, F.softmax(class_logits.float(), dim=-1))
