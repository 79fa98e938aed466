"""The colour loss L_c: a weighted sum of named terms, chosen per stage in the recipe.

    [train.stage1]
    loss = { l1 = 11.0, perceptual = 5.0, adversarial = 1.0, colorfulness = 0.5 }

Terms live in the registry of `aiaic.train.terms` (a backbone adds its own from its own file); this
module registers the built-in ones (what each needs):
- "l1", "l2", "huber": on ab_n = ab / 110 against the target's ab_n [B, 2, H, W] (mean over every
  element; huber is smooth L1 with `huber_delta` in ab_n units). Nothing else needed.
- "perceptual": DDColor's (BasicSR `PerceptualLoss` with `vgg_type: vgg16_bn`, `use_input_norm`,
  `criterion: l1`): the L1 distance between ImageNet VGG16-BN features of the predicted and the true
  RGB, at conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 (the conv outputs, before BN) weighted 1/16,
  1/8, 1/4, 1/2, 1. Needs torchvision's `vgg16_bn-6c64b313.pth` (`[train] vgg16_bn_weights` or the
  torch hub cache); without it the term is off and the stage records why (never a random VGG).
- "adversarial": the generator side of the backbone's critic (`BackboneSpec.critic`), which trains
  alongside (its own optimizer and step, `aiaic.train.discriminator`): for a vanilla GAN (DDColor's
  patch discriminator) BCE(D(predicted RGB), real); for WGAN-GP -mean D(prediction).
- "colorfulness": DDColor's colourfulness loss, 1 - M per image with M the Hasler-Suesstrunk
  colourfulness of the predicted RGB in [0, 1] (on |R - G| and |(R + G) / 2 - B|, as DDColor writes
  it), averaged over the batch (DDColor sums over its per-GPU batch of 4: the mean keeps the weight
  independent of the batch size and of the number of ranks).
- "colorfulness_ddcolor": the same term as DDColor weighs it: its loss is the sum of 1 - M over a
  per-GPU batch of 4 (`batch_size_per_gpu` of train_ddcolor.yml; DDP averages the ranks' gradients), i.e.
  DDCOLOR_GPU_BATCH x the batch mean, so that DDColor's weight 0.5 pulls each image as hard, relative to
  the mean-reduced L1 and perceptual terms, whatever our batch and rank count.

`color_enhance` (a stage setting; DDColor's `color_enhance_factor` 1.2): the truth's RGB is made more
saturated, clamp(grey + f (rgb - grey)) with grey = 0.299 R + 0.587 G + 0.114 B (torchvision's
Grayscale), before the perceptual term and the discriminator read it, as DDColor's color_enhacne_blend.

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
from aiaic.models.backbone_spec import CriticSpec
from aiaic.models.critics import PATCH_CRITIC
from aiaic.models.weights import check_state, read_state_dict
from aiaic.train.terms import (
    TERMS,
    CriticHandle,
    PretrainedNet,
    TermInputs,
    TermNeeds,
    get_term,
    register_term,
)

log = logging.getLogger(__name__)

VGG16_BN_FILE = "vgg16_bn-6c64b313.pth"
DDCOLOR_GPU_BATCH = 4  # DDColor's batch_size_per_gpu: its colourfulness loss sums over these images
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


def locate_network(net: PretrainedNet, named: Path | None) -> tuple[Path | None, str]:
    """(weights file, "") or (None, the reason the terms reading `net` are off).

    A file the recipe names must exist (InputError otherwise); without one, the file in the torch hub
    cache (`$TORCH_HOME/hub/checkpoints/<net.file>`) serves when present.
    """
    if named is not None:
        if not Path(named).is_file():
            raise InputError(named, f"{net.what} weights file not found ([train] {net.recipe_key})")
        return Path(named), ""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / net.file
    if cached.is_file():
        return cached, ""
    return None, (
        f"no {net.description} weights: set [train] {net.recipe_key} or place {net.file} in {cached.parent}"
    )


def locate_vgg16_bn(named: Path | None) -> tuple[Path | None, str]:
    """`locate_network` for the perceptual term's VGG16-BN."""
    return locate_network(VGG16_BN, named)


class VGGFeatureDistance(nn.Module):
    """A perceptual loss on frozen ImageNet VGG features (always in eval mode): forward(pred_rgb, true_rgb)
    with RGB [B, 3, H, W] in [0, 1] -> scalar, the sum over `taps` {layer index in torchvision's
    `vgg*.features`: weight} of weight x mean |phi(pred) - phi(true)|. The ImageNet mean/std is applied
    inside. `config` is torchvision's VGG config letter ("D": VGG16, "E": VGG19); `what` names the
    weights file a subclass loads in error messages."""

    mean: torch.Tensor
    std: torch.Tensor
    what = "torchvision's VGG"

    def __init__(self, config: str, batch_norm: bool, taps: Mapping[int, float]) -> None:
        super().__init__()
        # torchvision's vgg*().features, without building its classifier
        self.features = make_layers(cfgs[config], batch_norm=batch_norm)[: max(taps) + 1]
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._weights = dict(taps)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatureDistance:
        return super().train(False)  # ImageNet BatchNorm statistics stay fixed

    def load_file(self, path: Path) -> VGGFeatureDistance:
        """Load the `features.*` tensors of torchvision's state dict (weights-only), checked."""
        state = read_state_dict(path)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        picked = {k: state[k] for k in self.state_dict() if k in state}  # the file's later layers unused
        check_state(self, picked, path, self.what)
        self.load_state_dict(picked, strict=True)
        return self

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


class VGGPerceptual(VGGFeatureDistance):
    """DDColor's perceptual loss on ImageNet VGG16-BN features at PERCEPTUAL_LAYERS (see the base)."""

    what = "torchvision's VGG16-BN"

    def __init__(self) -> None:
        super().__init__("D", True, {i: w for i, w in PERCEPTUAL_LAYERS.values()})

    @classmethod
    def from_file(cls, path: Path) -> VGGFeatureDistance:
        """Load the `features.*` tensors of torchvision's vgg16_bn state dict (weights-only), checked."""
        return cls().load_file(path)


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


def color_enhance(rgb: torch.Tensor, factor: float) -> torch.Tensor:
    """DDColor's saturation boost of RGB [B, 3, H, W] in [0, 1]: clamp(grey (1 - f) + rgb f, 0, 1),
    grey = torchvision's luma 0.2989 R + 0.587 G + 0.114 B on every channel."""
    grey = (0.2989 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]).expand_as(rgb)
    return (grey * (1.0 - factor) + rgb * factor).clamp(0.0, 1.0)


def rgb_of(L_n: torch.Tensor, ab_n: torch.Tensor) -> torch.Tensor:
    """(L_n [B, 1, H, W], ab_n [B, 2, H, W]) -> RGB [B, 3, H, W] in [0, 1], computed in float32."""
    with torch.autocast(L_n.device.type, enabled=False):
        return lab_to_rgb(lab_from_normalized(L_n.float(), ab_n.float()))


# --- the built-in terms ------------------------------------------------------------------------

VGG16_BN = PretrainedNet(
    name="vgg16_bn",
    file=VGG16_BN_FILE,
    load=VGGPerceptual.from_file,
    what="VGG16-BN",
    description="ImageNet VGG16-BN",
    recipe_key="vgg16_bn_weights",
)


@register_term("l1")
def _l1(t: TermInputs) -> torch.Tensor:
    """Mean |pred - target| on ab_n."""
    return color_loss(t.pred.float(), t.target.float(), "l1")


@register_term("l2")
def _l2(t: TermInputs) -> torch.Tensor:
    """Mean (pred - target)^2 on ab_n."""
    return color_loss(t.pred.float(), t.target.float(), "l2")


@register_term("huber")
def _huber(t: TermInputs) -> torch.Tensor:
    """Smooth L1 on ab_n with threshold `huber_delta`."""
    return color_loss(t.pred.float(), t.target.float(), "huber", t.huber_delta)


@register_term("perceptual", needs=TermNeeds(rgb=True, network=VGG16_BN))
def _perceptual(t: TermInputs) -> torch.Tensor:
    """DDColor's perceptual loss on ImageNet VGG16-BN features of the RGB."""
    assert t.network is not None and t.rgb_fake is not None and t.rgb_real is not None
    return t.network(t.rgb_fake, t.rgb_real)


@register_term("colorfulness", needs=TermNeeds(rgb=True))
def _colorfulness(t: TermInputs) -> torch.Tensor:
    """1 - DDColor's colourfulness of the predicted RGB, averaged over the batch."""
    assert t.rgb_fake is not None
    return (1.0 - colorfulness(t.rgb_fake)).mean()


@register_term("colorfulness_ddcolor", needs=TermNeeds(rgb=True))
def _colorfulness_ddcolor(t: TermInputs) -> torch.Tensor:
    """1 - DDColor's colourfulness, summed as DDColor sums it over its per-GPU batch of 4."""
    assert t.rgb_fake is not None
    return DDCOLOR_GPU_BATCH * (1.0 - colorfulness(t.rgb_fake)).mean()


@register_term("adversarial", needs=TermNeeds(rgb=True, critic=True))
def _adversarial(t: TermInputs) -> torch.Tensor:
    """The generator side of the critic's loss on the prediction (vanilla GAN or WGAN-GP)."""
    assert t.critic is not None and t.rgb_fake is not None
    fake = critic_input(t.critic.spec, t.L_n, t.pred, t.rgb_fake)
    with frozen(t.critic.module):
        scores = t.critic.module(fake).float()
    if t.critic.spec.loss == "wgan-gp":
        return -scores.mean()
    return F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))


def critic_input(spec: CriticSpec, L_n: torch.Tensor, ab_n: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """What the critic reads of one colouring: its RGB [B, 3, H, W] in [0, 1] ("rgb") or cat(L_n, ab_n)
    [B, 3, H, W] ("lab": conditioned on L)."""
    return rgb if spec.input == "rgb" else torch.cat([L_n, ab_n], dim=1)


def check_loss_terms(terms: Mapping[str, Any]) -> None:
    """ValueError unless `terms` maps registered term names to weights >= 0, at least one > 0."""
    unknown = sorted(set(terms) - set(TERMS))
    if unknown:
        raise ValueError(f"unknown loss terms {unknown}; known: {sorted(TERMS)}")
    for name, w in terms.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ValueError(f"loss term {name}: weight must be a number >= 0, got {w!r}")
    if not any(w > 0 for w in terms.values()):
        raise ValueError(f"loss {dict(terms)} has no term with a weight > 0")


class ColorLoss(nn.Module):
    """L_c = sum over terms of weight x term (each a registered `aiaic.train.terms.LossTerm`).

    Args:
        terms: term name -> weight; terms with weight 0 are not computed.
        huber_delta: threshold of "huber", in ab_n units.
        networks: the frozen pretrained networks the terms need, by `PretrainedNet.name`.
        perceptual: the VGG16-BN network (`networks["vgg16_bn"]`), needed by "perceptual".
        discriminator: the critic (x [B, 3, H, W] -> scores [B, N]), needed by a term that reads it
            ("adversarial"). It is trained elsewhere (its own optimizer), so it is not a submodule
            here: a DDP wrapper around the stage's objective must not own its parameters.
        critic: the critic's spec (its input and loss); DDColor's patch critic when not given.
        color_enhance: the truth's saturation factor for the RGB the perceptual term and the critic
            read (`color_enhance`; 1 = as is; DDColor 1.2).

    forward(pred_ab_n, true_ab_n, L_n, extras=None, batch=None) -> {"loss": total, "loss_<term>":
    each unweighted term, "rgb_fake"/"rgb_real": RGB [B, 3, H, W] when a term needs them, and
    "lab_fake"/"lab_real" (cat(L_n, ab_n)) for a critic that reads Lab}.
    """

    def __init__(
        self,
        terms: Mapping[str, float],
        *,
        huber_delta: float = 0.05,
        networks: Mapping[str, nn.Module] | None = None,
        perceptual: VGGPerceptual | None = None,
        discriminator: nn.Module | None = None,
        critic: CriticSpec | None = None,
        color_enhance: float = 1.0,
    ):
        super().__init__()
        check_loss_terms(terms)
        if not color_enhance > 0:
            raise ValueError(f"color_enhance must be > 0, got {color_enhance}")
        self.color_enhance = float(color_enhance)
        self.terms = {k: float(w) for k, w in terms.items() if w > 0}
        nets = dict(networks or {})
        if perceptual is not None:
            nets[VGG16_BN.name] = perceptual
        for name in self.terms:
            needs = get_term(name).needs
            if needs.network is not None and needs.network.name not in nets:
                raise ValueError(f"the {name} term needs the {needs.network.what} network")
            if needs.critic and discriminator is None:
                raise ValueError(f"the {name} term needs a discriminator")
        self.huber_delta = huber_delta
        self.networks = nn.ModuleDict(nets)
        self.critic_spec = critic or PATCH_CRITIC
        object.__setattr__(self, "discriminator", discriminator)

    @property
    def perceptual(self) -> nn.Module | None:
        """The VGG16-BN of the perceptual term (None when it is not used)."""
        return self.networks[VGG16_BN.name] if VGG16_BN.name in self.networks else None

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        L_n: torch.Tensor,
        extras: Mapping[str, torch.Tensor] | None = None,
        batch: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        needs = [get_term(name).needs for name in self.terms]
        fake = real = None
        if any(n.rgb for n in needs):
            fake = rgb_of(L_n, pred)
            real = rgb_of(L_n, target).detach()
            if self.color_enhance != 1.0:
                real = color_enhance(real, self.color_enhance)
            out["rgb_fake"], out["rgb_real"] = fake, real
        disc = cast(nn.Module | None, self.discriminator)
        handle = CriticHandle(disc, self.critic_spec) if disc is not None else None
        if handle is not None and self.critic_spec.input == "lab" and any(n.critic for n in needs):
            out["lab_fake"] = torch.cat([L_n, pred], dim=1)
            out["lab_real"] = torch.cat([L_n, target], dim=1).detach()
        total = pred.new_zeros((), dtype=torch.float32)
        for (name, weight), need in zip(self.terms.items(), needs, strict=True):
            inputs = TermInputs(
                pred,
                target,
                L_n,
                extras or {},
                batch or {},
                fake,
                real,
                self.networks[need.network.name] if need.network is not None else None,
                handle,
                self.huber_delta,
            )
            value = get_term(name).fn(inputs)
            out[f"loss_{name}"] = value.detach()
            total = total + weight * value
        out["loss"] = total
        return out


def build_color_loss(
    terms: Mapping[str, float],
    *,
    huber_delta: float = 0.05,
    vgg16_bn_weights: Path | None = None,
    network_weights: Mapping[str, Path] | None = None,
    discriminator: nn.Module | None = None,
    critic: CriticSpec | None = None,
    color_enhance: float = 1.0,
    device: torch.device | str = "cpu",
) -> tuple[ColorLoss, dict[str, str]]:
    """The stage's ColorLoss, and {term: reason} for terms switched off.

    A term whose pretrained network is not found (`vgg16_bn_weights` / `network_weights[name]`, else
    the torch hub cache) is switched off (and logged); a file named in the recipe that is missing or
    wrong is an error.
    """
    active = {k: w for k, w in terms.items() if w > 0}
    named = dict(network_weights or {})
    if vgg16_bn_weights is not None:
        named[VGG16_BN.name] = Path(vgg16_bn_weights)
    disabled: dict[str, str] = {}
    networks: dict[str, nn.Module] = {}
    for name in list(active):
        net = get_term(name).needs.network
        if net is None or net.name in networks:
            continue
        path, reason = locate_network(net, named.get(net.name))
        if path is None:
            disabled[name] = reason
            del active[name]
            log.warning("colour loss: the %s term is off (%s)", name, reason)
        else:
            networks[net.name] = net.load(path).to(device)
            log.info("colour loss: %s term on %s from %s", name, net.description, path)
    if not active:
        raise InputError(
            vgg16_bn_weights or Path(torch.hub.get_dir()),
            f"the colour loss {dict(terms)} has no term left: {disabled}",
        )
    loss = ColorLoss(
        active,
        huber_delta=huber_delta,
        networks=networks,
        discriminator=discriminator,
        critic=critic,
        color_enhance=color_enhance,
    )
    return loss, disabled
