"""The colour loss L_c: a weighted sum of named terms, chosen per stage in the recipe.

    [train.stage1]
    loss = { l1 = 11.0, perceptual = 5.0, adversarial = 1.0, colorfulness = 0.5 }

Terms (what each needs):
- "l1", "l2", "huber": on ab_n = ab / 110 against the target's ab_n [B, 2, H, W] (mean over every
  element; huber is smooth L1 with `huber_delta` in ab_n units). Nothing else needed.
- "perceptual": DDColor's (BasicSR `PerceptualLoss` with `vgg_type: vgg16_bn`, `use_input_norm`,
  `criterion: l1`): the L1 distance between ImageNet VGG16-BN features of the predicted and the true
  RGB, at conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 (the conv outputs, before BN) weighted 1/16,
  1/8, 1/4, 1/2, 1. Needs torchvision's `vgg16_bn-6c64b313.pth` (`[train] vgg16_bn_weights` or the
  torch hub cache); without it the term is off and the stage records why (never a random VGG).
- "adversarial": the generator side of a vanilla GAN, BCE(D(predicted RGB), real), against the patch
  discriminator of `aiaic.train.discriminator`, which trains alongside (its own optimizer and step).
- "colorfulness": DDColor's colourfulness loss, 1 - M per image with M the Hasler-Suesstrunk
  colourfulness of the predicted RGB in [0, 1] (on |R - G| and |(R + G) / 2 - B|, as DDColor writes
  it), averaged over the batch (DDColor sums over its per-GPU batch of 4: the mean keeps the weight
  independent of the batch size and of the number of ranks).

The RGB terms see RGB [B, 3, H, W] in [0, 1] converted from (L, ab) in float32: the prediction joined
with the input's L, and the truth as (L, target ab), as DDColor does. DDColor's own L1 is on ab in Lab
units; on ab_n the same pull needs 110 times the weight (its 0.1 is 11.0 here).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from aiaic.errors import InputError
from aiaic.lab import lab_from_normalized, lab_to_rgb
from aiaic.models.pretrained import read_state_dict

log = logging.getLogger(__name__)

TERM_NAMES = ("l1", "l2", "huber", "perceptual", "adversarial", "colorfulness")
RGB_TERMS = frozenset({"perceptual", "adversarial", "colorfulness"})
VGG16_BN_FILE = "vgg16_bn-6c64b313.pth"
# layer name -> (index in torchvision's vgg16_bn().features, weight): DDColor's layer_weights
PERCEPTUAL_LAYERS: dict[str, tuple[int, float]] = {
    "conv1_1": (0, 0.0625),
    "conv2_1": (7, 0.125),
    "conv3_1": (14, 0.25),
    "conv4_1": (24, 0.5),
    "conv5_1": (34, 1.0),
}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def color_loss(pred: torch.Tensor, target: torch.Tensor, kind: str, delta: float = 0.05) -> torch.Tensor:
    """A pixel term between ab_n predictions and targets [B, 2, H, W] (mean over every element)."""
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "l2":
        return F.mse_loss(pred, target)
    if kind == "huber":
        return F.smooth_l1_loss(pred, target, beta=delta)
    raise ValueError(f"unknown colour loss {kind!r}")


def colorfulness(rgb: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """DDColor's colourfulness M of RGB [B, 3, H, W] in [0, 1] -> [B].

    rg = |R - G|, yb = |(R + G) / 2 - B|; M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 +
    mean(yb)^2), std unbiased, over each image's pixels. `eps` inside the roots keeps the gradient
    finite for a grey image.
    """
    r, g, b = rgb[:, 0].flatten(1), rgb[:, 1].flatten(1), rgb[:, 2].flatten(1)
    rg = (r - g).abs()
    yb = (0.5 * (r + g) - b).abs()
    std_root = torch.sqrt(rg.std(dim=1).square() + yb.std(dim=1).square() + eps)
    mean_root = torch.sqrt(rg.mean(dim=1).square() + yb.mean(dim=1).square() + eps)
    return std_root + 0.3 * mean_root


def locate_vgg16_bn(named: Path | None) -> tuple[Path | None, str]:
    """(weights file, "") or (None, the reason the perceptual term is off).

    A file the recipe names must exist (InputError otherwise); without one, torchvision's file in the
    torch hub cache (`$TORCH_HOME/hub/checkpoints/`) serves when present.
    """
    if named is not None:
        if not Path(named).is_file():
            raise InputError(named, "VGG16-BN weights file not found ([train] vgg16_bn_weights)")
        return Path(named), ""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_BN_FILE
    if cached.is_file():
        return cached, ""
    return None, (
        f"no ImageNet VGG16-BN weights: set [train] vgg16_bn_weights or place {VGG16_BN_FILE} "
        f"in {cached.parent}"
    )


class VGGPerceptual(nn.Module):
    """DDColor's perceptual loss on ImageNet VGG16-BN features (frozen, always in eval mode).

    forward(pred_rgb, true_rgb) with RGB [B, 3, H, W] in [0, 1] -> scalar: sum over PERCEPTUAL_LAYERS
    of weight x mean |phi(pred) - phi(true)|. The ImageNet mean/std is applied inside.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        last = max(i for i, _ in PERCEPTUAL_LAYERS.values())
        # torchvision's vgg16_bn().features (config "D" with batch norm), without building its classifier
        self.features = make_layers(cfgs["D"], batch_norm=True)[: last + 1]
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._weights = {i: w for i, w in PERCEPTUAL_LAYERS.values()}
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGPerceptual:
        return super().train(False)  # ImageNet BatchNorm statistics stay fixed

    @classmethod
    def from_file(cls, path: Path) -> VGGPerceptual:
        """Load the `features.*` tensors of torchvision's vgg16_bn state dict (weights-only), checked."""
        net = cls()
        state = read_state_dict(path)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        own = net.state_dict()
        picked = {k: state[k] for k in own if k in state}
        missing = sorted(set(own) - set(picked))
        wrong = sorted(k for k in picked if tuple(picked[k].shape) != tuple(own[k].shape))
        if missing or wrong:
            raise InputError(
                path,
                f"not torchvision's VGG16-BN ({len(missing)} tensors missing, e.g. "
                f"{missing[:3]}; {len(wrong)} with wrong shapes, e.g. {wrong[:3]})",
            )
        net.load_state_dict(picked, strict=True)
        return net

    def _taps(self, x: torch.Tensor) -> Iterator[tuple[float, torch.Tensor]]:
        x = (x - self.mean) / self.std
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._weights:
                yield self._weights[i], x

    def forward(self, pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            targets = [t for _, t in self._taps(true_rgb)]
        total = pred_rgb.new_zeros((), dtype=torch.float32)
        for (w, p), t in zip(self._taps(pred_rgb), targets, strict=True):
            total = total + w * F.l1_loss(p.float(), t.float())
        return total


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of `module` do not require grad inside the block (gradients still flow through it)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(f)


def rgb_of(L_n: torch.Tensor, ab_n: torch.Tensor) -> torch.Tensor:
    """(L_n [B, 1, H, W], ab_n [B, 2, H, W]) -> RGB [B, 3, H, W] in [0, 1], computed in float32."""
    with torch.autocast(L_n.device.type, enabled=False):
        return lab_to_rgb(lab_from_normalized(L_n.float(), ab_n.float()))


def check_loss_terms(terms: Mapping[str, Any]) -> None:
    """ValueError unless `terms` maps known term names to weights >= 0, at least one > 0."""
    unknown = sorted(set(terms) - set(TERM_NAMES))
    if unknown:
        raise ValueError(f"unknown loss terms {unknown}; known: {list(TERM_NAMES)}")
    for name, w in terms.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ValueError(f"loss term {name}: weight must be a number >= 0, got {w!r}")
    if not any(w > 0 for w in terms.values()):
        raise ValueError(f"loss {dict(terms)} has no term with a weight > 0")


class ColorLoss(nn.Module):
    """L_c = sum over terms of weight x term (see the module docstring for each term).

    Args:
        terms: term name -> weight; terms with weight 0 are not computed.
        huber_delta: threshold of "huber", in ab_n units.
        perceptual: the VGG16-BN network, needed when "perceptual" has a weight.
        discriminator: the patch discriminator (RGB [B, 3, H, W] in [0, 1] -> logits [B, N]), needed
            when "adversarial" has a weight. It is trained elsewhere (its own optimizer), so it is not
            a submodule here: a DDP wrapper around the stage's objective must not own its parameters.

    forward(pred_ab_n, true_ab_n, L_n) -> {"loss": total, "loss_<term>": each unweighted term,
    "rgb_fake"/"rgb_real": RGB [B, 3, H, W] when an RGB term needs them}.
    """

    def __init__(
        self,
        terms: Mapping[str, float],
        *,
        huber_delta: float = 0.05,
        perceptual: VGGPerceptual | None = None,
        discriminator: nn.Module | None = None,
    ):
        super().__init__()
        check_loss_terms(terms)
        self.terms = {k: float(w) for k, w in terms.items() if w > 0}
        if "perceptual" in self.terms and perceptual is None:
            raise ValueError("the perceptual term needs the VGG16-BN network")
        if "adversarial" in self.terms and discriminator is None:
            raise ValueError("the adversarial term needs a discriminator")
        self.huber_delta = huber_delta
        self.perceptual = perceptual
        object.__setattr__(self, "discriminator", discriminator)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, L_n: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        fake = real = None
        if RGB_TERMS & set(self.terms):
            fake = rgb_of(L_n, pred)
            real = rgb_of(L_n, target).detach()
            out["rgb_fake"], out["rgb_real"] = fake, real
        total = pred.new_zeros((), dtype=torch.float32)
        for name, weight in self.terms.items():
            if name in ("l1", "l2", "huber"):
                value = color_loss(pred.float(), target.float(), name, self.huber_delta)
            elif name == "perceptual":
                assert self.perceptual is not None and fake is not None and real is not None
                value = self.perceptual(fake, real)
            elif name == "colorfulness":
                assert fake is not None
                value = (1.0 - colorfulness(fake)).mean()
            else:
                value = self._adversarial(fake)
            out[f"loss_{name}"] = value.detach()
            total = total + weight * value
        out["loss"] = total
        return out

    def _adversarial(self, fake: torch.Tensor | None) -> torch.Tensor:
        disc = cast(nn.Module | None, self.discriminator)
        assert disc is not None and fake is not None
        with frozen(disc):
            logits = disc(fake).float()
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def build_color_loss(
    terms: Mapping[str, float],
    *,
    huber_delta: float = 0.05,
    vgg16_bn_weights: Path | None = None,
    discriminator: nn.Module | None = None,
    device: torch.device | str = "cpu",
) -> tuple[ColorLoss, dict[str, str]]:
    """The stage's ColorLoss, and {term: reason} for terms switched off.

    The perceptual term is switched off (and logged) when no VGG16-BN weights are found; a
    file named in the recipe that is missing or wrong is an error.
    """
    active = {k: w for k, w in terms.items() if w > 0}
    disabled: dict[str, str] = {}
    perceptual = None
    if "perceptual" in active:
        path, reason = locate_vgg16_bn(vgg16_bn_weights)
        if path is None:
            disabled["perceptual"] = reason
            del active["perceptual"]
            log.warning("colour loss: the perceptual term is off (%s)", reason)
        else:
            perceptual = VGGPerceptual.from_file(path).to(device)
            log.info("colour loss: perceptual term on ImageNet VGG16-BN from %s", path)
    if not active:
        raise InputError(
            vgg16_bn_weights or Path(torch.hub.get_dir()),
            f"the colour loss {dict(terms)} has no term left: {disabled}",
        )
    loss = ColorLoss(active, huber_delta=huber_delta, perceptual=perceptual, discriminator=discriminator)
    return loss, disabled
