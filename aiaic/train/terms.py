"""The registry of colour-loss terms: each a callable over the colour outputs and the batch, with its needs.

    @register_term("l1")
    def l1(t: TermInputs) -> torch.Tensor:
        return F.l1_loss(t.pred.float(), t.target.float())

    @register_term("perceptual", needs=TermNeeds(rgb=True, network=VGG16_BN))
    def perceptual(t: TermInputs) -> torch.Tensor:
        return t.network(t.rgb_fake, t.rgb_real)

A recipe names terms with weights (`loss = { l1 = 11.0, perceptual = 5.0 }`); a backbone's spec gives
its defaults (`BackboneSpec.loss`). The built-in terms (l1, l2, huber, perceptual, adversarial,
colorfulness) are registered by `aiaic.train.losses`; a backbone registers its own from its own file
(a colour-class cross-entropy on its "color_logits" extra, a KL term on a class head against a frozen
network), importing only this module.

What a term may declare it needs (`TermNeeds`):
- rgb: the RGB in [0, 1] of the prediction and of the truth (`TermInputs.rgb_fake` / `rgb_real`);
- network: a frozen pretrained network built from a weights file (`PretrainedNet`): found where the
  recipe names it or in the torch hub cache; where it is absent, the term is switched off and the
  stage records why (never a random network);
- critic: the backbone's critic (`BackboneSpec.critic`), trained alongside by its own optimizer;
- extras: named outputs of the backbone beside ab (`BackboneSpec.extras`), in `TermInputs.extras`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from aiaic.models.backbone_spec import CriticSpec


@dataclass(frozen=True)
class PretrainedNet:
    """A frozen pretrained network a term reads.

    name: its key (`[train] network_weights = { <name> = "file" }`, `ColorLoss(networks=...)`).
    file: torchvision's (or the authors') file name, looked for in the torch hub cache.
    load: file -> the frozen module (in eval mode, no gradient to its parameters).
    what: how messages name it ("VGG16-BN"); description: the longer name ("ImageNet VGG16-BN").
    recipe_key: the recipe setting that names its file ("vgg16_bn_weights", or
        "network_weights.<name>").
    """

    name: str
    file: str
    load: Callable[[Path], nn.Module]
    what: str
    description: str
    recipe_key: str


@dataclass(frozen=True)
class TermNeeds:
    """What a term reads besides ab_n and the target (module docstring)."""

    rgb: bool = False
    network: PretrainedNet | None = None
    critic: bool = False
    extras: tuple[str, ...] = ()


@dataclass
class CriticHandle:
    """The critic as a term sees it: the module (trained elsewhere) and its spec (input, loss)."""

    module: nn.Module
    spec: CriticSpec


@dataclass
class TermInputs:
    """What a term is computed from.

    pred, target: ab_n [B, 2, H, W] predicted and true; L_n [B, 1, H, W].
    extras: the backbone's named extra outputs; batch: the loader batch (on the device).
    rgb_fake / rgb_real: RGB [B, 3, H, W] in [0, 1] of (L, pred) and (L, target), where a term needs rgb.
    network: the term's pretrained network (`TermNeeds.network`); critic: `CriticHandle`.
    huber_delta: the huber term's threshold in ab_n units.
    """

    pred: torch.Tensor
    target: torch.Tensor
    L_n: torch.Tensor
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)
    batch: Mapping[str, torch.Tensor] = field(default_factory=dict)
    rgb_fake: torch.Tensor | None = None
    rgb_real: torch.Tensor | None = None
    network: nn.Module | None = None
    critic: CriticHandle | None = None
    huber_delta: float = 0.05


TermFn = Callable[[TermInputs], torch.Tensor]


@dataclass(frozen=True)
class LossTerm:
    """A registered term: name, the callable (`TermInputs` -> scalar tensor), its needs, one line."""

    name: str
    fn: TermFn
    needs: TermNeeds = TermNeeds()
    description: str = ""


TERMS: dict[str, LossTerm] = {}


def register_term(
    name: str, *, needs: TermNeeds = TermNeeds(), description: str = ""
) -> Callable[[TermFn], TermFn]:
    """Decorator: make `fn(t: TermInputs) -> scalar` the loss term `name`."""

    def deco(fn: TermFn) -> TermFn:
        if name in TERMS:
            raise ValueError(f"loss term {name!r} is already registered")
        TERMS[name] = LossTerm(name, fn, needs, description or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco


def unregister_term(name: str) -> None:
    """Remove `name` (for tests that register a throwaway term)."""
    TERMS.pop(name, None)


def get_term(name: str) -> LossTerm:
    """The term `name`; ValueError naming the known ones otherwise."""
    if name not in TERMS:
        raise ValueError(f"unknown loss terms {[name]}; known: {sorted(TERMS)}")
    return TERMS[name]


def term_names() -> list[str]:
    """Registered term names, sorted."""
    return sorted(TERMS)
