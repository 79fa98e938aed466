"""ChromaGAN (Vitoria et al., WACV 2020) as an aiaic backbone, from its released Keras file.

    L_n [B, 1, H, W] -> (resized to S x S where H, W differ) -> L/255 tiled [B, 3, S, S]
    trunk = VGG16 to block4_conv3, global map = the global path's convs        E
    ab01 = mid-level + fusion + colouring path (DSG on the output of `conv2d_13`)  C
    ab_n = (255 ab01 - 128) / 110, resized back to H x W where it was resized

The released generator takes exactly S = 224 (its Dense layers fix it; `chromagan-mini`: 64);
pictures of any size follow the official path: resize to S, predict ab, resize ab onto the
picture's own L (`aiaic-colorize` keeps the full-resolution L). The module names are the Keras
layer names of `my_model_colorization.h5` (`aiaic.models.backbones.chromagan_arch`), so the
insertion point is `conv2d_13` ([B, 128, 28, 28] at 224: the input of the first UpSampling2D, the
"seventh from the end" of the colouring network; the other readings are in the README) and
`class_logits` (the 1000-way class head, trained with a KL term) is an extra output.

Weights: `load_pretrained` reads the Keras h5 (Keras 2.2.4 as released, or a tf.keras save of the
same model) with h5py, or a safetensors copy written by `convert_h5` (same keys, no conversion).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from aiaic.errors import InputError
from aiaic.models.backbones.base import Backbone, Features, Guide, OptimizerDefaults
from aiaic.models.backbones.chromagan_arch import SIZES, ChromaGANGenerator, ChromaGANSize
from aiaic.models.backbones.chromagan_io import ab_n_from_ab01, generator_input, l01_from_L_n
from aiaic.models.backbones.registry import register

if TYPE_CHECKING:
    from aiaic.models.config import ModelConfig

log = logging.getLogger(__name__)

H5_SUFFIXES = (".h5", ".hdf5")
MSE_WEIGHT_ON_AB_N = (110.0 / 255.0) ** 2  # ChromaGAN's mse (weight 1) on ab01, expressed on ab_n
ADAM = OptimizerDefaults(name="adam", lr=2e-5, betas=(0.5, 0.999), weight_decay=0.0)


class ChromaGAN(ChromaGANGenerator, Backbone):
    """ChromaGAN's generator behind the aiaic contract (module docstring). `forward_official(x)` is
    the released model's own call: L/255 tiled [B, 3, S, S] -> (ab01, class logits).

    `encode` returns [trunk [B, vgg[3], S/8, S/8], global map [B, global_width, S/32, S/32], L_n]
    (L_n only for its size: `decode` resizes ab back to it).
    """

    insertion_point = "conv2d_13"
    size_multiple = 1  # any size: resized to the fixed side inside
    # MSE on ab only until the spec's term registry carries the class head's KL and the WGAN-GP term
    loss_terms: ClassVar[Mapping[str, float]] = {"l2": MSE_WEIGHT_ON_AB_N}
    optimizer: ClassVar[OptimizerDefaults] = ADAM
    forward = Backbone.forward  # type: ignore[assignment]  # the aiaic contract; the Keras call: forward_official

    def __init__(self, size: ChromaGANSize):
        ChromaGANGenerator.__init__(self, size)
        self.insertion_channels = size.colour[1]
        self.feature_dim = 2 * size.vgg[3]  # length of `pool(feats)`

    def encode(self, L_n: torch.Tensor) -> Features:
        """E(L_n): L_n [B, 1, H, W] -> [trunk, global map, L_n] (class docstring)."""
        Backbone.check_input(self, L_n)
        s = self.size.image_size
        x = L_n
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        trunk = self.trunk_features(generator_input(l01_from_L_n(x).clamp(0.0, 1.0)))
        return [trunk, self.global_map(trunk), L_n]

    def decode(self, feats: Features, guide: Guide | None = None) -> torch.Tensor:
        """C(feats) -> ab_n [B, 2, H, W] = ab / 110 at the size of the L_n given to `encode`."""
        ab_n = ab_n_from_ab01(self.colour(feats[0], feats[1], guide))
        size = tuple(feats[2].shape[-2:])
        if tuple(ab_n.shape[-2:]) != size:
            ab_n = F.interpolate(ab_n, size=size, mode="bilinear", align_corners=False)
        return ab_n

    def class_logits_of(self, feats: Features) -> torch.Tensor:
        """The class head's logits [B, num_classes] (softmax = the released model's class output)."""
        return self.class_logits(feats[1])

    def pool(self, feats: Features) -> torch.Tensor:
        """Per-channel spatial mean and std of the VGG trunk's output, [B, 2 * vgg[3]]."""
        h = feats[0]
        return torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3), unbiased=False)], dim=1)

    def load_pretrained(self, path: Path) -> dict[str, Any]:
        """Load the released Keras h5 (read with h5py) or a safetensors copy of it, strictly.
        InputError naming the file and the layers or shapes that do not match otherwise."""
        from aiaic.models.keras_h5 import load_chromagan_h5

        p = Path(path)
        if p.suffix.lower() in H5_SUFFIXES:
            info = load_chromagan_h5(self, p)
        elif p.suffix.lower() == ".safetensors":
            info = self._load_safetensors(p)
        else:
            raise InputError(p, "ChromaGAN weights are a Keras .h5 file or its .safetensors copy")
        log.info("ChromaGAN weights loaded from %s (%d tensors)", p, info["keys"])
        return {"file": str(p), "keys": info["keys"], "ignored": []}

    def _load_safetensors(self, path: Path) -> dict[str, Any]:
        from safetensors.torch import load_file

        from aiaic.models.keras_h5 import check_shapes
        from aiaic.models.pretrained import load_checked

        state = load_file(str(path))
        check_shapes(state, self, path, "a ChromaGAN generator of this size")
        load_checked(self, state, path, f"ChromaGAN ({self.size.image_size} px)")
        return {"keys": len(state)}


def convert_h5(h5_path: Path, out: Path) -> Path:
    """Write the generator of a ChromaGAN Keras h5 as safetensors (the same keys `load_pretrained`
    reads), so later loads skip the h5 conversion. Returns `out`."""
    from safetensors.torch import save_file

    from aiaic.models.keras_h5 import read_chromagan_h5

    state = read_chromagan_h5(h5_path)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    return out


def build_chromagan(name: str, cfg: ModelConfig) -> ChromaGAN:
    """The ChromaGAN `name` ("chromagan", "chromagan-mini"), random weights."""
    return ChromaGAN(SIZES[name])


@register("chromagan")
def build_chromagan_full(cfg: ModelConfig) -> ChromaGAN:
    """The released generator (224 x 224, 171,171,722 parameters with BatchNorm statistics)."""
    return build_chromagan("chromagan", cfg)


@register("chromagan-mini")
def build_chromagan_mini(cfg: ModelConfig) -> ChromaGAN:
    """The same graph, narrow, at a fixed 64 x 64: for CPU tests and benchmarks."""
    return build_chromagan("chromagan-mini", cfg)
