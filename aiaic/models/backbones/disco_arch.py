"""DISCO's network (Xia et al., "Disentangled Image Colorization via Global Anchors", SIGGRAPH Asia 2022).

    affinity = segnet(L_n)                 [B, 9, H, W]   superpixel affinity (a frozen SpixelNet)
    tokens = SP-pool(repnet(L_n))          [B, d, h, w]   h, w = H/16, W/16: one token per superpixel
    enc = wildpath(tokens, pos)            palette logits = mid_word_prj(enc)        [B, 313, h, w]
    anchors = k-means(enc) (inference) or k-means(SP-pool(ab)) (training)           [B, 1, h, w]
    dec = hintpath(trg_word_emb(cat(tokens, anchors x one-hot(class), anchors)), pos)
    reference logits = trg_word_prj(dec)                                             [B, 313, h, w]
    ab_n = tanh(enhanceNet(cat(L_n, SP-spread(dec))))                               [B, 2, H, W]

L_n = (L - 50) / 50, ab_n = ab / 110, H and W multiples of 16. Module and parameter names follow the
official `AnchorColorProb` (enhanced) so its `state_dict` is the official one key for key and shape
for shape (spectral-norm `weight_orig`/`weight_u`/`weight_v`, BatchNorm statistics); the sizes are
`DiscoSize` ("disco": the released DISCO-beta; a mini size trains on a CPU). Written from reading
MenghanXia/DisentangledColorization (MIT); no CUDA-only code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from aiaic.models.backbones import disco_colors

SP_SIZE = 16  # superpixel size: the SpixelNet has four stride-2 levels
DEFAULT_SEED = 130  # the official inference script's --seed
KMEANS_ITERS = 20
KMEANS_TOL = 1e-4
# the 3 x 3 superpixel neighbourhood in the affinity map's channel order (row-major, top-left first)
NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


@dataclass(frozen=True)
class DiscoSize:
    """Every size of a DISCO network (the defaults are the released DISCO-beta's).

    seg: SpixelNet widths per level (5). rep: ColorProbNet widths at 1, 1/2, 1/4 and 1/8 resolution.
    d_model, nhead, dim_feedforward, layers: each of the two transformer encoders. refine: the
    refine net's (HourGlass) widths at 1, 1/2, 1/4; res_blocks: its residual blocks. n_anchors: k.
    """

    seg: tuple[int, int, int, int, int] = (16, 32, 64, 128, 256)
    rep: tuple[int, int, int, int] = (64, 128, 256, 512)
    d_model: int = 64
    nhead: int = 8
    dim_feedforward: int = 256
    layers: int = 6
    refine: tuple[int, int, int] = (64, 128, 256)
    res_blocks: int = 3
    n_anchors: int = 8


class DiscoOutputs(NamedTuple):
    """One forward: ab_n [B, 2, H, W] in [-1, 1]; pal_logits, ref_logits [B, 313, h, w] (palette and
    reference colour classes per superpixel); affinity [B, 9, H, W]; hint_mask [B, 1, h, w] (1 at the
    anchors); spix_colors [B, 2, h, w] the anchors' ab_n (training: the true pooled colours)."""

    ab: torch.Tensor
    pal_logits: torch.Tensor
    ref_logits: torch.Tensor
    affinity: torch.Tensor
    hint_mask: torch.Tensor
    spix_colors: torch.Tensor


# --- sub-networks ------------------------------------------------------------------------------
def _sn_conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, 3, stride=stride, padding=1))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def _seg_conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.1),
    )


def _seg_deconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.1))


class SpixelNet(nn.Module):
    """Superpixel affinity: L_n [B, 1, H, W] -> softmax over the 3 x 3 neighbouring superpixels
    [B, 9, H, W]."""

    def __init__(self, widths: tuple[int, int, int, int, int]):
        super().__init__()
        s0, s1, s2, s3, s4 = widths
        self.conv0a, self.conv0b = _seg_conv(1, s0), _seg_conv(s0, s0)
        self.conv1a, self.conv1b = _seg_conv(s0, s1, 2), _seg_conv(s1, s1)
        self.conv2a, self.conv2b = _seg_conv(s1, s2, 2), _seg_conv(s2, s2)
        self.conv3a, self.conv3b = _seg_conv(s2, s3, 2), _seg_conv(s3, s3)
        self.conv4a, self.conv4b = _seg_conv(s3, s4, 2), _seg_conv(s4, s4)
        self.deconv3, self.conv3_1 = _seg_deconv(s4, s3), _seg_conv(2 * s3, s3)
        self.deconv2, self.conv2_1 = _seg_deconv(s3, s2), _seg_conv(2 * s2, s2)
        self.deconv1, self.conv1_1 = _seg_deconv(s2, s1), _seg_conv(2 * s1, s1)
        self.deconv0, self.conv0_1 = _seg_deconv(s1, s0), _seg_conv(2 * s0, s0)
        self.pred_mask0 = nn.Conv2d(s0, 9, 3, padding=1)
        self.softmax = nn.Softmax(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv0b(self.conv0a(x))
        out2 = self.conv1b(self.conv1a(out1))
        out3 = self.conv2b(self.conv2a(out2))
        out4 = self.conv3b(self.conv3a(out3))
        out5 = self.conv4b(self.conv4a(out4))
        y = self.conv3_1(torch.cat((out4, self.deconv3(out5)), 1))
        y = self.conv2_1(torch.cat((out3, self.deconv2(y)), 1))
        y = self.conv1_1(torch.cat((out2, self.deconv1(y)), 1))
        y = self.conv0_1(torch.cat((out1, self.deconv0(y)), 1))
        return self.softmax(self.pred_mask0(y))


class SpixelSeg(nn.Module):
    """Holds the SpixelNet as `net` (the official `segnet.net.*` names)."""

    def __init__(self, widths: tuple[int, int, int, int, int]):
        super().__init__()
        self.net = SpixelNet(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, True)


def _sn_stage(cin: int, cout: int, n: int, stride: int) -> nn.Sequential:
    layers: list[nn.Module] = [_sn_conv(cin, cout, stride), _lrelu()]
    for _ in range(n - 1):
        layers += [_sn_conv(cout, cout), _lrelu()]
    return nn.Sequential(*layers, nn.BatchNorm2d(cout))


class ColorProbNet(nn.Module):
    """DISCO's backbone (`repnet`): L_n [B, 1, H, W] -> features [B, out, H, W] (20 spectral-norm convs,
    down to 1/8, three dilation-free 1/8 stages, back up with a 1/4 shortcut)."""

    def __init__(self, widths: tuple[int, int, int, int], out: int):
        super().__init__()
        c1, c2, c3, c4 = widths
        self.conv1_2 = _sn_stage(1, c1, 2, 1)
        self.conv2_3 = _sn_stage(c1, c2, 3, 2)
        self.conv3_3 = _sn_stage(c2, c3, 3, 2)
        self.conv4_3 = _sn_stage(c3, c4, 3, 2)
        self.conv5_3 = _sn_stage(c4, c4, 3, 1)
        self.conv6_3 = _sn_stage(c4, c4, 3, 1)
        self.conv7_3 = _sn_stage(c4, c4, 3, 1)
        up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv8up = nn.Sequential(up, _conv(c4, c3))
        self.conv3short8 = nn.Sequential(_conv(c3, c3))
        self.conv8_3 = nn.Sequential(
            nn.ReLU(True), _conv(c3, c3), nn.ReLU(True), _conv(c3, c3), nn.ReLU(True), nn.BatchNorm2d(c3)
        )
        self.conv9up = nn.Sequential(up, _conv(c3, c2))
        self.conv9_2 = nn.Sequential(_conv(c2, c2), nn.ReLU(True), nn.BatchNorm2d(c2))
        self.conv10up = nn.Sequential(up, _conv(c2, c1))
        self.conv10_2 = nn.Sequential(nn.ReLU(True), _conv(c1, out), nn.ReLU(True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f3 = self.conv3_3(self.conv2_3(self.conv1_2(x)))
        f7 = self.conv7_3(self.conv6_3(self.conv5_3(self.conv4_3(f3))))
        f8 = self.conv8_3(self.conv8up(f7) + self.conv3short8(f3))
        return self.conv10_2(self.conv10up(self.conv9_2(self.conv9up(f8))))


class ConvBlock(nn.Module):
    """conv + ReLU (`inConv`), then conv + ReLU + BatchNorm (`conv`)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.inConv = nn.Sequential(_conv(cin, cout), nn.ReLU(inplace=True))
        self.conv = nn.Sequential(_conv(cout, cout), nn.ReLU(inplace=True), nn.BatchNorm2d(cout))


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(
            _conv(cin, cout, 2), nn.ReLU(inplace=True), _conv(cout, cout), nn.ReLU(inplace=True),
            nn.BatchNorm2d(cout),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            _conv(channels, channels), _sn_conv(channels, channels), nn.ReLU(inplace=True),
            _conv(channels, channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv(x), inplace=True)


class UpBlock(nn.Module):
    """conv, nearest x2, conv on the concatenation with the skip, ReLU, two (conv, ReLU), BatchNorm."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = _conv(cin, cout)
        self.combine = _conv(2 * cout, cout)
        self.conv2 = nn.Sequential(
            _conv(cout, cout), nn.ReLU(inplace=True), _conv(cout, cout), nn.ReLU(inplace=True),
            nn.BatchNorm2d(cout),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.conv1(x), scale_factor=2, mode="nearest")
        return self.conv2(F.relu(self.combine(torch.cat((x, skip), 1))))


class RefineNet(nn.Module):
    """DISCO's refine net (`enhanceNet`, the official HourGlass2 with BatchNorm): [B, cin, H, W] ->
    [B, 2, H, W] (before tanh). Its first conv, `inConv.inConv.0`, is where aiaic's guide acts (a
    forward hook); an in-place ReLU follows it."""

    def __init__(self, cin: int, widths: tuple[int, int, int], res_blocks: int):
        super().__init__()
        w1, w2, w3 = widths
        self.inConv = ConvBlock(cin, w1)
        self.down1 = DownBlock(w1, w2)
        self.down2 = DownBlock(w2, w3)
        self.residual = nn.Sequential(*[ResidualBlock(w3) for _ in range(res_blocks)])
        self.up2 = UpBlock(w3, w2)
        self.up1 = UpBlock(w2, w1)
        self.outConv = _conv(w1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.inConv.conv(self.inConv.inConv(x))
        f2 = self.down1(f1)
        r = self.residual(self.down2(f2))
        return self.outConv(self.up1(self.up2(r, f2), f1))


class EncoderLayer(nn.Module):
    """Post-norm transformer layer with the position added to queries and keys at every layer."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = src + pos
        attn = self.self_attn(q, q, value=src)[0]
        src = self.norm1(src + self.dropout1(attn))
        ff = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(ff))


class TransformerEncoder(nn.Module):
    """`layers` EncoderLayers over tokens [L, B, d] with positions [L, B, d]."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d_model, nhead, dim_feedforward) for _ in range(layers))

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src, pos)
        return src


def sine_positions(h: int, w: int, channels: int, device: torch.device) -> torch.Tensor:
    """DETR's normalised sine encoding of an h x w grid -> [channels, h, w] (y half, then x half)."""
    npf = channels // 2
    ones = torch.ones((h, w), device=device)
    y = ones.cumsum(0, dtype=torch.float32)
    x = ones.cumsum(1, dtype=torch.float32)
    scale, eps = 2 * math.pi, 1e-6
    y = y / (y[-1:, :] + eps) * scale
    x = x / (x[:, -1:] + eps) * scale
    dim_t = torch.arange(npf, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * (dim_t // 2) / npf)
    px, py = x[:, :, None] / dim_t, y[:, :, None] / dim_t
    px = torch.stack((px[:, :, 0::2].sin(), px[:, :, 1::2].cos()), dim=3).flatten(2)
    py = torch.stack((py[:, :, 0::2].sin(), py[:, :, 1::2].cos()), dim=3).flatten(2)
    return torch.cat((py, px), dim=2).permute(2, 0, 1)


# --- superpixel pooling and spreading ---------------------------------------------------------
def _shifted(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[..., i, j] = t[..., i - dy, j - dx], zero outside."""
    padded = F.pad(t, (1, 1, 1, 1))
    h, w = t.shape[-2:]
    return padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


def superpixel_pool(
    feat: torch.Tensor, affinity: torch.Tensor, size: int = SP_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Affinity-weighted mean of each superpixel: feat [B, C, H, W], affinity [B, 9, H, W] ->
    (pooled [B, C, H/size, W/size], weight [B, 1, H/size, W/size] = the pixels' summed affinity / size^2).

    Superpixel (i, j) collects, from every pixel of grid cell (i - dy, j - dx), its affinity to the
    neighbour at offset (dy, dx)."""
    b, _, h, w = feat.shape
    feat1 = torch.cat([feat, feat.new_ones((b, 1, h, w))], dim=1)
    total = None
    for k, (dy, dx) in enumerate(NEIGHBOURS):
        part = _shifted(F.avg_pool2d(feat1 * affinity.narrow(1, k, 1), size, size), dy, dx)
        total = part.clone() if total is None else total + part
    assert total is not None
    feat_sum, weight = total[:, :-1], total[:, -1:]
    return feat_sum / (weight + 1e-8), weight


def superpixel_spread(tokens: torch.Tensor, affinity: torch.Tensor, size: int = SP_SIZE) -> torch.Tensor:
    """The inverse of pooling: tokens [B, C, h, w] -> [B, C, h*size, w*size], each pixel the
    affinity-weighted sum of its 3 x 3 neighbouring superpixels' tokens.

    One batched product over the 9 neighbours per grid cell (the official code adds 9 full-resolution
    products one by one: the same sum, up to float rounding, at a fraction of the memory traffic)."""
    b, c, h, w = tokens.shape
    # near[b, k, c, i, j] = tokens[b, c, i + dy_k, j + dx_k], zero outside
    near = torch.stack([_shifted(tokens, -dy, -dx) for dy, dx in NEIGHBOURS], dim=1)
    a = affinity.reshape(b, 9, h, size, w, size)
    out = torch.einsum("bkcij,bkipjq->bcipjq", near, a)
    return out.reshape(b, c, h * size, w * size)


def superpixel_sizes(affinity: torch.Tensor, size: int = SP_SIZE) -> torch.Tensor:
    """Each superpixel's share of pixels (winner-take-all assignment; ties count for every winner):
    affinity [B, 9, H, W] -> [B, 1, H/size, W/size], pixels / size^2."""
    top = affinity.amax(dim=1, keepdim=True)
    hard = (affinity == top).to(affinity.dtype)
    ones = affinity.new_ones((affinity.shape[0], 1, *affinity.shape[-2:]))
    return superpixel_pool(ones, hard, size)[1]


# --- anchors ----------------------------------------------------------------------------------
def kmeans_assign(
    x: torch.Tensor, k: int, rs: np.random.RandomState, gen: torch.Generator, iters: int = KMEANS_ITERS
) -> torch.Tensor:
    """Lloyd's k-means on points x [n, C] -> the cluster of each point, long [n].

    As DISCO runs it (kmeans_pytorch): initial centres are k distinct points drawn with
    `rs.choice(n, k, replace=False)` (the legacy NumPy generator, so a seed gives the official draw);
    squared Euclidean distances; an empty cluster restarts at a random point (`gen`); stop after
    `iters` updates or once the centres move less than 1e-4 (sum of shifts, squared). The returned
    assignment is the one made before the last update."""
    x = x.float()
    centres = x[torch.from_numpy(rs.choice(len(x), k, replace=False))]
    for _ in range(iters):
        choice = torch.argmin(((x[:, None, :] - centres[None]) ** 2.0).sum(dim=-1), dim=1)
        previous = centres.clone()
        for c in range(k):
            members = x[choice == c]
            if members.shape[0] == 0:
                members = x[torch.randint(len(x), (1,), generator=gen)]
            centres[c] = members.mean(dim=0)
        shift = torch.sum(torch.sqrt(torch.sum((centres - previous) ** 2, dim=1)))
        if shift**2 < KMEANS_TOL:
            break
    return choice


def anchor_mask(
    data: torch.Tensor, sizes: torch.Tensor, k: int, seeds: list[int], iters: int = KMEANS_ITERS
) -> torch.Tensor:
    """DISCO's anchor locator: cluster each image's tokens data [B, C, h, w] into k groups and place
    one anchor per group on its largest superpixel (`sizes` [B, 1, h, w]) -> hint mask [B, 1, h, w].

    k is at most the number of tokens. seeds[i] seeds image i's k-means (NumPy's legacy generator
    for the initial centres, a torch generator for empty-cluster restarts), so an image's anchors do
    not depend on its batch."""
    b, c, h, w = data.shape
    k = min(k, h * w)  # an image smaller than k superpixels (below 64 x 64 for 8 anchors): one per token
    masks = []
    for i in range(b):
        rs = np.random.RandomState(seeds[i])
        gen = torch.Generator(device=data.device).manual_seed(seeds[i])
        choice = kmeans_assign(data[i].permute(1, 2, 0).reshape(-1, c), k, rs, gen, iters)
        masks.append(F.one_hot(choice.view(h, w), k).permute(2, 0, 1).float())
    clusters = torch.stack(masks)  # [B, k, h, w]
    score = clusters + sizes * 0.01  # within a cluster, the largest superpixel wins
    picked = F.one_hot(score.flatten(2).argmax(dim=-1), h * w).float()  # [B, k, h*w]
    return picked.sum(dim=1, keepdim=True).view(b, 1, h, w)


# --- the whole network ------------------------------------------------------------------------
class DiscoNet(nn.Module):
    """DISCO (the official `AnchorColorProb` with `enhanced=True`); see the module docstring.

    Args:
        size: the network's sizes.
        seed: seeds the inference anchors' k-means (the official script's `--seed`, 130).

    The superpixel net is DISCO's frozen, pre-trained SpixelNet: it always runs in eval mode without
    gradient (as in the official training).
    """

    q_to_ab: torch.Tensor

    def __init__(self, size: DiscoSize = DiscoSize(), *, seed: int = DEFAULT_SEED):
        super().__init__()
        self.size = size
        self.seed = seed
        d = size.d_model
        self.segnet = SpixelSeg(size.seg)
        self.repnet = ColorProbNet(size.rep, d)
        self.enhanceNet = RefineNet(d + 1, size.refine, size.res_blocks)
        self.wildpath = TransformerEncoder(d, size.nhead, size.dim_feedforward, size.layers)
        self.hintpath = TransformerEncoder(d, size.nhead, size.dim_feedforward, size.layers)
        n = disco_colors.N_BINS
        self.mid_word_prj = nn.Linear(d, n, bias=False)
        self.trg_word_emb = nn.Linear(d + n + 1, d, bias=False)
        self.trg_word_prj = nn.Linear(d, n, bias=False)
        self.register_buffer("q_to_ab", disco_colors.bins(), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """DISCO's init (Xavier-uniform on every weight matrix and kernel), then spectral-norm u/v
        settled by power iterations so eval mode divides by the real largest singular value."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        settle_spectral_norm(self)

    def train(self, mode: bool = True) -> DiscoNet:
        super().train(mode)
        self.segnet.eval()  # frozen, pre-trained: its BatchNorm statistics never move
        return self

    # --- E: superpixels, tokens, palette --------------------------------------------------
    def encode_features(self, L_n: torch.Tensor) -> list[torch.Tensor]:
        """E: L_n [B, 1, H, W] -> feats = [L_n, affinity [B, 9, H, W], tokens [B, d, h, w], palette features
        [B, d, h, w] (the wildpath's output), pal_logits [B, 313, h, w]]."""
        with torch.no_grad():
            affinity = self.segnet(L_n)
        tokens = superpixel_pool(self.repnet(L_n), affinity)[0]
        b, d, h, w = tokens.shape
        pos = self._positions(tokens)
        enc = self.wildpath(tokens.flatten(2).permute(2, 0, 1), pos)
        pal = self.mid_word_prj(enc).permute(1, 2, 0).reshape(b, -1, h, w)
        return [L_n, affinity, tokens, enc.permute(1, 2, 0).reshape(b, d, h, w), pal]

    def _positions(self, tokens: torch.Tensor) -> torch.Tensor:
        b, d, h, w = tokens.shape
        pos = sine_positions(h, w, d, tokens.device).to(tokens.dtype)
        return pos.flatten(1).t().unsqueeze(1).expand(-1, b, -1)

    # --- C: anchors, reference colours, refine net ----------------------------------------
    def run_decoder(
        self,
        feats: list[torch.Tensor],
        target_ab: torch.Tensor | None = None,
        seeds: list[int] | None = None,
    ) -> DiscoOutputs:
        """C: `encode_features` -> DiscoOutputs.

        target_ab: the true ab_n [B, 2, H, W] when training: anchors are then placed by k-means on the
        true superpixel colours and carry their true classes (DISCO's training); without it anchors
        come from k-means on the palette features and carry the palette's top class (inference).
        seeds: per image k-means seeds (default: `self.seed` for every image)."""
        L_n, affinity, tokens, palette, pal = feats
        b, d, h, w = tokens.shape
        sizes = superpixel_sizes(affinity)
        if seeds is None:
            seeds = [self.seed] * b
        if target_ab is not None:
            spix = superpixel_pool(target_ab, affinity)[0]
            labels = disco_colors.nearest_bin(spix, self.q_to_ab)
            with torch.no_grad():
                hint = anchor_mask(spix, sizes, self.size.n_anchors, seeds)
        else:
            with torch.no_grad():
                hint = anchor_mask(palette, sizes, self.size.n_anchors, seeds)
            labels = torch.softmax(pal, dim=1).argmax(dim=1, keepdim=True)
            spix = (self.q_to_ab[labels.squeeze(1)] / disco_colors.AB_SCALE).permute(0, 3, 1, 2)
        one_hot = F.one_hot(labels.squeeze(1), disco_colors.N_BINS).to(tokens.dtype)  # [B, h, w, 313]
        seq = tokens.flatten(2).permute(2, 0, 1)
        mask = hint.flatten(2).permute(2, 0, 1)
        label_seq = one_hot.flatten(1, 2).transpose(0, 1)
        hint_seq = self.trg_word_emb(torch.cat([seq, mask * label_seq, mask], dim=2))
        dec = self.hintpath(hint_seq, self._positions(tokens))
        ref = self.trg_word_prj(dec).permute(1, 2, 0).reshape(b, -1, h, w)
        full = superpixel_spread(dec.permute(1, 2, 0).reshape(b, d, h, w), affinity)
        ab = torch.tanh(self.enhanceNet(torch.cat((L_n, full), dim=1)))
        return DiscoOutputs(ab, pal, ref, affinity, hint, spix)

    def run(
        self, L_n: torch.Tensor, target_ab: torch.Tensor | None = None, seeds: list[int] | None = None
    ) -> DiscoOutputs:
        """run_decoder(encode_features(L_n)): L_n [B, 1, H, W] (H, W multiples of 16) -> DiscoOutputs.
        (The network's `forward` is the backbone contract's, `Disco.forward`.)"""
        return self.run_decoder(self.encode_features(L_n), target_ab, seeds)


@torch.no_grad()
def settle_spectral_norm(module: nn.Module, iterations: int = 10) -> None:
    """Power iterations on every spectral-norm conv's stored u/v (after a random init)."""
    for m in module.modules():
        u_buf = getattr(m, "weight_u", None)
        if not isinstance(m, nn.Conv2d) or not isinstance(u_buf, torch.Tensor) or u_buf.is_meta:
            continue
        wm = cast(torch.Tensor, m.weight_orig).flatten(1)
        u, v = u_buf, cast(torch.Tensor, m.weight_v)
        for _ in range(iterations):
            v = F.normalize(wm.t() @ u, dim=0, eps=1e-12)
            u = F.normalize(wm @ v, dim=0, eps=1e-12)
        u_buf.copy_(u)
        cast(torch.Tensor, m.weight_v).copy_(v)
