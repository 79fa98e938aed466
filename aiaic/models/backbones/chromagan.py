"""ChromaGAN (Vitoria et al., WACV 2020) as an aiaic backbone, from its released Keras file.

    L_n [B, 1, S, S] -> L/255 tiled [B, 3, S, S]
    trunk = VGG16 to block4_conv3, global map = the global path's convs              E
    ab01 = mid-level + fusion + colouring path (DSG on the output of `conv2d_13`)    C
    ab_n = (255 ab01 - 128) / 110;  extra: class_logits [B, 1000] of the class head

The released generator takes exactly S = 224 (its Dense layers fix it; `chromagan-mini`: 64): the
input policy is that fixed size, so pictures of any size follow the official path: `aiaic-colorize`
resizes to S, predicts ab, and resizes ab onto the picture's own full-resolution L. The module
names are the Keras layer names of `my_model_colorization.h5` (`chromagan_arch`), so the insertion
point is `conv2d_13` ([B, 128, 28, 28] at 224: the input of the first UpSampling2D, the "seventh
from the end" of the colouring network; the other readings are in the README) and `class_logits`
(the 1000-way class head, trained with a KL term) is an extra output.

Weights: the "chromagan-h5" reader reads the Keras h5 (Keras 2.2.4 as released, or a tf.keras save
of the same model) with h5py, never TensorFlow; a `.safetensors` copy written by `convert_h5` (the
same keys) loads without the conversion. Training: ChromaGAN's loss (`l2` on ab_n weighted as its
MSE on ab01, `class_kl` 0.003 on the class head against a frozen ImageNet VGG16, `adversarial` 0.1
against its WGAN-GP PatchGAN critic conditioned on L) and its Adam (2e-5, betas (0.5, 0.999));
the terms and the critic's adapter are in this file, their maths in `aiaic.train.chromagan_loss`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from aiaic.models.backbone_spec import (
    BackboneSpec,
    CriticSpec,
    InputPolicy,
    OptimizerDefaults,
    RuntimeFlags,
    WeightFormat,
    WeightSet,
)
from aiaic.models.backbones.base import Backbone, BackboneOutput, Features
from aiaic.models.backbones.chromagan_arch import SIZES, ChromaGANCritic, ChromaGANGenerator, ChromaGANSize
from aiaic.models.backbones.chromagan_io import ab01_from_ab_n, ab_n_from_ab01, generator_input, l01_from_L_n
from aiaic.models.backbones.registry import BackboneSettings, register
from aiaic.models.weights import read_state_dict, register_reader
from aiaic.train.terms import PretrainedNet, TermInputs, TermNeeds, register_term

if TYPE_CHECKING:
    from aiaic.models.backbone_spec import NoOptions

log = logging.getLogger(__name__)

H5_SUFFIXES = (".h5", ".hdf5")
MSE_WEIGHT_ON_AB_N = (110.0 / 255.0) ** 2  # ChromaGAN's mse (weight 1) on ab01, expressed on ab_n
ADAM = OptimizerDefaults(name="adam", lr=2e-5, betas=(0.5, 0.999), weight_decay=0.0)
EXTRAS = {"class_logits": "[B, 1000] the class head's logits (softmax = the released model's class output)"}


class ChromaGAN(ChromaGANGenerator, Backbone):
    """ChromaGAN's generator behind the aiaic contract (module docstring). `forward_official(x)` is
    the released model's own call: L/255 tiled [B, 3, S, S] -> (ab01, class logits).

    `encode` returns [trunk [B, vgg[3], S/8, S/8], global map [B, global_width, S/32, S/32]].
    """

    insertion_point = "conv2d_13"
    forward = Backbone.forward  # type: ignore[assignment]  # the aiaic contract; Keras's: forward_official

    def __init__(self, size: ChromaGANSize):
        ChromaGANGenerator.__init__(self, size)
        self.input_policy = InputPolicy(fixed_size=size.image_size)
        self.insertion_channels = size.colour[1]
        self.feature_dim = 2 * size.vgg[3]  # length of `pool(feats)`

    def encode(self, L_n: torch.Tensor) -> Features:
        """E(L_n): L_n [B, 1, S, S] -> [trunk, global map]."""
        self.check_input(L_n)
        trunk = self.trunk_features(generator_input(l01_from_L_n(L_n).clamp(0.0, 1.0)))
        return [trunk, self.global_map(trunk)]

    def decode(self, feats: Features) -> torch.Tensor:
        """C(feats) -> ab_n [B, 2, S, S] = ab / 110 (the class head does not run)."""
        return ab_n_from_ab01(self.colour(feats[0], feats[1]))

    def decode_outputs(self, feats: Features) -> BackboneOutput:
        """ab_n and the extra `class_logits` [B, num_classes]."""
        return BackboneOutput(self.decode(feats), {"class_logits": self.class_logits(feats[1])})

    def pool(self, feats: Features) -> torch.Tensor:
        """Per-channel spatial mean and std of the VGG trunk's output, [B, 2 * vgg[3]]."""
        h = feats[0]
        return torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3), unbiased=False)], dim=1)

    def describe(self) -> str:
        return f"ChromaGAN ({self.size.image_size} x {self.size.image_size} input)"


@register_reader("chromagan-h5")
def read_chromagan_weights(path: Path) -> dict[str, torch.Tensor]:
    """ChromaGAN's generator weights: a Keras `.h5` / `.hdf5` read with h5py, a `.safetensors` copy,
    or any other file as a PyTorch state dict (weights-only `torch.load`: this port's own keys)."""
    p = Path(path)
    if p.suffix.lower() in H5_SUFFIXES:
        from aiaic.models.keras_h5 import read_chromagan_h5

        return read_chromagan_h5(p)
    if p.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    return read_state_dict(p)


def convert_h5(h5_path: Path, out: Path) -> Path:
    """Write the generator of a ChromaGAN Keras h5 as safetensors (the same keys the reader gives),
    so later loads skip the h5 conversion. Returns `out`."""
    from safetensors.torch import save_file

    from aiaic.models.keras_h5 import read_chromagan_h5

    state = read_chromagan_h5(h5_path)
    tmp = out.with_name(out.name + ".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(out)  # complete or absent
    return out


class ChromaGANLabCritic(nn.Module):
    """ChromaGAN's PatchGAN critic on what the shared critic trainer gives ("lab" input):
    x = cat(L_n, ab_n) [B, 3, H, W] -> scores [B, (H/8) * (W/8)], read in ChromaGAN's own units
    (L01 = L / 100, ab01 = OpenCV 8-bit a, b / 255). `blocks` is unused (the critic's depth is fixed)."""

    def __init__(self, channels: int = 64, blocks: int = 3):
        super().__init__()
        self.critic = ChromaGANCritic(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(l01_from_L_n(x[:, :1]), ab01_from_ab_n(x[:, 1:])).flatten(1)


WGAN_GP_CRITIC = CriticSpec(
    build=ChromaGANLabCritic,
    input="lab",
    loss="wgan-gp",
    channels=64,
    blocks=3,
    optimizer=ADAM,
    gp_weight=10.0,
)


def _load_vgg16_teacher(path: Path) -> nn.Module:
    from aiaic.train.chromagan_loss import VGG16Teacher

    return VGG16Teacher.from_file(path)


VGG16_TEACHER = PretrainedNet(
    name="vgg16",
    file="vgg16-397923af.pth",
    load=_load_vgg16_teacher,
    what="VGG16",
    description="ImageNet VGG16 with its classifier (torchvision)",
    recipe_key="network_weights.vgg16",
)


@register_term("class_kl", needs=TermNeeds(network=VGG16_TEACHER, extras=("class_logits",)))
def class_kl(t: TermInputs) -> torch.Tensor:
    """ChromaGAN's class term: Keras kld from a frozen VGG16's softmax on the grey L/255 tiled to 3
    channels (what ChromaGAN.py feeds it) to the class head's softmax."""
    from aiaic.train.chromagan_loss import class_kl_term

    assert t.network is not None
    return class_kl_term(t.network, t.extras["class_logits"], t.L_n, teacher_input="grey")


@register_term("class_kl_color", needs=TermNeeds(rgb=True, network=VGG16_TEACHER, extras=("class_logits",)))
def class_kl_color(t: TermInputs) -> torch.Tensor:
    """The class term with the teacher reading the true colour image (the paper's wording)."""
    from aiaic.train.chromagan_loss import class_kl_term

    assert t.network is not None
    return class_kl_term(t.network, t.extras["class_logits"], t.L_n, t.rgb_real, "color")


def _spec(name: str, description: str) -> BackboneSpec:
    size = SIZES[name]
    weights: tuple[WeightSet, ...] = ()
    if name == "chromagan":
        weights = (
            WeightSet(
                "chromagan_imagenet",
                file="my_model_colorization.h5",
                url="http://gpi.upf.edu/chromagan/my_model_colorization.h5",
                description="the released generator (ImageNet), Keras 2.2.4 full-model h5",
            ),
        )
    return BackboneSpec(
        name=name,
        input=InputPolicy(fixed_size=size.image_size),
        weights=weights,
        weight_format=WeightFormat(reader="chromagan-h5"),
        optimizer=ADAM,
        loss={"l2": MSE_WEIGHT_ON_AB_N, "class_kl": 0.003, "adversarial": 0.1},
        critic=WGAN_GP_CRITIC,
        # the class head (dense_4..6) serves class_kl only: without that term it gets no gradient
        runtime=RuntimeFlags(unused_parameters=True),
        extras=EXTRAS,
        description=description,
    )


@register(_spec("chromagan", "ChromaGAN's released generator (224 x 224, 171,171,722 parameters)"))
def build_chromagan(options: NoOptions, cfg: BackboneSettings) -> ChromaGAN:
    """The released generator at 224 x 224."""
    return ChromaGAN(SIZES["chromagan"])


@register(_spec("chromagan-mini", "the ChromaGAN graph, narrow, at a fixed 64 x 64 (CPU tests)"))
def build_chromagan_mini(options: NoOptions, cfg: BackboneSettings) -> ChromaGAN:
    """The same graph, narrow, at a fixed 64 x 64: for CPU tests and benchmarks."""
    return ChromaGAN(SIZES["chromagan-mini"])
