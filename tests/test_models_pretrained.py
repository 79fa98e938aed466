"""Optional pretrained encoders: files in the public checkpoints' layouts load with key mapping.

The layouts come from ../shared/reference/*.json (recorded from the real models with random weights);
the files here are built from those key -> shape tables with random values. Nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch

from aiaic.errors import InputError
from aiaic.models.audio import AudioEncoder
from aiaic.models.colorizer import VGG19Features, build_colorizer
from aiaic.models.config import ModelConfig
from aiaic.models.pretrained import load_relevance_encoders, load_vgg19_image, load_vggsound_audio

_SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = Path(os.environ.get("AIAIC_SHARED_DATA", _SHARED / "data")).parent / "reference"


def _reference(name: str) -> dict:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"reference layout {path} not found")
    return json.loads(path.read_text())


def _random_state(
    layout: dict[str, list[int]], seed: int, cheap: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """Random tensors of the listed shapes; keys starting with `cheap` are zero-stride views (tiny files)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in layout.items():
        if key.startswith(cheap):
            out[key] = torch.zeros(1).expand(shape) if shape else torch.zeros(())
        elif key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g) if shape else torch.randn((), generator=g)
    return out


def test_vggsound_checkpoint_layout_loads_into_the_audio_encoder(tmp_path):
    ref = _reference("vggsound-resnet18.state_dict.json")
    state = _random_state(ref["state_dict"], 0)
    assert len(state) == 122 and all(k.startswith("audnet.") for k in state)
    path = tmp_path / "H.pth.tar"
    torch.save({"model_state_dict": state, "epoch": 1}, path)  # the official wrapping
    enc = AudioEncoder()
    load_vggsound_audio(enc, path)
    own = enc.net.state_dict()
    assert torch.equal(own["conv1.weight"], state["audnet.conv1.weight"])
    assert torch.equal(own["layer4.1.bn2.running_var"], state["audnet.layer4.1.bn2.running_var"])
    assert own["layer1.0.bn1.num_batches_tracked"].item() == 7
    assert not any(k.startswith("fc.") for k in own)  # the 309-class head is dropped
    # a DataParallel-saved copy ("module." prefix) loads too
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pth")
    enc2 = AudioEncoder()
    load_vggsound_audio(enc2, tmp_path / "dp.pth")
    assert torch.equal(enc2.net.layer2[0].conv1.weight, state["audnet.layer2.0.conv1.weight"])


def test_vgg19_torchvision_layout_loads_into_the_image_encoder(tmp_path):
    ref = _reference("torchvision-lpips-weights.json")["vgg19"]
    # the classifier (102 M parameters) is stored as zero-stride views so the file stays small
    state = _random_state(ref["state_dict"], 1, cheap=("classifier.",))
    assert sum(1 for k in state if k.startswith("features.")) == 32
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    module = VGG19Features()
    load_vgg19_image(module, path)
    assert torch.equal(module.features[0].weight, state["features.0.weight"])
    assert torch.equal(module.features[34].bias, state["features.34.bias"])
    assert module(torch.rand(1, 3, 64, 64)).shape == (1, 512)


def test_wrong_layouts_are_refused_with_the_file_and_the_keys(tmp_path):
    ref = _reference("vggsound-resnet18.state_dict.json")
    state = _random_state(ref["state_dict"], 2)
    state["audnet.conv1.weight"] = torch.zeros(64, 3, 7, 7)  # an RGB stem: not the audio network
    bad = tmp_path / "rgb.pth"
    torch.save({"model_state_dict": state}, bad)
    with pytest.raises(InputError, match=r"rgb\.pth.*wrong shapes.*conv1\.weight"):
        load_vggsound_audio(AudioEncoder(), bad)
    with pytest.raises(InputError, match="not found"):
        load_vggsound_audio(AudioEncoder(), tmp_path / "absent.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pth.*weights-only"):
        load_vgg19_image(VGG19Features(), junk)


def test_pickled_objects_are_never_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {"x": Evil()}}, path)
    with pytest.raises(InputError, match="weights-only"):
        load_vggsound_audio(AudioEncoder(), path)


def test_relevance_encoders_from_files_and_the_log_without_them(tmp_path, caplog):
    base = dict(
        backbone_options={"base_channels": 8}, semantic_channels=(8, 8, 16, 16), semantic_dim=16, cond_dim=16
    )
    with caplog.at_level(logging.INFO, logger="aiaic"):
        lines = load_relevance_encoders(build_colorizer(ModelConfig(**base)))
    assert "no VGG-19 weights given" in lines[0] and "no VGGSound weights given" in lines[1]
    assert "trained from scratch in stage 1 on grey frames" in caplog.text and "stage 2" in caplog.text

    ref = _reference("vggsound-resnet18.state_dict.json")
    path = tmp_path / "H.pth.tar"
    state = _random_state(ref["state_dict"], 3)
    torch.save({"model_state_dict": state}, path)
    model = build_colorizer(ModelConfig(**base, relevance_audio_encoder="vggsound", vggsound_weights=path))
    lines = load_relevance_encoders(model)
    assert "VGGSound ResNet-18 from" in lines[1]
    assert torch.equal(model.relevance_audio.net.conv1.weight, state["audnet.conv1.weight"])
    assert "relevance_audio" in model.components
    # its features feed the relevance net (not the stage-2 E_a)
    mel = torch.randn(2, 1, 64, 97)
    model.eval()
    with torch.no_grad():
        feats = model.relevance_audio_features(mel)
        assert torch.isfinite(feats).all()
        assert torch.equal(feats, model.relevance_audio(mel))
        assert not torch.allclose(feats, model.audio(mel))
