"""DDColor (Kang et al., ICCV 2023; the paper's "DDC") as an aiaic backbone, with its released weights.

    rgb = grey RGB of L (a = b = 0) in [0, 1]       x = (rgb - mean) / std (ImageNet, buffers)
    skips = ConvNeXt(x): norm0..norm3                 E
    q = DDColorDecoder(skips)  [B, num_queries, H, W]  C (DSG acts on out0 = `decoder.layers.0`)
    ab = refine_net(cat(q, x))  [B, 2, H, W], Lab a/b in Lab units (1x1 spectral conv)

`forward_official(rgb)` is the released model's own convention (RGB in [0, 1] -> ab in Lab units);
the aiaic contract (`encode`/`decode`/`forward`) speaks L_n = (L - 50) / 50 in and ab_n = ab / 110
out. H and W must be multiples of 32. The `state_dict` equals the official one key for key and
shape for shape (buffers included: BatchNorm statistics, spectral-norm `weight_u`/`weight_v`,
`mean`/`std`), so the released `.pth` / `pytorch_model.bin` files load strictly.

Builders: "ddcolor-tiny" (ConvNeXt-T, `ddcolor_paper_tiny`), "ddcolor-large" (ConvNeXt-L,
`ddcolor_paper`, `ddcolor_modelscope`, `ddcolor_artistic`) and "ddcolor-mini" (the same
architecture with few channels and layers, for CPU tests and benchmarks; no released weights).
Their specs (`SPECS`) name those weight sets (Hugging Face `piddnad/<name>`, `pytorch_model.bin`), so
`backbone_weights = "ddcolor_paper_tiny"` fetches the file with `huggingface_hub` where installed; the
4-way classifier `encoder.arch.head_cls.*` some files carry is dropped by the key filter and logged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, cast

import torch
from torch import nn

from aiaic.lab import grey_rgb  # the grey image as RGB in [0, 1]: DDColor's input
from aiaic.models.backbone_spec import (
    BackboneSpec,
    InputPolicy,
    OptimizerDefaults,
    RuntimeFlags,
    WeightFormat,
    WeightSet,
)
from aiaic.models.backbones.base import Backbone, Features
from aiaic.models.backbones.convnext import ConvNeXt
from aiaic.models.backbones.ddcolor_decoder import DDColorDecoder, spectral_conv
from aiaic.models.backbones.registry import BackboneSettings, register
from aiaic.models.critics import PATCH_CRITIC
from aiaic.models.weights import drop_prefix

AB_SCALE = 110.0  # ab_n = ab / AB_SCALE (DESIGN section 3)
CLASSIFIER_PREFIX = "encoder.arch.head_cls."  # a 4-way head some released files still carry


@dataclass(frozen=True)
class DDColorSize:
    """Every size of a DDColor model (the official values are those of tiny and large).

    depths, dims: ConvNeXt blocks and channels per stage. nf: pixel-decoder width (image features
    have nf // 2 channels). hidden_dim, nheads, dim_feedforward, dec_layers: the colour decoder's
    transformer. num_queries: colour queries.
    """

    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]
    nf: int = 512
    hidden_dim: int = 256
    nheads: int = 8
    dim_feedforward: int = 2048
    dec_layers: int = 9
    num_queries: int = 100


SIZES = {
    "ddcolor-tiny": DDColorSize(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "ddcolor-large": DDColorSize(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    "ddcolor-mini": DDColorSize(
        depths=(1, 1, 1, 1),
        dims=(16, 32, 64, 128),
        nf=64,
        hidden_dim=32,
        nheads=4,
        dim_feedforward=64,
        dec_layers=3,
        num_queries=16,
    ),
}


class _Encoder(nn.Module):
    """Holds the ConvNeXt as `arch` (the official checkpoints' `encoder.arch.*` names)."""

    arch: ConvNeXt

    def __init__(self, arch: ConvNeXt):
        super().__init__()
        self.arch = arch


# DDColor's L1 weight is 0.1 on ab in Lab units; on ab_n = ab / 110 the same pull is 0.1 * 110 = 11
LOSS_TERMS: Mapping[str, float] = {"l1": 11.0, "perceptual": 5.0, "adversarial": 1.0, "colorfulness": 0.5}
OPTIMIZER = OptimizerDefaults(name="adamw", lr=1e-4, betas=(0.9, 0.99), weight_decay=0.01)


class DDColor(Backbone):
    """DDColor: L_n [B, 1, H, W] -> ab_n [B, 2, H, W] (H, W multiples of 32); see the module docstring.

    Args:
        size: the model's sizes (`SIZES`).
        activation_checkpointing: recompute the ConvNeXt stages in the backward pass (saves memory
            when training the large model).

    `encode` returns [x, norm0, norm1, norm2, norm3, deepest]: x the ImageNet-normalised grey RGB
    [B, 3, H, W] (the refine net reads it), the four skips, and the deepest stage's map before its
    norm [B, dims[3], H/32, W/32] (for `pool`).
    """

    insertion_point = "decoder.layers.0"
    input_policy = InputPolicy(size_multiple=32, default_size=512)  # 512: the official pipeline's side
    loss_terms: ClassVar[Mapping[str, float]] = LOSS_TERMS  # the same as its spec's (`SPECS`)
    optimizer: ClassVar[OptimizerDefaults] = OPTIMIZER
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, size: DDColorSize, *, activation_checkpointing: bool = False):
        super().__init__()
        self.spec = size
        self.insertion_channels = size.nf
        self.feature_dim = size.dims[-1]  # length of `pool(feats)`
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.encoder = _Encoder(ConvNeXt(size.depths, size.dims, checkpoint_stages=activation_checkpointing))
        self.decoder = DDColorDecoder(
            size.dims,
            size.nf,
            size.hidden_dim,
            size.num_queries,
            size.nheads,
            size.dim_feedforward,
            size.dec_layers,
        )
        self.refine_net = nn.Sequential(nn.Sequential(spectral_conv(size.num_queries + 3, 2, 1, bias=True)))
        self.settle_spectral_norm()

    @torch.no_grad()
    def settle_spectral_norm(self, iterations: int = 10) -> None:
        """Run power iterations on every spectral-norm conv's stored u/v so that, after a random
        init, eval mode divides by the real largest singular value (released files carry settled u/v)."""
        for m in self.modules():
            u_buf = getattr(m, "weight_u", None)
            if not isinstance(m, nn.Conv2d) or not isinstance(u_buf, torch.Tensor) or u_buf.is_meta:
                continue
            w = cast(torch.Tensor, m.weight_orig).flatten(1)
            v_buf = cast(torch.Tensor, m.weight_v)
            u, v = u_buf, v_buf
            for _ in range(iterations):
                v = nn.functional.normalize(w.t() @ u, dim=0, eps=1e-12)
                u = nn.functional.normalize(w @ v, dim=0, eps=1e-12)
            u_buf.copy_(u)
            v_buf.copy_(v)

    # --- the official convention -----------------------------------------------------------
    def forward_official(self, rgb: torch.Tensor) -> torch.Tensor:
        """The released model's forward: RGB [B, 3, H, W] in [0, 1] -> ab [B, 2, H, W] in Lab units."""
        return self.decode_official(self.encode_rgb(rgb))

    def encode_rgb(self, rgb: torch.Tensor) -> Features:
        """E on RGB [B, 3, H, W] in [0, 1] (ImageNet mean/std applied here) -> the features (class doc)."""
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"DDColor expects RGB [B, 3, H, W], got {list(rgb.shape)}")
        if rgb.shape[-1] % self.size_multiple or rgb.shape[-2] % self.size_multiple:
            raise ValueError(
                f"DDColor needs H and W multiples of {self.size_multiple}, got {list(rgb.shape)}"
            )
        x = (rgb - self.mean) / self.std
        if self.encoder.arch.in_channels_last():
            x = x.contiguous(memory_format=torch.channels_last)
        skips, deepest = self.encoder.arch(x)
        return [x, *skips, deepest]

    def decode_official(self, feats: Features) -> torch.Tensor:
        """C -> ab [B, 2, H, W] in Lab units."""
        x, skips = feats[0], feats[1:5]
        queries = self.decoder(skips)
        return self.refine_net(torch.cat([queries, x], dim=1))

    # --- the aiaic contract ------------------------------------------------------------------
    def encode(self, L_n: torch.Tensor) -> Features:
        """E(L_n): L_n [B, 1, H, W] -> the features (see the class docstring)."""
        self.check_input(L_n)
        return self.encode_rgb(grey_rgb(L_n))

    def decode(self, feats: Features) -> torch.Tensor:
        """C(feats) -> ab_n [B, 2, H, W] = ab / 110."""
        return self.decode_official(feats) / AB_SCALE

    def pool(self, feats: Features) -> torch.Tensor:
        """ConvNeXt's own descriptor of the deepest map (LayerNorm of its spatial mean), [B, dims[3]]."""
        return self.encoder.arch.descriptor(feats[-1])

    def describe(self) -> str:
        return f"DDColor ({type(self).__name__}, encoder dims {self.spec.dims})"


@dataclass(frozen=True)
class DDColorOptions:
    """DDColor's `[model.backbone_options]`: none yet (its sizes are the registered names; activation
    checkpointing is `ModelConfig.activation_checkpointing`)."""


HF_FILE = "pytorch_model.bin"
# Released files: `{"params": state_dict}` .pth, or a bare state dict (Hugging Face's
# pytorch_model.bin); some still carry a 4-way classifier `encoder.arch.head_cls.*`, dropped and logged.
WEIGHT_FORMAT = WeightFormat(key_filter=drop_prefix(CLASSIFIER_PREFIX), ignored_what="classifier keys")

_BASE = BackboneSpec(
    name="ddcolor",
    options=DDColorOptions,
    input=DDColor.input_policy,
    weight_format=WEIGHT_FORMAT,
    optimizer=OPTIMIZER,
    loss=LOSS_TERMS,
    critic=PATCH_CRITIC,
    # ConvNeXt's final norm serves `pool` (the relevance net) only: the colour loss never reaches it.
    # Inference in channels-last layout: ~20-30 % faster on a CPU (ConvNeXt's depthwise convs and
    # its channel-last Linears need no copies), same values.
    runtime=RuntimeFlags(channels_last_inference=True, unused_parameters=True),
)


def _weights(*names: str) -> tuple[WeightSet, ...]:
    return tuple(
        WeightSet(
            name,
            file=HF_FILE,
            hf_repo=f"piddnad/{name}",
            url="https://github.com/piddnad/DDColor/blob/master/MODEL_ZOO.md",
            description=f"DDColor's released {name}",
        )
        for name in names
    )


SPECS = {
    "ddcolor-tiny": dataclasses.replace(
        _BASE, name="ddcolor-tiny", weights=_weights("ddcolor_paper_tiny"), description="DDColor-T"
    ),
    "ddcolor-large": dataclasses.replace(
        _BASE,
        name="ddcolor-large",
        weights=_weights("ddcolor_paper", "ddcolor_modelscope", "ddcolor_artistic"),
        description="DDColor-L",
    ),
    "ddcolor-mini": dataclasses.replace(
        _BASE, name="ddcolor-mini", description="DDColor's architecture, small, for CPU tests"
    ),
}


def build_ddcolor(name: str, cfg: BackboneSettings) -> DDColor:
    """The DDColor `name` ("ddcolor-tiny", "ddcolor-large", "ddcolor-mini"), random weights."""
    return DDColor(SIZES[name], activation_checkpointing=cfg.activation_checkpointing)


@register(SPECS["ddcolor-tiny"])
def build_ddcolor_tiny(options: DDColorOptions, cfg: BackboneSettings) -> DDColor:
    """DDColor-T: ConvNeXt-T encoder (`ddcolor_paper_tiny`)."""
    return build_ddcolor("ddcolor-tiny", cfg)


@register(SPECS["ddcolor-large"])
def build_ddcolor_large(options: DDColorOptions, cfg: BackboneSettings) -> DDColor:
    """DDColor-L: ConvNeXt-L encoder (`ddcolor_paper`, `ddcolor_modelscope`, `ddcolor_artistic`)."""
    return build_ddcolor("ddcolor-large", cfg)


@register(SPECS["ddcolor-mini"])
def build_ddcolor_mini(options: DDColorOptions, cfg: BackboneSettings) -> DDColor:
    """The DDColor architecture with few channels and layers, for CPU tests and benchmarks."""
    return build_ddcolor("ddcolor-mini", cfg)
