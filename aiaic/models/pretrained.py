"""Optional pretrained encoders (E_a and the relevance net's), read from files the user names (never
downloaded).

- ImageNet VGG-19 (torchvision `vgg19-dcbb9e9d.pth`: a bare state dict; the `features.*` keys are
  used, `classifier.*` dropped) for the image side E_v.
- The public VGGSound ResNet-18 (hche11/VGGSound model H, `H.pth.tar`: a dict with the weights under
  `model_state_dict`, every key prefixed `audnet.`; a `module.` prefix is stripped too) for the audio
  side E_a'. After stripping the prefix the keys are torchvision ResNet-18's with a one-channel stem;
  the 309-class `fc` is dropped.

Files are read, filtered and checked by `aiaic.models.weights` (`torch.load(weights_only=True)`, so no
arbitrary object is ever unpickled); a mismatch raises `InputError` naming the file and the keys.
The VGGSound network reads what it was trained on: the VGGSound spectrogram [1, 257, 1004] of
`aiaic.data.spectrogram` (the loader and inference compute it from the one-second PCM).

`check_weight_files(cfg)` lists every configured file that is absent (with where it comes from) in
one `ConfigError`, so a recipe fails before any data is read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from aiaic.errors import ConfigError
from aiaic.models.weights import find_weights, load_weights, strip_prefix

if TYPE_CHECKING:
    from aiaic.models.colorizer import AudioInfusedColorizer
    from aiaic.models.config import ModelConfig

log = logging.getLogger(__name__)

WHERE_FROM = {
    "vggsound_weights": "the VGGSound authors' model page (hche11/VGGSound README: model H, avgpool, "
    "H.pth.tar from www.robots.ox.ac.uk/~vgg/data/vggsound/models/)",
    "vgg19_weights": "torchvision's ImageNet VGG-19, vgg19-dcbb9e9d.pth: in the torch hub cache "
    "(~/.cache/torch/hub/checkpoints/) after "
    "torchvision.models.vgg19(weights='IMAGENET1K_V1')",
}


def vggsound_to_resnet18(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key mapping: strip `module.` and `audnet.` prefixes, drop the classifier `fc.*`."""
    s = strip_prefix(state, "module.")
    s = strip_prefix(s, "audnet.")
    return {k: v for k, v in s.items() if not k.startswith("fc.")}


def load_vggsound_audio(encoder: nn.Module, path: str | Path) -> None:
    """Load the VGGSound ResNet-18 into an `AudioEncoder` (its `.net`), strictly after key mapping."""
    target: nn.Module = getattr(encoder, "net", encoder)
    report = load_weights(
        target,
        path,
        expected="a VGGSound ResNet-18 (one-channel stem) checkpoint",
        key_filter=vggsound_to_resnet18,
        ignored_what="classifier keys",
    )
    log.info("VGGSound ResNet-18 from %s (%d tensors)", report.file, report.keys)


def vgg19_to_features(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key mapping: strip `module.`, keep torchvision VGG-19's `features.*`, drop `classifier.*`."""
    s = strip_prefix(state, "module.")
    return {k: v for k, v in s.items() if k.startswith("features.")}


def load_vgg19_image(module: nn.Module, path: str | Path) -> None:
    """Load ImageNet VGG-19 conv weights into a `VGG19Features`, strictly after key mapping."""
    report = load_weights(
        module,
        path,
        expected="a torchvision VGG-19 checkpoint",
        key_filter=vgg19_to_features,
        ignored_what="classifier keys",
    )
    log.info("relevance net image encoder: ImageNet VGG-19 from %s (%d tensors)", report.file, report.keys)


def _uses(cfg: ModelConfig, name: str) -> bool:
    if name == "vggsound_weights":
        return cfg.audio_encoder == "vggsound" or cfg.relevance_audio_encoder == "vggsound"
    if name == "vgg19_weights":
        return cfg.relevance_image_encoder == "vgg19"
    return False


def check_weight_files(cfg: ModelConfig) -> None:
    """ConfigError listing every weight file the config uses that does not exist, each with where it
    comes from; nothing is raised when all are present (or none is used)."""
    missing = []
    for name, where in WHERE_FROM.items():
        path = getattr(cfg, name)
        if _uses(cfg, name) and path is not None and not Path(path).is_file():
            missing.append(f"  {name} = {path}: not found; get it from {where}")
    if missing:
        raise ConfigError("[model] names weight files that do not exist:\n" + "\n".join(missing))


def load_audio_encoder(model: AudioInfusedColorizer) -> list[str]:
    """With `audio_encoder = "vggsound"`, initialise E_a (`model.audio`) from `vggsound_weights`; the
    stages that train E_a (stage 2, e2e) call this when they start. Returns the log line ([] for
    "scratch", whose E_a keeps its random or inherited weights)."""
    cfg = model.config
    if cfg.audio_encoder != "vggsound":
        return []
    if cfg.vggsound_weights is None:
        raise ConfigError("audio_encoder = 'vggsound' needs vggsound_weights")
    load_vggsound_audio(model.audio, cfg.vggsound_weights)
    line = (
        f"audio encoder E_a: VGGSound ResNet-18 from {cfg.vggsound_weights} (reads the VGGSound spectrogram)"
    )
    log.info(line)
    return [line]


def load_relevance_encoders(model: AudioInfusedColorizer) -> list[str]:
    """Initialise the relevance net's encoders from the files in `model.config`; log what serves.

    Returns one line per encoder saying where its weights come from (also logged at INFO).
    """
    cfg = model.config
    lines = []
    if model.relevance_image is not None:
        if cfg.vgg19_weights is None:
            raise ConfigError("relevance_image_encoder = 'vgg19' needs vgg19_weights")
        load_vgg19_image(model.relevance_image, cfg.vgg19_weights)
        lines.append(f"relevance image encoder E_v: ImageNet VGG-19 from {cfg.vgg19_weights}")
    elif cfg.relevance_image_encoder == "backbone":
        lines.append(
            "relevance image encoder E_v: no VGG-19 weights given; the backbone's encoder E, "
            "trained from scratch in stage 1 on grey frames, serves"
        )
    else:
        lines.append(
            "relevance image encoder E_v: no VGG-19 weights given; E_s trained from scratch in "
            "stage 1 serves (fed the grey frame)"
        )
    if model.relevance_audio is not None:
        if cfg.vggsound_weights is None:
            raise ConfigError("relevance_audio_encoder = 'vggsound' needs vggsound_weights")
        load_vggsound_audio(model.relevance_audio, cfg.vggsound_weights)
        lines.append(f"relevance audio encoder E_a': VGGSound ResNet-18 from {cfg.vggsound_weights}")
    else:
        lines.append(
            "relevance audio encoder E_a': no VGGSound weights given for it; E_a "
            f"({'VGGSound-initialised' if cfg.audio_encoder == 'vggsound' else 'from scratch'}, "
            "trained in stage 2) serves"
        )
    for line in lines:
        log.info(line)
    return lines


def resolve_weights(value: str | Path, model: AudioInfusedColorizer | None = None) -> Path:
    """The local file of a weights setting (`aiaic.models.weights.find_weights`): an existing path, a
    weight set of the model's backbone by name, or a Hugging Face repo id (fetched with
    `huggingface_hub`). ConfigError when it cannot be fetched, InputError for a missing file."""
    spec = model.backbone.backbone_spec if model is not None else None
    return find_weights(value, spec.weights if spec is not None else ())[0]


def load_backbone_weights(model: AudioInfusedColorizer) -> str | None:
    """Load `model.config.backbone_weights` (a file, one of the backbone's weight sets by name, or a
    Hugging Face repo id) into `model.backbone`; returns a line saying what was loaded (also logged),
    or None when no weights are configured."""
    value = model.config.backbone_weights
    if value is None:
        return None
    backbone = model.backbone
    spec = backbone.backbone_spec
    path, weight_set = find_weights(value, spec.weights if spec is not None else ())
    fmt = spec.format_of(weight_set) if spec is not None else None
    info = backbone.load_pretrained(path, fmt)
    line = f"backbone {model.config.backbone}: released weights from {path} ({info.get('keys')} tensors)"
    log.info(line)
    return line
