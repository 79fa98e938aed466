"""ChromaGAN's networks (Vitoria et al., WACV 2020) in PyTorch, with Keras 2's semantics.

The generator (`MODEL.colorization_model` of pvitoria/ChromaGAN), at the official 224 x 224:

    x = L/255 tiled to 3 channels [B, 3, 224, 224]
    trunk: VGG16 block1_conv1 .. block4_conv3 (+ ReLU)                      -> [B, 512, 28, 28]
    global: conv2d_6 (s2) bn_1 conv2d_7 bn_2 conv2d_8 (s2) bn_3 conv2d_9 bn_4 -> [B, 512, 7, 7]
        dense_1 1024 -> dense_2 512 -> dense_3 256 (linear), repeated over 28 x 28 [B, 256, 28, 28]
        class head: dense_4 4096 -> dense_5 4096 -> dense_6 1000 (linear; softmax = Keras output)
    mid-level: conv2d_10 512 bn_5 conv2d_11 256 bn_6                        -> [B, 256, 28, 28]
    fusion: cat([mid, global])                                             -> [B, 512, 28, 28]
    colouring: conv2d_12 1x1 256, conv2d_13 128 (the guide's insertion point), up x2, conv2d_14 64,
        conv2d_15 64, up x2, conv2d_16 32, conv2d_17 2 (sigmoid), up x2      -> ab01 [B, 2, 224, 224]

ab01 is OpenCV's 8-bit a, b over 255 (`chromagan_io` converts to aiaic's ab_n). Where PyTorch and
Keras differ, Keras wins: every conv carries its activation inside (conv -> ReLU -> BatchNorm, so a
forward hook on `conv2d_13` sees the post-ReLU map); stride-2 convs pad as TensorFlow's "same"
(the extra row and column go bottom/right); BatchNorm eps 1e-3 (momentum 0.99 in Keras's sense);
UpSampling2D is nearest; Flatten is over NHWC, so dense_1 and dense_4 read (h, w, c) order and take
the file's kernels as plain transposes. Module names are the Keras 2 layer names of the released
file (`trunk.block1_conv1`, `conv2d_6`, `batch_normalization_1`, `dense_1`, ...).

The Dense layers fix the input side: 224 for the released model (`image_size` of `ChromaGANSize`),
64 for `chromagan-mini`. The critic is ChromaGAN's PatchGAN: concat(L/255, ab01) -> 4x4 convs
64 s2, 128 s2, 256 s2, 512, 1 with LeakyReLU(0.3) between ("same" padding) -> [B, 1, S/8, S/8].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aiaic.models.backbones.base import Guide

KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01  # Keras momentum 0.99 (weight of the old statistic) in PyTorch's convention
LEAKY_SLOPE = 0.3  # Keras LeakyReLU's default alpha
VGG_BLOCKS = (2, 2, 3, 3)  # convs per VGG16 block kept in the trunk (block5 and block4_pool dropped)


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding of one axis: (before, after), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class KerasConv2d(nn.Conv2d):
    """Keras Conv2D(padding="same", activation=...) : [B, in, H, W] -> [B, out, ceil(H/s), ceil(W/s)].

    The activation ("relu", "sigmoid" or "linear") is part of the layer, as in Keras; padding is
    TensorFlow's "same" for any kernel and stride.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, activation: str = "relu"):
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0)
        if activation not in ("relu", "sigmoid", "linear"):
            raise ValueError(f"unknown activation {activation!r}")
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = tf_same_pads(x.shape[-2], k, s)
        left, right = tf_same_pads(x.shape[-1], k, s)
        y = super().forward(F.pad(x, (left, right, top, bottom)))
        if self.activation == "relu":
            return F.relu(y)
        if self.activation == "sigmoid":
            return torch.sigmoid(y)
        return y


def keras_batch_norm(channels: int) -> nn.BatchNorm2d:
    """Keras BatchNormalization's defaults: eps 1e-3, momentum 0.99."""
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


@dataclass(frozen=True)
class ChromaGANSize:
    """Every size of a ChromaGAN generator (the defaults are the released model's).

    image_size: the fixed input side (the Dense layers depend on it; a multiple of 32).
    vgg: channels of VGG16 blocks 1..4. global_width: channels of the global path's convs.
    global_dense: the Dense widths of the global path (the last is the fused global vector).
    class_hidden: hidden Dense widths of the class head; num_classes: its outputs (ImageNet's 1000).
    mid: the mid-level convs' widths. colour: conv2d_12 .. conv2d_16's widths (conv2d_17 gives 2).
    """

    image_size: int = 224
    vgg: tuple[int, int, int, int] = (64, 128, 256, 512)
    global_width: int = 512
    global_dense: tuple[int, int, int] = (1024, 512, 256)
    class_hidden: tuple[int, int] = (4096, 4096)
    num_classes: int = 1000
    mid: tuple[int, int] = (512, 256)
    colour: tuple[int, int, int, int, int] = (256, 128, 64, 64, 32)

    def __post_init__(self) -> None:
        if self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {self.image_size}")

    @property
    def flat_dim(self) -> int:
        """Inputs of dense_1 and dense_4: the flattened global map (image_size / 32)^2 x global_width."""
        return (self.image_size // 32) ** 2 * self.global_width


SIZES = {
    "chromagan": ChromaGANSize(),
    # the same graph, narrow, at a fixed 64 x 64 (its Dense layers are sized for 2 x 2 x 32 inputs)
    "chromagan-mini": ChromaGANSize(
        image_size=64,
        vgg=(8, 16, 32, 32),
        global_width=32,
        global_dense=(64, 32, 16),
        class_hidden=(64, 64),
        mid=(32, 16),
        colour=(32, 16, 8, 8, 8),
    ),
}


class VGGTrunk(nn.Module):
    """VGG16 to block4_conv3 (+ ReLU), Keras names: [B, 3, S, S] -> [B, vgg[3], S/8, S/8]."""

    def __init__(self, widths: tuple[int, int, int, int]):
        super().__init__()
        self.names: list[list[str]] = []
        in_ch = 3
        for b, (n, w) in enumerate(zip(VGG_BLOCKS, widths, strict=True), start=1):
            block = []
            for i in range(1, n + 1):
                name = f"block{b}_conv{i}"
                self.add_module(name, KerasConv2d(in_ch, w, 3))
                block.append(name)
                in_ch = w
            self.names.append(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b, block in enumerate(self.names):
            if b:
                x = F.max_pool2d(x, 2)
            for name in block:
                x = getattr(self, name)(x)
        return x


class ChromaGANGenerator(nn.Module):
    """ChromaGAN's generator: x [B, 3, S, S] in [0, 1] (L/255 tiled) -> (ab01 [B, 2, S, S], class
    logits [B, num_classes]); S = `size.image_size`. See the module docstring for the graph."""

    def __init__(self, size: ChromaGANSize):
        super().__init__()
        self.size = size
        v, g, m, c = size.vgg, size.global_width, size.mid, size.colour
        self.trunk = VGGTrunk(v)
        self.conv2d_6 = KerasConv2d(v[3], g, 3, stride=2)
        self.batch_normalization_1 = keras_batch_norm(g)
        self.conv2d_7 = KerasConv2d(g, g, 3)
        self.batch_normalization_2 = keras_batch_norm(g)
        self.conv2d_8 = KerasConv2d(g, g, 3, stride=2)
        self.batch_normalization_3 = keras_batch_norm(g)
        self.conv2d_9 = KerasConv2d(g, g, 3)
        self.batch_normalization_4 = keras_batch_norm(g)
        d = size.global_dense
        self.dense_1 = nn.Linear(size.flat_dim, d[0])
        self.dense_2 = nn.Linear(d[0], d[1])
        self.dense_3 = nn.Linear(d[1], d[2])
        h = size.class_hidden
        self.dense_4 = nn.Linear(size.flat_dim, h[0])
        self.dense_5 = nn.Linear(h[0], h[1])
        self.dense_6 = nn.Linear(h[1], size.num_classes)
        self.conv2d_10 = KerasConv2d(v[3], m[0], 3)
        self.batch_normalization_5 = keras_batch_norm(m[0])
        self.conv2d_11 = KerasConv2d(m[0], m[1], 3)
        self.batch_normalization_6 = keras_batch_norm(m[1])
        self.conv2d_12 = KerasConv2d(m[1] + d[2], c[0], 1)
        self.conv2d_13 = KerasConv2d(c[0], c[1], 3)
        self.conv2d_14 = KerasConv2d(c[1], c[2], 3)
        self.conv2d_15 = KerasConv2d(c[2], c[3], 3)
        self.conv2d_16 = KerasConv2d(c[3], c[4], 3)
        self.conv2d_17 = KerasConv2d(c[4], 2, 3, activation="sigmoid")

    def check_official_input(self, x: torch.Tensor) -> None:
        """ValueError unless x is [B, 3, S, S] at the fixed side S."""
        s = self.size.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"ChromaGAN takes [B, 3, {s}, {s}] (L/255 tiled), got {list(x.shape)}")

    def trunk_features(self, x: torch.Tensor) -> torch.Tensor:
        """The VGG16 trunk: x [B, 3, S, S] -> [B, vgg[3], S/8, S/8]."""
        self.check_official_input(x)
        return self.trunk(x)

    def global_map(self, trunk: torch.Tensor) -> torch.Tensor:
        """The global path's convs: [B, vgg[3], S/8, S/8] -> [B, global_width, S/32, S/32]."""
        h = self.batch_normalization_1(self.conv2d_6(trunk))
        h = self.batch_normalization_2(self.conv2d_7(h))
        h = self.batch_normalization_3(self.conv2d_8(h))
        return self.batch_normalization_4(self.conv2d_9(h))

    def class_logits(self, global_map: torch.Tensor) -> torch.Tensor:
        """The class head before its softmax: [B, num_classes] (Keras's output is their softmax)."""
        flat = _flatten_nhwc(global_map)
        return self.dense_6(self.dense_5(self.dense_4(flat)))

    def colour(
        self,
        trunk: torch.Tensor,
        global_map: torch.Tensor,
        guide: Guide | None = None,
    ) -> torch.Tensor:
        """Mid-level, fusion and colouring paths -> ab01 [B, 2, S, S]; `guide` ([B, C, h, w] -> same)
        replaces the output of conv2d_13 (called only where given)."""
        vec = self.dense_3(self.dense_2(self.dense_1(_flatten_nhwc(global_map))))
        mid = self.batch_normalization_5(self.conv2d_10(trunk))
        mid = self.batch_normalization_6(self.conv2d_11(mid))
        fused = torch.cat([mid, vec[:, :, None, None].expand(-1, -1, *mid.shape[-2:])], dim=1)
        h = self.conv2d_13(self.conv2d_12(fused))
        if guide is not None:
            h = guide(h)
        h = self.conv2d_15(self.conv2d_14(_up(h)))
        h = self.conv2d_17(self.conv2d_16(_up(h)))
        return _up(h)

    def forward_official(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, 3, S, S] -> (ab01 [B, 2, S, S], class logits [B, num_classes])."""
        trunk = self.trunk_features(x)
        g = self.global_map(trunk)
        return self.colour(trunk, g), self.class_logits(g)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """`forward_official`: the released model's own convention."""
        return self.forward_official(x)


def _flatten_nhwc(x: torch.Tensor) -> torch.Tensor:
    """Keras Flatten on a channels-last map: [B, C, H, W] -> [B, H*W*C] in (h, w, c) order."""
    return x.permute(0, 2, 3, 1).flatten(1)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def keras_param_count(module: nn.Module) -> int:
    """Parameters plus BatchNorm moving statistics: what Keras's `count_params` reports."""
    n = sum(p.numel() for p in module.parameters())
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.running_mean is not None and m.running_var is not None
            n += m.running_mean.numel() + m.running_var.numel()
    return n


class ChromaGANCritic(nn.Module):
    """ChromaGAN's PatchGAN critic (WGAN-GP, no normalisation): (L01 [B, 1, S, S], ab01 [B, 2, S, S])
    -> scores [B, 1, S/8, S/8]; L01 = L/100 = OpenCV 8-bit L / 255.

    Args:
        width: channels of the first conv (64 in ChromaGAN; doubles to 8x).
    """

    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        self.convs = nn.ModuleList(
            [
                KerasConv2d(3, w, 4, 2, "linear"),
                KerasConv2d(w, 2 * w, 4, 2, "linear"),
                KerasConv2d(2 * w, 4 * w, 4, 2, "linear"),
                KerasConv2d(4 * w, 8 * w, 4, 1, "linear"),
                KerasConv2d(8 * w, 1, 4, 1, "linear"),
            ]
        )

    def forward(self, L01: torch.Tensor, ab01: torch.Tensor) -> torch.Tensor:
        h = torch.cat([L01, ab01], dim=1)
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = F.leaky_relu(h, LEAKY_SLOPE)
        return h
