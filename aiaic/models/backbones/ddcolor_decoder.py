"""DDColor's decoder (Kang et al., ICCV 2023): a pixel decoder and a multi-scale colour decoder.

Pixel decoder (`DDColorDecoder.layers`, `last_shuf`): three wide U-Net blocks go up from the
encoder's deepest skip (H/32) to H/4, each upsampling 2x by a pixel shuffle and joining the next
encoder skip; `last_shuf` upsamples 4x to full resolution:

    out0 = layers.0(norm3, norm2)  [B, nf, H/16, W/16]      <- DSG's insertion point
    out1 = layers.1(out0, norm1)   [B, nf, H/8, W/8]
    out2 = layers.2(out1, norm0)   [B, nf/2, H/4, W/4]
    out3 = last_shuf(out2)         [B, nf/2, H, W]          (the image features)

Colour decoder (`MultiScaleColorDecoder`): `num_queries` learned colour queries attend, layer by
layer, to out0, out1, out2 in turn (cross-attention, then self-attention, then an FFN, each
post-norm with a residual); each query becomes a colour embedding, and its dot product with the
image features at every pixel gives [B, num_queries, H, W].

The convolutions of the pixel decoder use spectral normalisation (`torch.nn.utils.spectral_norm`,
stored as `weight_orig` + `weight_u`/`weight_v`, as in the released checkpoints). Names follow the
official checkpoints.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


def spectral_conv(ni: int, nf: int, ks: int, bias: bool) -> nn.Conv2d:
    """A ks x ks conv (padding keeps the size) with spectral norm; Kaiming-normal init, zero bias."""
    conv = nn.Conv2d(ni, nf, ks, padding=(ks - 1) // 2, bias=bias)
    if not conv.weight.is_meta:
        nn.init.kaiming_normal_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
    return nn.utils.spectral_norm(conv)


def icnr_(weight: torch.Tensor, scale: int) -> None:
    """ICNR init of a conv feeding a pixel shuffle: each group of scale**2 output channels shares one
    Kaiming-normal kernel, so the shuffled output starts free of checkerboard patterns."""
    if weight.is_meta:
        return
    out_c = weight.shape[0] // scale**2
    base = nn.init.kaiming_normal_(torch.empty(out_c, *weight.shape[1:]))
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(scale**2, dim=0))


class PixelShuffleUp(nn.Module):
    """Upsample by `scale`: 1x1 spectral conv to nf * scale**2 (+ BatchNorm), ReLU, pixel shuffle,
    then a 2x2 blur (replication pad left/top, average) against checkerboard artefacts.
    [B, ni, h, w] -> [B, nf, scale*h, scale*w]."""

    def __init__(self, ni: int, nf: int, scale: int = 2, blur: bool = True, batch_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [spectral_conv(ni, nf * scale**2, 1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(nf * scale**2))
        self.conv = nn.Sequential(*layers)
        icnr_(cast(torch.Tensor, self.conv[0].weight_orig), scale)
        self.shuf = nn.PixelShuffle(scale)
        self.do_blur = blur
        self.pad = nn.ReplicationPad2d((1, 0, 1, 0))
        self.blur = nn.AvgPool2d(2, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shuf(F.relu(self.conv(x)))
        return self.blur(self.pad(x)) if self.do_blur else x


class UnetBlockWide(nn.Module):
    """up_in [B, up_in_c, h, w] + skip [B, x_in_c, 2h, 2w] -> [B, n_out, 2h, 2w]:
    conv3x3(ReLU(cat(shuffle_up(up_in), BN(skip)))) -> ReLU -> BatchNorm."""

    def __init__(self, up_in_c: int, x_in_c: int, n_out: int, blur: bool = True):
        super().__init__()
        self.shuf = PixelShuffleUp(up_in_c, n_out, blur=blur, batch_norm=True)
        self.bn = nn.BatchNorm2d(x_in_c)
        with torch.no_grad():
            self.bn.bias.fill_(1e-3)
        self.conv = nn.Sequential(
            spectral_conv(n_out + x_in_c, n_out, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(n_out)
        )

    def forward(self, up_in: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        cat = F.relu(torch.cat([self.shuf(up_in), self.bn(skip)], dim=1))
        return self.conv(cat)


def sine_positions(h: int, w: int, channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """DETR's normalised sine position encoding of an h x w grid, [h * w, channels] (row-major):
    the first half encodes y, the second x; within each, sin and cos alternate over frequencies
    10000**(2 * (k // 2) / (channels / 2)), positions scaled to (0, 2 pi]."""
    n = channels // 2
    scale = 2 * math.pi
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device) / (h + 1e-6) * scale
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device) / (w + 1e-6) * scale
    k = torch.arange(n, dtype=torch.float32, device=device)
    freq = 10000.0 ** (2 * torch.div(k, 2, rounding_mode="floor") / n)

    def encode(v: torch.Tensor) -> torch.Tensor:  # [L] -> [L, n], sin at even, cos at odd entries
        a = v[:, None] / freq
        return torch.stack((a[:, 0::2].sin(), a[:, 1::2].cos()), dim=2).flatten(1)

    py, px = encode(y), encode(x)
    pos = torch.cat([py[:, None, :].expand(h, w, n), px[None, :, :].expand(h, w, n)], dim=2)
    return pos.reshape(h * w, 2 * n).to(dtype)


class CrossAttentionLayer(nn.Module):
    """norm(q + attn(q + q_pos, mem + mem_pos, mem)); [B, Q, C] and [B, L, C] (batch first)."""

    def __init__(self, d_model: int, nhead: int):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, batch_first=True)
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor
    ) -> torch.Tensor:
        out = self.multihead_attn(tgt + query_pos, memory + pos, memory, need_weights=False)[0]
        return self.norm(tgt + out)


class SelfAttentionLayer(nn.Module):
    """norm(q + attn(q + q_pos, q + q_pos, q)); [B, Q, C]."""

    def __init__(self, d_model: int, nhead: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, batch_first=True)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = tgt + query_pos
        return self.norm(tgt + self.self_attn(q, q, tgt, need_weights=False)[0])


class FFNLayer(nn.Module):
    """norm(x + linear2(ReLU(linear1(x)))); [B, Q, C]."""

    def __init__(self, d_model: int, dim_feedforward: int):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.linear2(F.relu(self.linear1(x))))


class MLP(nn.Module):
    """num_layers Linear layers with ReLU between them."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MultiScaleColorDecoder(nn.Module):
    """Colour queries over multi-scale features -> per-pixel query scores [B, num_queries, H, W].

    Args:
        in_channels: channels of the scales it attends to (out0, out1, out2).
        hidden_dim: width of the queries and attention; nheads: attention heads.
        num_queries: colour queries; dim_feedforward: FFN width; dec_layers: decoder layers (layer i
            attends to scale i % num_scales).
        color_embed_dim: length of each colour embedding = channels of the image features.
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        hidden_dim: int = 256,
        num_queries: int = 100,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        dec_layers: int = 9,
        color_embed_dim: int = 256,
    ):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_scales = len(in_channels)
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(hidden_dim, dim_feedforward) for _ in range(dec_layers)
        )
        for p in self.parameters():
            if p.dim() > 1 and not p.is_meta:
                nn.init.xavier_uniform_(p)
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(self.num_scales, hidden_dim)
        self.input_proj = nn.ModuleList(nn.Conv2d(c, hidden_dim, kernel_size=1) for c in in_channels)
        for proj in self.input_proj:
            assert isinstance(proj, nn.Conv2d) and proj.bias is not None
            if not proj.weight.is_meta:
                nn.init.kaiming_uniform_(proj.weight, a=1)
                nn.init.zeros_(proj.bias)
        self.color_embed = MLP(hidden_dim, hidden_dim, color_embed_dim, 3)

    def forward(self, scales: list[torch.Tensor], img_features: torch.Tensor) -> torch.Tensor:
        """scales: [B, in_channels[i], h_i, w_i] each; img_features [B, color_embed_dim, H, W]
        -> [B, num_queries, H, W]."""
        if len(scales) != self.num_scales:
            raise ValueError(f"the colour decoder takes {self.num_scales} scales, got {len(scales)}")
        src, pos = [], []
        for i, x in enumerate(scales):
            h, w = x.shape[-2:]
            pos.append(sine_positions(h, w, self.hidden_dim, x.device, x.dtype)[None])
            proj = self.input_proj[i](x).flatten(2).transpose(1, 2)  # [B, h*w, hidden]
            src.append(proj + self.level_embed.weight[i][None, None, :])
        bs = scales[0].shape[0]
        query_pos = self.query_embed.weight[None].expand(bs, -1, -1)
        out = self.query_feat.weight[None].expand(bs, -1, -1)
        for i in range(len(self.transformer_ffn_layers)):
            k = i % self.num_scales
            out = self.transformer_cross_attention_layers[i](out, src[k], pos[k], query_pos)
            out = self.transformer_self_attention_layers[i](out, query_pos)
            out = self.transformer_ffn_layers[i](out)
        color_embed = self.color_embed(self.decoder_norm(out))  # [B, Q, color_embed_dim]
        return torch.einsum("bqc,bchw->bqhw", color_embed, img_features)


class DDColorDecoder(nn.Module):
    """Pixel decoder + colour decoder: encoder skips (norm0..norm3) -> [B, num_queries, H, W].

    Args:
        enc_dims: channels of the four encoder skips; nf: width of the pixel decoder (its last
            block and the image features have nf // 2).
        The other arguments size the `MultiScaleColorDecoder`.
    """

    def __init__(
        self,
        enc_dims: tuple[int, ...],
        nf: int = 512,
        hidden_dim: int = 256,
        num_queries: int = 100,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        dec_layers: int = 9,
        num_scales: int = 3,
    ):
        super().__init__()
        if num_scales != 3:
            raise ValueError(f"DDColor's pixel decoder gives 3 scales, got num_scales={num_scales}")
        outs = [nf, nf, nf // 2]
        ins = [enc_dims[3], nf, nf]
        self.layers = nn.ModuleList(UnetBlockWide(ins[i], enc_dims[2 - i], outs[i]) for i in range(3))
        embed = nf // 2
        self.last_shuf = PixelShuffleUp(embed, embed, scale=4, blur=True, batch_norm=False)
        self.color_decoder = MultiScaleColorDecoder(
            tuple(outs), hidden_dim, num_queries, nheads, dim_feedforward, dec_layers, color_embed_dim=embed
        )

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        """skips: norm0..norm3 outputs -> [B, num_queries, H, W]. out0 = the output of `layers.0`
        [B, nf, H/16, W/16] feeds both layers.1 and the colour decoder (a forward hook on `layers.0`,
        the insertion point, changes what both see)."""
        out0 = self.layers[0](skips[3], skips[2])
        out1 = self.layers[1](out0, skips[1])
        out2 = self.layers[2](out1, skips[0])
        out3 = self.last_shuf(out2)
        return self.color_decoder([out0, out1, out2], out3)
