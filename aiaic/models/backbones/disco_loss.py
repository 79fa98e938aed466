"""DISCO's colour loss terms (its `AnchorColorProbLoss` with the enhanced refine net), written from its
training code and registered in `aiaic.train.terms`: "disco_palette", "disco_reference", "disco_perceptual".

    L = w_pal CE_r(palette logits, y) + w_ref CE_r(reference logits, y) + w_vgg P(RGB(L, ab_pred), RGB(L, ab))

- y [B, 1, h, w]: the class (nearest of the 313 gamut bins, `disco_colors`) of each superpixel's true
  colour, the affinity-weighted mean of the true ab_n over the superpixel (DISCO's `spix_colors`).
- CE_r: cross-entropy over the 313 classes, the mean over all superpixels of the batch, whose gradient
  is scaled per superpixel by the rebalancing weight of its true class (`class_weights(colorfulness)`,
  colorfulness 0.5, DISCO's default; DISCO's `RebalanceLoss`): the value is the plain cross-entropy.
- P: the L1 distance between ImageNet VGG-19 features at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
  weighted 1/32, 1/16, 1/8, 1/4, 1 (DISCO's `VGG19Loss`, feat_type "liu"), RGB in [0, 1] from the
  input's L with the predicted and the true ab, ImageNet mean/std applied inside; the truth's features
  carry no gradient. Needs torchvision's `vgg19-dcbb9e9d.pth` (`[train] network_weights = { vgg19 =
  "FILE" }` or the torch hub cache); without it the term is off and the stage records why (never a
  random VGG).
  Note: DISCO's 2024 commit "fixed a calling bug of VGG loss" detaches the prediction's features
  instead (its call passes the prediction as the truth), which leaves the refine net without gradient
  from this term; the released weights (2022) were trained before it. Ours follows the 2022 behaviour.
- Weights: 1, 1, 5 (DISCO's, `disco.LOSS_TERMS`). DISCO trains with Adam, lr 2e-4 decaying linearly
  to 1e-2 of it over the epochs (`lr_schedule = "linear"`, `lr_decay_to = 0.01`).
The terms read DISCO's extras: "pal_logits", "ref_logits" [B, 313, H/16, W/16] and "affinity"
[B, 9, H, W] (`Disco.decode_outputs`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from aiaic.models.backbones import disco_colors
from aiaic.models.backbones.disco_arch import superpixel_pool
from aiaic.train.losses import VGGFeatureDistance
from aiaic.train.terms import PretrainedNet, TermInputs, TermNeeds, register_term

VGG19_FILE = "vgg19-dcbb9e9d.pth"
COLORFULNESS = 0.5  # DISCO's --colorfulness: the class rebalancing (lambda = 1 - 0.5)
# index in torchvision's vgg19().features of the ReLU whose output is read -> weight (DISCO's "liu")
VGG19_TAPS: dict[int, float] = {1: 1 / 32, 6: 1 / 16, 11: 1 / 8, 20: 1 / 4, 29: 1.0}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class _Rebalance(torch.autograd.Function):
    """Identity forward; backward scales the gradient by `weights` (DISCO's RebalanceLoss)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weights)
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (weights,) = ctx.saved_tensors
        return grad * weights, None


def rebalanced_ce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits [B, 313, h, w] against labels long [B, 1, h, w] (mean over superpixels),
    its gradient scaled per superpixel by `weights[labels]` (weights [313])."""
    scaled = _Rebalance.apply(logits.float(), weights.to(logits.device)[labels].float())
    return F.cross_entropy(scaled, labels.squeeze(1))


def superpixel_labels(target_ab: torch.Tensor, affinity: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """y: the class of each superpixel's true colour, target_ab [B, 2, H, W] -> long [B, 1, H/16, W/16]."""
    with torch.no_grad():
        return disco_colors.nearest_bin(superpixel_pool(target_ab.float(), affinity.float())[0], table)


class VGG19Perceptual(VGGFeatureDistance):
    """DISCO's perceptual loss on ImageNet VGG-19 features at VGG19_TAPS (`VGGFeatureDistance`)."""

    what = "torchvision's VGG-19"

    def __init__(self) -> None:
        super().__init__("E", False, VGG19_TAPS)

    @classmethod
    def from_file(cls, path: Path) -> VGGFeatureDistance:
        """The `features.*` tensors of torchvision's vgg19 state dict (weights-only), checked."""
        return cls().load_file(path)


VGG19 = PretrainedNet(
    name="vgg19",
    file=VGG19_FILE,
    load=VGG19Perceptual.from_file,
    what="VGG-19",
    description="ImageNet VGG-19 (torchvision's vgg19-dcbb9e9d.pth)",
    recipe_key="network_weights.vgg19",
)


@cache
def _class_weights() -> torch.Tensor:
    return disco_colors.class_weights(COLORFULNESS)


@cache
def _bins() -> torch.Tensor:
    return disco_colors.bins()


def _labels(t: TermInputs) -> torch.Tensor:
    return superpixel_labels(t.target, t.extras["affinity"], _bins())


@register_term(
    "disco_palette",
    needs=TermNeeds(extras=("pal_logits", "affinity")),
    description="DISCO: rebalanced cross-entropy of the palette colour classes per superpixel",
)
def disco_palette(t: TermInputs) -> torch.Tensor:
    return rebalanced_ce(t.extras["pal_logits"], _labels(t), _class_weights())


@register_term(
    "disco_reference",
    needs=TermNeeds(extras=("ref_logits", "affinity")),
    description="DISCO: rebalanced cross-entropy of the reference (anchor-conditioned) colour classes",
)
def disco_reference(t: TermInputs) -> torch.Tensor:
    return rebalanced_ce(t.extras["ref_logits"], _labels(t), _class_weights())


@register_term(
    "disco_perceptual",
    needs=TermNeeds(rgb=True, network=VGG19),
    description="DISCO: L1 between ImageNet VGG-19 relu1_1..relu5_1 features (1/32 .. 1)",
)
def disco_perceptual(t: TermInputs) -> torch.Tensor:
    assert t.network is not None and t.rgb_fake is not None and t.rgb_real is not None
    return t.network(t.rgb_fake, t.rgb_real)
