"""DISCO (Xia et al., SIGGRAPH Asia 2022; the paper's "DisColor") as a backbone, with its released weights.

    feats = encode(L_n)      E: superpixels, repnet tokens, the palette transformer and its logits
    ab_n = decode(feats)     C: k-means anchors, the reference transformer, the refine net; DSG acts
                             on the refine net's first conv, `enhanceNet.inConv.inConv.0` [B, 64, H, W]
                             (a forward hook; the in-place ReLU after it sees the hook's own tensor)

DISCO reads L_n = (L - 50) / 50 and predicts ab_n = ab / 110 (tanh) itself, so it needs no conversion;
H and W must be multiples of 16 (its superpixels); the official inference size is 256 x 256. The
anchors come from a seeded k-means (`seed`, 130 as the official inference script): the same seed
gives the same colours for an image whatever its batch, and the official anchors for it (see
`disco_arch.anchor_mask`). Training the DISCO way needs the true colours inside C (anchors at the
true superpixel colours, with their true classes): the colour objective adds them through
`teacher_features(feats, ab_n)`. Options (`[model.backbone_options]`): `DiscoOptions`.

Builders: "disco" (the released DISCO-beta: `disco-beta.pth.tar`, `{"state_dict": ...}`, the same
file published as `disco-beta.pth.rar`; weight set "disco-beta") and "disco-mini" (the same
architecture with few channels and layers, for CPU tests; no released weights). The loss terms are
in `disco_loss` (registered on import).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from aiaic.models.backbone_spec import (
    BackboneSpec,
    InputPolicy,
    OptimizerDefaults,
    RuntimeFlags,
    WeightFormat,
    WeightSet,
)
from aiaic.models.backbones import disco_loss  # noqa: F401  (registers DISCO's loss terms)
from aiaic.models.backbones.base import Backbone, BackboneOutput, Features
from aiaic.models.backbones.disco_arch import DEFAULT_SEED, DiscoNet, DiscoOutputs, DiscoSize
from aiaic.models.backbones.registry import BackboneSettings, register

log = logging.getLogger(__name__)

SIZES = {
    "disco": DiscoSize(),
    "disco-mini": DiscoSize(
        seg=(4, 8, 8, 16, 16),
        rep=(8, 16, 16, 32),
        d_model=16,
        nhead=2,
        dim_feedforward=32,
        layers=1,
        refine=(16, 16, 16),
        res_blocks=1,
        n_anchors=8,
    ),
}
# DISCO's AnchorColorProbLoss (enhanced): palette and reference colour-class cross-entropies (weight 1
# each, class-rebalanced with colorfulness 0.5) and the VGG-19 perceptual term (weight 5)
LOSS_TERMS: Mapping[str, float] = {"disco_palette": 1.0, "disco_reference": 1.0, "disco_perceptual": 5.0}
# Adam, lr 2e-4, no weight decay (DISCO's train_colorizer defaults); its lr decays linearly to 1e-2 of
# it (a recipe's `lr_schedule = "linear"`, `lr_decay_to = 0.01`)
OPTIMIZER = OptimizerDefaults(name="adam", lr=2e-4, betas=(0.9, 0.999), weight_decay=0.0)
EXTRAS = {
    "pal_logits": "[B, 313, H/16, W/16] palette colour-class logits per superpixel",
    "ref_logits": "[B, 313, H/16, W/16] reference (anchor-conditioned) colour-class logits",
    "affinity": "[B, 9, H, W] each pixel's affinity to its 3 x 3 neighbouring superpixels",
}


@dataclass(frozen=True)
class DiscoOptions:
    """DISCO's `[model.backbone_options]`.

    seed: seeds the inference anchors' k-means (the official inference script's --seed, 130);
        `aiaic-colorize --seed` overrides it.
    teacher_anchors: while a colour loss is computed, place the anchors at the true superpixel
        colours with their true classes (DISCO's training forward); False: predicted anchors, as at
        inference.
    """

    seed: int = DEFAULT_SEED
    teacher_anchors: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")


class Disco(Backbone, DiscoNet):
    """DISCO behind the backbone contract (module docstring); `DiscoNet` holds the network.

    `encode` returns DiscoNet's features [L_n, affinity, tokens, palette features, palette logits]
    (+ the true ab_n when `teacher_features` added it); `decode` returns ab_n; `decode_outputs` adds
    the extras DISCO's loss reads (`EXTRAS`); `outputs` gives everything (`DiscoOutputs`).
    """

    insertion_point = "enhanceNet.inConv.inConv.0"
    input_policy = InputPolicy(size_multiple=16, default_size=256)

    def __init__(self, size: DiscoSize, *, seed: int = DEFAULT_SEED, teacher_anchors: bool = True):
        DiscoNet.__init__(self, size, seed=seed)
        self.teacher_anchors = teacher_anchors
        self.insertion_channels = size.refine[0]
        self.feature_dim = size.d_model

    def encode(self, L_n: torch.Tensor) -> Features:
        """E(L_n): L_n [B, 1, H, W] -> DiscoNet's features (class docstring)."""
        self.check_input(L_n)
        return self.encode_features(L_n)

    def teacher_features(self, feats: Features, target_ab: torch.Tensor) -> Features:
        """`feats` with the true ab_n [B, 2, H, W] added (when `teacher_anchors`): `decode` then places
        the anchors the way DISCO trains."""
        return [*feats[:5], target_ab] if self.teacher_anchors else list(feats[:5])

    def outputs(self, feats: Features) -> DiscoOutputs:
        """Every output of C on `feats` (the true ab_n, when present, places the anchors)."""
        target = feats[5] if len(feats) > 5 else None
        return self.run_decoder(list(feats[:5]), target)

    def decode_outputs(self, feats: Features) -> BackboneOutput:
        """C(feats) -> ab_n [B, 2, H, W] = ab / 110 and the extras (`EXTRAS`)."""
        out = self.outputs(feats)
        extras = {"pal_logits": out.pal_logits, "ref_logits": out.ref_logits, "affinity": out.affinity}
        return BackboneOutput(out.ab, extras)

    def decode(self, feats: Features) -> torch.Tensor:
        """C(feats) -> ab_n [B, 2, H, W] = ab / 110."""
        return self.outputs(feats).ab

    def pool(self, feats: Features) -> torch.Tensor:
        """The mean of the palette transformer's superpixel features, [B, d_model]."""
        return feats[3].mean(dim=(2, 3))

    def describe(self) -> str:
        return f"DISCO ({type(self).__name__}, d_model {self.size.d_model})"


_BASE = BackboneSpec(
    name="disco",
    options=DiscoOptions,
    input=Disco.input_policy,
    # the release (and DISCO's training) saves {"epoch", "state_dict", "best_loss", "optimizer"}: the
    # generic weights-only reader unwraps "state_dict"
    weight_format=WeightFormat(reader="torch"),
    optimizer=OPTIMIZER,
    loss=LOSS_TERMS,
    # the frozen superpixel net never has a gradient; the palette head has none without its loss term.
    # Inference in channels-last layout: its 3 x 3 convs run ~25 % faster on a CPU (repnet measured).
    runtime=RuntimeFlags(channels_last_inference=True, unused_parameters=True),
    extras=EXTRAS,
)
SPECS = {
    "disco": dataclasses.replace(
        _BASE,
        weights=(
            WeightSet(
                "disco-beta",
                file="disco-beta.pth.rar",
                hf_repo="menghanxia/disco",
                url="https://github.com/MenghanXia/DisentangledColorization (checkpoints/"
                "disco_download.sh: disco-beta.pth.tar, the same torch.save file)",
                description="DISCO-beta, the released DISCO (superpixel 16, 8 anchors, enhanced)",
            ),
        ),
        description="DISCO (DisColor), the released DISCO-beta",
    ),
    "disco-mini": dataclasses.replace(
        _BASE, name="disco-mini", description="DISCO's architecture, small, for CPU tests"
    ),
}


def build_disco(name: str, options: DiscoOptions | None = None) -> Disco:
    """The DISCO `name` ("disco", "disco-mini"), random weights."""
    options = options or DiscoOptions()
    return Disco(SIZES[name], seed=options.seed, teacher_anchors=options.teacher_anchors)


@register(SPECS["disco"])
def build_disco_beta(options: DiscoOptions, cfg: BackboneSettings) -> Disco:
    """DISCO-beta (superpixel 16, d_model 64, 8 anchors, the enhanced refine net): `disco-beta.pth.tar`."""
    return build_disco("disco", options)


@register(SPECS["disco-mini"])
def build_disco_mini(options: DiscoOptions, cfg: BackboneSettings) -> Disco:
    """The DISCO architecture with few channels and layers, for CPU tests and benchmarks."""
    return build_disco("disco-mini", options)
