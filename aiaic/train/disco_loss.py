"""DISCO's colour loss (its `AnchorColorProbLoss` with the enhanced refine net), written from its training code.

    L = w_pal CE_r(palette logits, y) + w_ref CE_r(reference logits, y) + w_vgg P(RGB(L, ab_pred), RGB(L, ab))

- y [B, 1, h, w]: the class (nearest of the 313 gamut bins, `disco_colors`) of each superpixel's true
  colour, the affinity-weighted mean of the true ab_n over the superpixel (DISCO's `spix_colors`).
- CE_r: cross-entropy over the 313 classes, the mean over all superpixels of the batch, whose gradient
  is scaled per superpixel by the rebalancing weight of its true class (`class_weights(colorfulness)`,
  colorfulness 0.5 by default; DISCO's `RebalanceLoss`): the value is the plain cross-entropy.
- P: the L1 distance between ImageNet VGG-19 features at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
  weighted 1/32, 1/16, 1/8, 1/4, 1 (DISCO's `VGG19Loss`, feat_type "liu"), RGB in [0, 1] from the
  input's L with the predicted and the true ab, ImageNet mean/std applied inside; the truth's features
  carry no gradient. Needs torchvision's `vgg19-dcbb9e9d.pth` (a file the recipe names or the torch
  hub cache); without it the term is off and the stage records why (never a random VGG).
  Note: DISCO's 2024 commit "fixed a calling bug of VGG loss" detaches the prediction's features
  instead (its call passes the prediction as the truth), which leaves the refine net without gradient
  from this term; the released weights (2022) were trained before it. Ours follows the 2022 behaviour.
- Weights: 1, 1, 5 (DISCO's, `disco.LOSS_TERMS`). DISCO trains with Adam, lr 2e-4 decaying linearly
  to 1e-2 of it over the epochs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from aiaic.errors import InputError
from aiaic.models.backbones import disco_colors
from aiaic.models.backbones.disco_arch import DiscoOutputs, superpixel_pool
from aiaic.models.pretrained import read_state_dict, strip_prefix

log = logging.getLogger(__name__)

VGG19_FILE = "vgg19-dcbb9e9d.pth"
TERMS = ("disco_palette", "disco_reference", "disco_perceptual")
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


def locate_vgg19(named: Path | None) -> tuple[Path | None, str]:
    """(weights file, "") or (None, the reason the perceptual term is off). A named file must exist
    (InputError otherwise); without one, torchvision's file in the torch hub cache serves."""
    if named is not None:
        if not Path(named).is_file():
            raise InputError(named, "VGG-19 weights file not found ([model] vgg19_weights)")
        return Path(named), ""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    if cached.is_file():
        return cached, ""
    return None, (
        f"no ImageNet VGG-19 weights: set [model] vgg19_weights or place {VGG19_FILE} in {cached.parent}"
    )


class VGG19Perceptual(nn.Module):
    """DISCO's perceptual loss on ImageNet VGG-19 features (frozen, always in eval mode).

    forward(pred_rgb, true_rgb), RGB [B, 3, H, W] in [0, 1] -> scalar: sum over VGG19_TAPS of weight x
    mean |phi(pred) - phi(true)|."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.features = make_layers(cfgs["E"], batch_norm=False)[: max(VGG19_TAPS) + 1]
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Perceptual:
        return super().train(False)

    @classmethod
    def from_file(cls, path: Path) -> VGG19Perceptual:
        """The `features.*` tensors of torchvision's vgg19 state dict (weights-only), checked."""
        net = cls()
        state = strip_prefix(read_state_dict(path), "module.")
        own = net.state_dict()
        missing = sorted(k for k in own if k not in state)
        wrong = sorted(k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape))
        if missing or wrong:
            raise InputError(
                path, f"not torchvision's VGG-19 ({len(missing)} tensors missing, e.g. {missing[:3]}; "
                f"{len(wrong)} with wrong shapes, e.g. {wrong[:3]})",
            )  # fmt: skip
        net.load_state_dict({k: state[k] for k in own}, strict=True)
        return net

    def _taps(self, x: torch.Tensor) -> Iterator[tuple[float, torch.Tensor]]:
        x = (x - self.mean) / self.std
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG19_TAPS:
                yield VGG19_TAPS[i], x

    def forward(self, pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            targets = [t for _, t in self._taps(true_rgb)]
        total = pred_rgb.new_zeros((), dtype=torch.float32)
        for (w, p), t in zip(self._taps(pred_rgb), targets, strict=True):
            total = total + w * F.l1_loss(p.float(), t.float())
        return total


class AnchorColorProbLoss(nn.Module):
    """DISCO's colour loss (module docstring).

    Args:
        terms: term name ("disco_palette", "disco_reference", "disco_perceptual") -> weight; terms
            with weight 0 are not computed.
        colorfulness: the class rebalancing strength (0.5: DISCO's default; 1: none).
        perceptual: the VGG-19 network, needed when "disco_perceptual" has a weight.

    forward(out, target_ab, L_n): DISCO's outputs for the batch, the true ab_n [B, 2, H, W], L_n
    [B, 1, H, W] -> {"loss": total, "loss_<term>": each unweighted term (detached)}.
    """

    weights: torch.Tensor
    table: torch.Tensor

    def __init__(
        self,
        terms: Mapping[str, float],
        *,
        colorfulness: float = 0.5,
        perceptual: VGG19Perceptual | None = None,
    ):
        super().__init__()
        unknown = sorted(set(terms) - set(TERMS))
        if unknown:
            raise ValueError(f"unknown DISCO loss terms {unknown}; known: {list(TERMS)}")
        self.terms = {k: float(w) for k, w in terms.items() if w > 0}
        if not self.terms:
            raise ValueError(f"DISCO loss {dict(terms)} has no term with a weight > 0")
        if "disco_perceptual" in self.terms and perceptual is None:
            raise ValueError("the disco_perceptual term needs the VGG-19 network")
        self.perceptual = perceptual
        self.register_buffer("weights", disco_colors.class_weights(colorfulness), persistent=False)
        self.register_buffer("table", disco_colors.bins(), persistent=False)

    def forward(self, out: DiscoOutputs, target_ab: torch.Tensor, L_n: torch.Tensor) -> dict[str, torch.Tensor]:
        from aiaic.train.losses import rgb_of

        result: dict[str, torch.Tensor] = {}
        total = target_ab.new_zeros((), dtype=torch.float32)
        labels = superpixel_labels(target_ab, out.affinity, self.table)
        for name, weight in self.terms.items():
            if name == "disco_palette":
                value = rebalanced_ce(out.pal_logits, labels, self.weights)
            elif name == "disco_reference":
                value = rebalanced_ce(out.ref_logits, labels, self.weights)
            else:
                assert self.perceptual is not None
                value = self.perceptual(rgb_of(L_n, out.ab), rgb_of(L_n, target_ab).detach())
            result[f"loss_{name}"] = value.detach()
            total = total + weight * value
        result["loss"] = total
        return result


def build_disco_loss(
    terms: Mapping[str, float],
    *,
    colorfulness: float = 0.5,
    vgg19_weights: Path | None = None,
    device: torch.device | str = "cpu",
) -> tuple[AnchorColorProbLoss, dict[str, str]]:
    """DISCO's loss for a stage and {term: reason} for terms switched off (the perceptual term without
    VGG-19 weights, logged); a named VGG-19 file that is missing or wrong is an error."""
    active = {k: w for k, w in terms.items() if w > 0}
    disabled: dict[str, str] = {}
    perceptual = None
    if "disco_perceptual" in active:
        path, reason = locate_vgg19(vgg19_weights)
        if path is None:
            disabled["disco_perceptual"] = reason
            del active["disco_perceptual"]
            log.warning("DISCO loss: the perceptual term is off (%s)", reason)
        else:
            perceptual = VGG19Perceptual.from_file(path).to(device)
            log.info("DISCO loss: perceptual term on ImageNet VGG-19 from %s", path)
    loss = AnchorColorProbLoss(active, colorfulness=colorfulness, perceptual=perceptual).to(device)
    return loss, disabled
