"""Optional pretrained encoders (E_a and the relevance net's), read from files the user names (never
downloaded).

- ImageNet VGG-19 (torchvision `vgg19-dcbb9e9d.pth`: a bare state dict; the `features.*` keys are
  used, `classifier.*` dropped) for the image side E_v.
- The public VGGSound ResNet-18 (hche11/VGGSound model H, `H.pth.tar`: a dict with the weights under
  `model_state_dict`, every key prefixed `audnet.`; a `module.` prefix is stripped too) for the audio
  side E_a'. After stripping the prefix the keys are torchvision ResNet-18's with a one-channel stem;
  the 309-class `fc` is dropped.

Files are read with `torch.load(weights_only=True)`, so no arbitrary object is ever unpickled. Keys
and shapes are checked against the model; a mismatch raises `InputError` naming the file and the keys.
The VGGSound network reads what it was trained on: the VGGSound spectrogram [1, 257, 1004] of
`aiaic.data.spectrogram` (the loader and inference compute it from the one-second PCM).

`check_weight_files(cfg)` lists every configured file that is absent (with where it comes from) in
one `ConfigError`, so a recipe fails before any data is read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from aiaic.errors import ConfigError, InputError

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

_WRAPPERS = ("model_state_dict", "state_dict", "params", "model")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint file safely and unwrap the usual containers -> {key: tensor}."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "pretrained weights file not found")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise InputError(
            p, f"cannot be read as a weights-only torch checkpoint: {type(e).__name__}: {e}"
        ) from e
    for _ in range(2):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPERS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(p, "holds no state dict (expected a mapping of parameter names to tensors)")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise InputError(p, "holds no tensors")
    return state


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """`state` with `prefix` removed from every key, when every key has it (else an unchanged copy)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str) -> None:
    """Load `state` into `module` strictly; InputError naming `path` and listing the missing,
    unexpected and wrongly shaped keys (`what` names the expected kind of checkpoint)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[:10]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:10]})")
        if wrong:
            k = wrong[0]
            detail.append(
                f"{len(wrong)} with wrong shapes (e.g. {k}: file {list(state[k].shape)}, "
                f"model {list(own[k].shape)})"
            )
        raise InputError(path, f"not a {what} checkpoint: " + "; ".join(detail))
    module.load_state_dict(dict(state), strict=True)


def vggsound_to_resnet18(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key mapping: strip `module.` and `audnet.` prefixes, drop the classifier `fc.*`."""
    s = strip_prefix(state, "module.")
    s = strip_prefix(s, "audnet.")
    return {k: v for k, v in s.items() if not k.startswith("fc.")}


def load_vggsound_audio(encoder: nn.Module, path: str | Path) -> None:
    """Load the VGGSound ResNet-18 into an `AudioEncoder` (its `.net`), strictly after key mapping."""
    p = Path(path)
    state = vggsound_to_resnet18(read_state_dict(p))
    target: nn.Module = getattr(encoder, "net", encoder)
    load_checked(target, state, p, "VGGSound ResNet-18 (one-channel stem)")
    log.info("VGGSound ResNet-18 from %s (%d tensors)", p, len(state))


def vgg19_to_features(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key mapping: strip `module.`, keep torchvision VGG-19's `features.*`, drop `classifier.*`."""
    s = strip_prefix(state, "module.")
    return {k: v for k, v in s.items() if k.startswith("features.")}


def load_vgg19_image(module: nn.Module, path: str | Path) -> None:
    """Load ImageNet VGG-19 conv weights into a `VGG19Features`, strictly after key mapping."""
    p = Path(path)
    state = vgg19_to_features(read_state_dict(p))
    load_checked(module, state, p, "torchvision VGG-19")
    log.info("relevance net image encoder: ImageNet VGG-19 from %s (%d tensors)", p, len(state))


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


_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
HF_WEIGHTS_FILE = "pytorch_model.bin"


def resolve_weights(value: str | Path) -> Path:
    """The local file of a weights setting: an existing path as is; a Hugging Face repo id
    ("owner/name", not an existing path) fetched with `huggingface_hub` into its usual cache
    (`pytorch_model.bin`). ConfigError when the id cannot be fetched, InputError for a missing file."""
    p = Path(value)
    if p.exists():
        return p
    text = str(value)
    if _HF_REPO_ID.match(text):
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as e:
            raise ConfigError(
                f"{text}: no such file; as a Hugging Face repo id it needs the package "
                "huggingface_hub (pip install huggingface_hub), or download "
                f"{HF_WEIGHTS_FILE} yourself and pass its path"
            ) from e
        try:
            return Path(hf_hub_download(repo_id=text, filename=HF_WEIGHTS_FILE))
        except Exception as e:  # the hub raises many types (network, missing repo, auth)
            raise ConfigError(
                f"{text}: cannot fetch {HF_WEIGHTS_FILE} from Hugging Face: {type(e).__name__}: {e}"
            ) from e
    raise InputError(p, "backbone weights file not found")


def load_backbone_weights(model: AudioInfusedColorizer) -> str | None:
    """Load `model.config.backbone_weights` (a file or a Hugging Face repo id) into `model.backbone`;
    returns a line saying what was loaded (also logged), or None when no weights are configured."""
    value = model.config.backbone_weights
    if value is None:
        return None
    path = resolve_weights(value)
    info = model.backbone.load_pretrained(path)
    line = f"backbone {model.config.backbone}: released weights from {path} ({info.get('keys')} tensors)"
    log.info(line)
    return line
