"""The backbone contract: what a colorization backbone gives the audio-infused model.

A backbone is the paper's encoder E and colour generator C. The rest of aiaic sees one convention,
whatever the backbone's own:

    feats = net.encode(L_n)                 # E: L_n [B, 1, H, W] = (L - 50) / 50 -> its features
    ab_n = net.decode(feats)                # C: -> ab_n [B, 2, H, W] = ab / 110
    out = net.decode_outputs(feats)         # BackboneOutput(ab, extras): C with its named extra
                                            #    outputs (colour-class logits, class-head logits)
    ab_n = net(L_n, guide=None, feats=None) # C(E(L_n)) (or C(feats)), `guide` applied at the
                                            #    module named `insertion_point`
    out = net.forward_outputs(L_n, guide)   # the same, with the extras
    v = net.pool(feats)                     # [B, feature_dim], an image descriptor (relevance net)

Each backbone converts to and from its own input and output convention inside `encode`/`decode`
(the U-Net reads L_n and predicts ab_n directly; DDColor reads the grey image as RGB in [0, 1] with
ImageNet normalisation inside and predicts ab in Lab units).

The guide: `guide` maps the output of the module `get_submodule(insertion_point)`,
[B, insertion_channels, h, w], to one of the same shape; a forward hook on that module applies it,
so a decoder never threads it by hand, and every consumer of that output sees the guided map.
`guide=None` registers nothing: the plain backbone, bit for bit.

What a backbone declares on the instance (its architecture; they may depend on its options):
    insertion_point: dotted name of the module whose output the guide replaces ("decoder.layers.0").
    insertion_channels: channels of that output.
    feature_dim: length of `pool(feats)`.
    input_policy: `InputPolicy` (size multiple or fixed size); `check_input` enforces it.
Everything else (weights, training defaults, critic, runtime flags, options) is its registered
`BackboneSpec` (`aiaic.models.backbone_spec`); `build_backbone` attaches it as `backbone_spec`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aiaic.models.backbone_spec import BackboneSpec, InputPolicy, OptimizerDefaults, WeightFormat
from aiaic.models.weights import load_weights

Guide = Callable[[torch.Tensor], torch.Tensor]
Features = list[torch.Tensor]

__all__ = ["Backbone", "BackboneOutput", "Features", "Guide", "OptimizerDefaults"]


@dataclass
class BackboneOutput:
    """What C gives: ab_n [B, 2, H, W] and the backbone's named extra outputs (its spec's `extras`)."""

    ab: torch.Tensor
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)


class Backbone(nn.Module):
    """Base class of every registered backbone (see the module docstring for the contract)."""

    insertion_point: str
    insertion_channels: int
    feature_dim: int
    input_policy: InputPolicy = InputPolicy()
    backbone_spec: BackboneSpec | None = None  # set by `build_backbone`
    backbone_options: Any = None  # the parsed options it was built with (set by `build_backbone`)

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (`input_policy.size_multiple`)."""
        return self.input_policy.size_multiple

    def encode(self, L_n: torch.Tensor) -> Features:
        """E(L_n): L_n [B, 1, H, W] -> the encoder's features (what `decode` and `pool` take)."""
        raise NotImplementedError

    def decode(self, feats: Features) -> torch.Tensor:
        """C(feats) -> ab_n [B, 2, H, W]. A backbone with extras implements `decode_outputs` and
        this as `return self.decode_outputs(feats).ab`."""
        raise NotImplementedError

    def decode_outputs(self, feats: Features) -> BackboneOutput:
        """C(feats) -> ab_n and the named extras (none unless the backbone overrides this)."""
        return BackboneOutput(self.decode(feats))

    def pool(self, feats: Features) -> torch.Tensor:
        """A global descriptor of `encode`'s features, [B, feature_dim]."""
        raise NotImplementedError

    def forward_outputs(
        self, L_n: torch.Tensor, guide: Guide | None = None, feats: Features | None = None
    ) -> BackboneOutput:
        """C(E(L_n)) with `guide` at the insertion point; `feats`: `encode(L_n)` when the caller already
        has it (E then does not run)."""
        feats = self.encode(L_n) if feats is None else feats
        if guide is None:
            return self.decode_outputs(feats)
        with self.guided(guide):
            return self.decode_outputs(feats)

    def forward(
        self, L_n: torch.Tensor, guide: Guide | None = None, feats: Features | None = None
    ) -> torch.Tensor:
        """ab_n [B, 2, H, W] (`forward_outputs(...).ab`)."""
        return self.forward_outputs(L_n, guide, feats).ab

    @contextmanager
    def guided(self, guide: Guide) -> Iterator[None]:
        """Inside the block, the output of `get_submodule(insertion_point)` is replaced by `guide(output)`.

        The replacement is a tensor of its own (a copy where autograd might have kept the guide's
        result), so an in-place operation after the module (a `ReLU(inplace=True)`) can neither
        corrupt the guide's graph nor the caller's. ValueError when the guide changes the shape;
        RuntimeError when the module never ran (a wrong insertion point).
        """
        module = self.get_submodule(self.insertion_point)
        fired: list[bool] = []

        def hook(_m: nn.Module, _args: Any, out: torch.Tensor) -> torch.Tensor:
            guided = guide(out)
            if guided.shape != out.shape:
                raise ValueError(
                    f"the guide at {self.insertion_point} must keep the shape {list(out.shape)}, "
                    f"got {list(guided.shape)}"
                )
            fired.append(True)
            if guided is not out and guided.requires_grad and torch.is_grad_enabled():
                guided = guided.clone()
            return guided

        handle = module.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()
        if not fired:
            raise RuntimeError(
                f"{type(self).__name__}: the guide never ran: module {self.insertion_point!r} was not called"
            )

    def pooled_features(self, L_n: torch.Tensor) -> torch.Tensor:
        """pool(encode(L_n)), [B, feature_dim]."""
        return self.pool(self.encode(L_n))

    def check_input(self, L_n: torch.Tensor) -> None:
        """ValueError unless L_n is [B, 1, H, W] with H and W as `input_policy` allows."""
        if L_n.dim() != 4 or L_n.shape[1] != 1:
            raise ValueError(f"the backbone expects L_n [B, 1, H, W], got {list(L_n.shape)}")
        problem = self.input_policy.problem(int(L_n.shape[-2]), int(L_n.shape[-1]))
        if problem:
            raise ValueError(f"image side {problem} for {type(self).__name__}, got {list(L_n.shape)}")

    @property
    def weight_format(self) -> WeightFormat:
        """How a weight file is read for this backbone (its spec's `weight_format`)."""
        return self.backbone_spec.weight_format if self.backbone_spec is not None else WeightFormat()

    def load_pretrained(self, path: Path, fmt: WeightFormat | None = None) -> dict[str, Any]:
        """Load a weight file strictly (`fmt`, default `weight_format`: its reader and key filter);
        returns {"file", "keys", "ignored"}. InputError naming the file and the missing, unexpected or
        wrongly shaped keys otherwise; the keys the filter dropped are logged on the backbone's logger."""
        fmt = fmt or self.weight_format
        logger = logging.getLogger(type(self).__module__)
        report = load_weights(
            self,
            path,
            expected=f"a {self.describe()} checkpoint",
            reader=fmt.reader,
            key_filter=fmt.key_filter,
            ignored_what=fmt.ignored_what,
            logger=logger,
        )
        logger.info("%s weights loaded from %s (%d tensors)", self.describe(), report.file, report.keys)
        return report.as_dict()

    def describe(self) -> str:
        """How error messages name this backbone ("UNetColorizer", "DDColor (encoder dims ...)")."""
        return type(self).__name__
