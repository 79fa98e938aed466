"""Model components: DSG/SG equations, encoders, relevance net, backbone registry, the whole colorizer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from support.model_configs import SMALL_MODEL as SMALL

from aiaic.errors import ConfigError
from aiaic.lab import lab_to_rgb, rgb_to_lab
from aiaic.models.audio import AudioEncoder, AudioToVisual
from aiaic.models.backbones import available, build_backbone
from aiaic.models.colorizer import build_colorizer, grey_rgb
from aiaic.models.config import ModelConfig
from aiaic.models.guidance import DynamicSemanticGuidance, SemanticGuidance
from aiaic.models.relevance import RelevanceNet
from aiaic.models.semantic import ConditionMLP, SemanticEncoder


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def test_dsg_with_r_zero_is_exactly_the_identity():
    torch.manual_seed(0)
    dsg = DynamicSemanticGuidance(channels=6, cond_dim=5, hidden=7)
    _randomise(dsg)
    x = torch.randn(4, 6, 9, 11) * 3 + 2
    c = torch.randn(4, 5)
    out = dsg(x, c, torch.zeros(4))
    assert torch.equal(out, x)
    # even a constant feature map (sigma = 0 in SG) passes through untouched
    const = torch.full((2, 6, 4, 4), 7.0)
    assert torch.equal(dsg(const, c[:2], torch.zeros(2)), const)


def test_dsg_mixes_sg_and_identity_per_sample():
    torch.manual_seed(1)
    dsg = DynamicSemanticGuidance(channels=3, cond_dim=4, hidden=8)
    _randomise(dsg, 1)
    x, c = torch.randn(3, 3, 5, 5), torch.randn(3, 4)
    r = torch.tensor([1.0, 0.25, 0.0])
    out = dsg(x, c, r)
    sg = dsg.sg(x, c)
    torch.testing.assert_close(out[0], sg[0])
    torch.testing.assert_close(out[1], 0.25 * sg[1] + 0.75 * x[1])
    assert torch.equal(out[2], x[2])


def test_adain_output_statistics_equal_gamma_and_beta():
    torch.manual_seed(2)
    sg = SemanticGuidance(channels=5, cond_dim=3, hidden=6, eps=1e-8)
    _randomise(sg, 2)
    x = torch.randn(4, 5, 16, 16) * torch.rand(4, 5, 1, 1) * 4 + torch.randn(4, 5, 1, 1) * 3
    c = torch.randn(4, 3)
    gamma, beta = sg.scale_shift(c)
    assert gamma.shape == beta.shape == (4, 5)
    assert gamma.abs().max() > 0.5 and beta.abs().max() > 0.5  # non-trivial values
    out = sg(x, c)
    torch.testing.assert_close(out.mean(dim=(2, 3)), beta, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.std(dim=(2, 3), unbiased=False), gamma.abs(), atol=1e-4, rtol=1e-4)
    # gamma and beta each come from two FC layers of c: different c, different statistics
    out2 = sg(x, c.flip(0))
    assert not torch.allclose(out2.mean(dim=(2, 3)), beta)


def test_guidance_starts_as_plain_instance_norm():
    """gamma = 1 and beta = 0 at initialisation, so stage 1 starts from a well-behaved DSG."""
    sg = SemanticGuidance(channels=4, cond_dim=3)
    gamma, beta = sg.scale_shift(torch.randn(2, 3))
    assert torch.equal(gamma, torch.ones(2, 4)) and torch.equal(beta, torch.zeros(2, 4))


def test_semantic_encoder_is_four_conv_relu_pool_blocks_and_two_linears_with_unit_output():
    enc = SemanticEncoder((8, 8, 16, 32), out_dim=12)
    kinds = [type(m).__name__ for m in enc.blocks]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d"] * 4
    linears = [m for m in enc.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2
    f = enc(torch.rand(3, 3, 64, 64))
    assert f.shape == (3, 12)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(3))
    # works at other sizes too (global pooling), 128 px
    assert enc(torch.rand(1, 3, 128, 96)).shape == (1, 12)
    assert ConditionMLP(12, 7)(f).shape == (3, 7)


def test_audio_encoder_is_resnet18_with_one_channel_stem_and_a2v_is_normalised():
    enc = AudioEncoder()
    assert enc.net.conv1.in_channels == 1 and enc.net.conv1.kernel_size == (7, 7)
    assert enc.net.conv1.stride == (2, 2) and enc.net.conv1.bias is None
    feat = enc(torch.randn(2, 1, 64, 97))
    assert feat.shape == (2, 512)
    f_a = AudioToVisual(512, 16, 32)(feat)
    torch.testing.assert_close(f_a.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match=r"\[B, 1, F, T\]"):
        enc(torch.randn(2, 64, 97))


def test_relevance_is_sigmoid_of_scaled_cosine_of_the_heads():
    torch.manual_seed(3)
    net = RelevanceNet(audio_dim=10, image_dim=6, embed_dim=4, hidden=8, init_scale=3.0)
    with torch.no_grad():
        net.b.fill_(-0.5)
    a, v = torch.randn(5, 10), torch.randn(5, 6)
    ha, hv = net.h_a(a), net.h_v(v)
    cos = (ha * hv).sum(1) / (ha.norm(dim=1) * hv.norm(dim=1))
    torch.testing.assert_close(net(a, v), torch.sigmoid(3.0 * cos - 0.5))
    assert ((net(a, v) > 0) & (net(a, v) < 1)).all()


@pytest.mark.slow
def test_relevance_net_learns_true_pairs_where_the_frame_tells_the_class():
    """Heads on frozen (random) encoders learn r(true pair) > r(audio of the other class).

    Frames of class k carry a visible class cue here (unlike the colour-only synthetic corpus), so a
    mismatched sound is detectable from the grey frame and the audio alone.
    """
    torch.manual_seed(4)
    model = build_colorizer(SMALL).eval()
    model.requires_grad_(False)
    model.relevance.requires_grad_(True)

    def batch(n: int, g: torch.Generator):
        k = torch.randint(0, 2, (n,), generator=g)
        L = torch.randn(n, 1, 32, 32, generator=g) * 0.1
        L[:, :, :, :16] += torch.where(k == 0, 0.8, -0.8)[:, None, None, None]  # the class cue: left half

        def mel(cls):  # a band at mel row 10 (class 0) or 40 (class 1), plus noise
            rows = torch.arange(64.0)[None, :, None]
            centre = torch.where(cls == 0, 10.0, 40.0)[:, None, None]
            band = torch.exp(-((rows - centre) ** 2) / 20.0).expand(n, 64, 97)
            return band.unsqueeze(1) + 0.05 * torch.randn(n, 1, 64, 97, generator=g)

        return L, mel(k), mel(1 - k)

    # the encoders are frozen: their features are computed once, the heads train on them
    L, pos, neg = batch(96, torch.Generator().manual_seed(0))
    with torch.no_grad():
        img, fa_pos, fa_neg = (
            model.relevance_image_features(L),
            model.relevance_audio_features(pos),
            model.relevance_audio_features(neg),
        )
    opt = torch.optim.Adam(model.relevance.parameters(), lr=1e-2)
    target = torch.cat([torch.ones(96), torch.zeros(96)])
    model.relevance.train()  # as in the rnet stage: the heads' BatchNorm learns the feature statistics
    for _ in range(300):
        logits = model.relevance.logits(torch.cat([fa_pos, fa_neg]), torch.cat([img, img]))
        loss = F.binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    L, pos, neg = batch(32, torch.Generator().manual_seed(99))  # new samples, through the whole path
    model.eval()
    with torch.no_grad():
        r_true = model.relevance_score(L, pos)
        r_other = model.relevance_score(L, neg)
        r_none = model.relevance_score(L, pos, torch.zeros(32, dtype=torch.bool))
    assert r_true.mean() > 0.8 > 0.2 > r_other.mean(), (r_true.mean(), r_other.mean())
    assert torch.equal(r_none, torch.zeros(32))


def test_backbone_registry_and_named_insertion_point():
    assert "unet" in available()
    with pytest.raises(ConfigError, match="unknown backbone 'nope'.*unet"):
        build_backbone("nope", ModelConfig())
    net = build_backbone(
        "unet", ModelConfig(backbone_options={"base_channels": 8, "depth": 3, "guide_at": 0})
    ).eval()
    assert net.insertion_point == "generator.bottleneck" and net.insertion_channels == 32
    seen = []

    def guide(h):
        seen.append(h.shape)
        return h + 1.0

    L = torch.rand(2, 1, 64, 64) * 2 - 1
    plain = net(L)
    guided = net(L, guide=guide)
    assert seen == [torch.Size([2, 32, 8, 8])]
    assert plain.shape == guided.shape == (2, 2, 64, 64)
    assert not torch.allclose(plain, guided)
    assert build_backbone("unet", ModelConfig(backbone_options={"base_channels": 8})).insertion_point == (
        "generator.bottleneck"
    )  # the default: at the start of C
    last = build_backbone(
        "unet", ModelConfig(backbone_options={"base_channels": 8, "guide_at": -1})
    )  # C's end
    assert last.insertion_point == "generator.ups.2.block" and last.insertion_channels == 8
    seen.clear()
    last(L, guide=guide)
    assert seen == [torch.Size([2, 8, 64, 64])]
    with pytest.raises(ValueError, match="multiple of 8"):
        net(torch.zeros(1, 1, 60, 64))


@pytest.mark.parametrize("size", [64, 128, 256])
def test_colorizer_shapes_and_r_zero_equals_plain_backbone(size):
    torch.manual_seed(5)
    model = build_colorizer(SMALL).eval()
    _randomise(model.guidance, 5)
    L = torch.rand(2, 1, size, size) * 2 - 1
    rgb = torch.rand(2, 3, size, size)
    with torch.no_grad():
        c = model.condition(model.visual_semantics(rgb))
        plain = model(L)
        off = model(L, c, torch.zeros(2))
        on = model(L, c, torch.ones(2))
        mel = torch.randn(2, 1, 64, 97)
        c_a = model.condition(model.audio_semantics(mel))
        r = model.relevance_score(L, mel, torch.tensor([True, False]))
    assert plain.shape == (2, 2, size, size)
    assert torch.equal(off, plain)
    assert not torch.allclose(on, plain)
    assert c_a.shape == c.shape == (2, SMALL.cond_dim)
    assert 0 < r[0] < 1 and r[1] == 0


def test_grey_rgb_is_the_l_channel_without_colour():
    rgb = torch.rand(2, 3, 8, 8)
    lab = rgb_to_lab(rgb)
    grey = grey_rgb((lab[:, :1] - 50) / 50)
    torch.testing.assert_close(grey[:, 0], grey[:, 1], atol=2e-3, rtol=0)
    torch.testing.assert_close(grey[:, 1], grey[:, 2], atol=2e-3, rtol=0)
    back = rgb_to_lab(grey)
    torch.testing.assert_close(back[:, 0], lab[:, 0], atol=1e-3, rtol=0)
    assert back[:, 1:].abs().max() < 1e-2
    assert lab_to_rgb(lab).shape == rgb.shape


def test_model_config_validation():
    with pytest.raises(ValueError, match="four entries"):
        ModelConfig(semantic_channels=(8, 8, 8))
    with pytest.raises(ValueError, match="vgg19_weights"):
        ModelConfig(relevance_image_encoder="vgg19")
    with pytest.raises(ValueError, match="guide_at"):
        ModelConfig(backbone_options={"depth": 2, "guide_at": 3})
