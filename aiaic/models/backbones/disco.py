"""DISCO (Xia et al., SIGGRAPH Asia 2022; the paper's "DisColor") as an aiaic backbone, with its released weights.

    feats = encode(L_n)      E: superpixels, repnet tokens, the palette transformer and its logits
    ab_n = decode(feats)     C: k-means anchors, the reference transformer, the refine net; DSG acts
                             on the refine net's first conv, `enhanceNet.inConv.inConv.0` [B, 64, H, W]

DISCO reads L_n = (L - 50) / 50 and predicts ab_n = ab / 110 (tanh) itself, so it needs no conversion;
H and W must be multiples of 16 (its superpixels); the official inference size is 256 x 256. The
anchors come from a seeded k-means (`seed`, 130 as the official inference script): the same seed
gives the same colours for an image whatever its batch, and the official anchors for it (see
`disco_arch.anchor_mask`). Training the DISCO way needs the true colours inside C (anchors at the
true superpixel colours, with their true classes): `with_target(feats, ab_n)` adds them.

Builders: "disco" (the released DISCO-beta: `disco-beta.pth.tar`, `{"state_dict": ...}`, the same
file published as `disco-beta.pth.rar`) and "disco-mini" (the same architecture with few channels
and layers, for CPU tests; no released weights).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from aiaic.errors import InputError
from aiaic.models.backbones.base import Backbone, Features, Guide, OptimizerDefaults
from aiaic.models.backbones.disco_arch import DEFAULT_SEED, DiscoNet, DiscoOutputs, DiscoSize
from aiaic.models.backbones.registry import register

if TYPE_CHECKING:
    from aiaic.models.config import ModelConfig

log = logging.getLogger(__name__)

RELEASED_FILE = "disco-beta.pth.tar"
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
# Adam, lr 2e-4, no weight decay (DISCO's train_colorizer defaults); its lr decays linearly to 1e-2 of it
OPTIMIZER = OptimizerDefaults(name="adam", lr=2e-4, betas=(0.9, 0.999), weight_decay=0.0)
LR_DECAY_TO = 1e-2


def read_disco_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The weights of a DISCO checkpoint: `torch.load(weights_only=True)` of a dict holding them under
    "state_dict" (the release and DISCO's training save `epoch`, `state_dict`, `best_loss`,
    `optimizer`), or a bare state dict. A DataParallel "module." prefix is removed. InputError naming
    the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "DISCO weights file not found")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise InputError(p, f"cannot be read as a weights-only torch checkpoint: {type(e).__name__}: {e}") from e
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(p, "is not a DISCO checkpoint (expected a dict with the weights under 'state_dict')")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


class Disco(Backbone, DiscoNet):
    """DISCO behind the backbone contract (module docstring); `DiscoNet` holds the network.

    `encode` returns DiscoNet's features [L_n, affinity, tokens, palette features, palette logits]
    (+ the true ab_n when `with_target` added it); `decode` returns ab_n; `decode_outputs` gives every
    output (`DiscoOutputs`: the colour-class logits DISCO's loss reads, the anchors).
    """

    insertion_point = "enhanceNet.inConv.inConv.0"
    size_multiple = 16
    loss_terms: ClassVar[Mapping[str, float]] = LOSS_TERMS
    optimizer: ClassVar[OptimizerDefaults] = OPTIMIZER
    # the frozen superpixel net never has a gradient; the palette head has none without its loss term
    has_unused_parameters: ClassVar[bool] = True

    def __init__(self, size: DiscoSize, *, seed: int = DEFAULT_SEED):
        DiscoNet.__init__(self, size, seed=seed)
        self.insertion_channels = size.refine[0]
        self.feature_dim = size.d_model

    def encode(self, L_n: torch.Tensor) -> Features:
        """E(L_n): L_n [B, 1, H, W] -> DiscoNet's features (class docstring)."""
        self.check_input(L_n)
        return self.encode_features(L_n)

    @staticmethod
    def with_target(feats: Features, target_ab: torch.Tensor) -> Features:
        """`feats` with the true ab_n [B, 2, H, W] added: `decode` then trains the DISCO way."""
        return [*feats[:5], target_ab]

    def outputs(self, feats: Features, guide: Guide | None = None) -> DiscoOutputs:
        """Every output of C on `feats` (the true ab_n, when present, places the anchors)."""
        target = feats[5] if len(feats) > 5 else None
        return self.decode_outputs(list(feats[:5]), guide, target)

    def decode(self, feats: Features, guide: Guide | None = None) -> torch.Tensor:
        """C(feats) -> ab_n [B, 2, H, W] = ab / 110, `guide` applied at `enhanceNet.inConv.inConv.0`."""
        return self.outputs(feats, guide).ab

    def pool(self, feats: Features) -> torch.Tensor:
        """The mean of the palette transformer's superpixel features, [B, d_model]."""
        return feats[3].mean(dim=(2, 3))

    def load_pretrained(self, path: Path) -> dict[str, Any]:
        """Load `disco-beta.pth.tar` (or a checkpoint of DISCO's training) strictly; InputError naming
        the file and the missing, unexpected or wrongly shaped keys otherwise."""
        from aiaic.models.pretrained import load_checked

        p = Path(path)
        state = read_disco_checkpoint(p)
        load_checked(self, state, p, f"DISCO ({type(self).__name__}, d_model {self.size.d_model})")
        log.info("DISCO weights loaded from %s (%d tensors)", p, len(state))
        return {"file": str(p), "keys": len(state), "ignored": []}


def build_disco(name: str, cfg: ModelConfig | None = None, *, seed: int = DEFAULT_SEED) -> Disco:
    """The DISCO `name` ("disco", "disco-mini"), random weights; `seed` seeds its anchors."""
    return Disco(SIZES[name], seed=seed)


@register("disco")
def build_disco_beta(cfg: ModelConfig) -> Disco:
    """DISCO-beta (superpixel 16, d_model 64, 8 anchors, the enhanced refine net): `disco-beta.pth.tar`."""
    return build_disco("disco", cfg)


@register("disco-mini")
def build_disco_mini(cfg: ModelConfig) -> Disco:
    """The DISCO architecture with few channels and layers, for CPU tests and benchmarks."""
    return build_disco("disco-mini", cfg)
