"""Keras HDF5 files read with h5py (never TensorFlow), and ChromaGAN's released generator from one.

A Keras full-model save (`Model.save("x.h5")`: Keras 2.2.4, tf.keras 2.x, Keras 3's legacy h5)
holds `model_weights` (a bare `save_weights` file holds the same at its root): its attribute
`layer_names` lists the model's layers in `Model.layers` order; each layer's group has the attribute
`weight_names`, and each weight name is a dataset path inside that group (`conv2d_6/kernel:0` in
Keras 2, `conv2d_6/kernel` in Keras 3). A nested model (ChromaGAN's VGG trunk, `model_2`) is one
layer whose weight names carry its own layers' names (`block1_conv1/kernel:0`). Attributes may be
bytes or str, and Keras splits a long one into `name0`, `name1`, ...

ChromaGAN's mapping (`chromagan_state_dict`): conv kernels (kh, kw, in, out) -> (out, in, kh, kw),
Dense kernels (in, out) -> (out, in) (our port flattens NHWC as Keras does, so no reordering),
BatchNormalization gamma, beta, moving_mean, moving_variance -> weight, bias, running_mean,
running_var. Layers are matched by kind and creation order, not by name: Keras numbers its
auto-named layers per class in creation order (`conv2d_6` .. `conv2d_17` in the released file,
where the discriminator was built first; `conv2d`, `conv2d_1`, ... in a fresh tf.keras process),
and every shape is checked against the module, so a different model is refused with the list of
what does not match.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aiaic.errors import InputError

BN_NAMES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


@dataclass
class KerasLayer:
    """One layer group: its name and weights {weight name as stored: array}, in the stored order."""

    name: str
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class KerasH5:
    """What a Keras h5 holds: layers in `Model.layers` order, and the root attributes."""

    path: Path
    layers: list[KerasLayer]
    keras_version: str | None
    backend: str | None
    model_config: dict[str, Any] | None
    training_config: dict[str, Any] | None


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _attr_list(attrs: Any, name: str) -> list[str] | None:
    """A list attribute (bytes or str items), joined from Keras's chunks `name0`, `name1`, ..."""
    if name in attrs:
        return [_text(v) for v in np.atleast_1d(attrs[name]) if not isinstance(v, float)]
    if f"{name}0" not in attrs:
        return None
    out: list[str] = []
    i = 0
    while f"{name}{i}" in attrs:
        out += [_text(v) for v in np.atleast_1d(attrs[f"{name}{i}"])]
        i += 1
    return out


def _json_attr(attrs: Any, name: str) -> dict[str, Any] | None:
    if name not in attrs:
        return None
    try:
        value = json.loads(_text(attrs[name]))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def read_keras_h5(path: str | Path) -> KerasH5:
    """Read every layer's weights from a Keras h5 (full-model or weights-only save) with h5py.

    InputError naming the file where it is not HDF5 or holds no Keras `layer_names`.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such file")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise InputError(p, f"not an HDF5 file ({e})") from e
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        names = _attr_list(root.attrs, "layer_names")
        if names is None:
            raise InputError(
                p, "not a Keras h5 file: no 'layer_names' attribute in model_weights or at the root"
            )
        layers = []
        for name in names:
            if name not in root:
                raise InputError(p, f"layer {name!r} is listed in layer_names but has no group")
            group = root[name]
            layer = KerasLayer(name)
            for wn in _attr_list(group.attrs, "weight_names") or []:
                if wn not in group:
                    raise InputError(p, f"weight {name}/{wn} is listed but missing")
                layer.weights[wn] = np.asarray(group[wn])
            layers.append(layer)
        return KerasH5(
            path=p,
            layers=layers,
            keras_version=_text(f.attrs["keras_version"]) if "keras_version" in f.attrs else None,
            backend=_text(f.attrs["backend"]) if "backend" in f.attrs else None,
            model_config=_json_attr(f.attrs, "model_config"),
            training_config=_json_attr(f.attrs, "training_config"),
        )


def _split(weight_name: str) -> tuple[str, str]:
    """ "model_2/block1_conv1/kernel:0" -> ("block1_conv1", "kernel")."""
    parts = weight_name.split("/")
    short = parts[-1].split(":")[0]
    return (parts[-2] if len(parts) > 1 else ""), short


def _suffix(name: str) -> int:
    """Keras's per-class creation number: "conv2d_12" -> 12, "conv2d" -> 0."""
    m = re.search(r"_(\d+)$", name)
    return int(m.group(1)) if m else 0


def _kind(weights: dict[str, np.ndarray]) -> str:
    shorts = {_split(w)[1]: a for w, a in weights.items()}
    if set(shorts) == set(BN_NAMES):
        return "bn"
    if set(shorts) == {"kernel", "bias"}:
        return {4: "conv", 2: "dense"}.get(shorts["kernel"].ndim, "other")
    return "other"


def _torch_tensors(kind: str, prefix: str, weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out = {}
    for wn, a in weights.items():
        short = _split(wn)[1]
        if kind == "bn":
            out[f"{prefix}.{BN_NAMES[short]}"] = torch.from_numpy(np.ascontiguousarray(a, np.float32))
        elif short == "kernel":
            t = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a.T
            out[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(t, np.float32))
        else:
            out[f"{prefix}.bias"] = torch.from_numpy(np.ascontiguousarray(a, np.float32))
    return out


def _keras_layer_units(
    h5: KerasH5,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, list[tuple[str, dict]]]]:
    """Split the file into VGG trunk convs {blockN_convM: weights} and other weighted layers by kind."""
    trunk: dict[str, dict[str, np.ndarray]] = {}
    kinds: dict[str, list[tuple[str, dict]]] = {"conv": [], "bn": [], "dense": [], "other": []}
    for layer in h5.layers:
        if not layer.weights:
            continue
        owners = {_split(w)[0] for w in layer.weights}
        if all(o.startswith("block") for o in owners) and (len(owners) > 1 or layer.name not in owners):
            for o in owners:  # a nested model: one group per inner layer
                trunk[o] = {w: a for w, a in layer.weights.items() if _split(w)[0] == o}
        elif layer.name.startswith("block") and re.fullmatch(r"block\d_conv\d", layer.name):
            trunk[layer.name] = layer.weights
        else:
            kinds[_kind(layer.weights)].append((layer.name, layer.weights))
    for v in kinds.values():
        v.sort(key=lambda item: _suffix(item[0]))
    return trunk, kinds


# our module names in Keras creation order (the released file's names): kind -> names
CHROMAGAN_MODULES = {
    "conv": [f"conv2d_{i}" for i in range(6, 18)],
    "bn": [f"batch_normalization_{i}" for i in range(1, 7)],
    "dense": [f"dense_{i}" for i in range(1, 7)],
}
CHROMAGAN_TRUNK = [f"block{b}_conv{i}" for b, n in enumerate((2, 2, 3, 3), start=1) for i in range(1, n + 1)]


def chromagan_state_dict(h5: KerasH5) -> dict[str, torch.Tensor]:
    """The PyTorch state dict of a `ChromaGANGenerator` (any size) from a ChromaGAN Keras h5.

    InputError naming the file and listing what is missing or extra where the file does not have
    ChromaGAN's layers (10 VGG trunk convs, 12 convs, 6 batch norms, 6 dense layers).
    """
    trunk, kinds = _keras_layer_units(h5)
    problems = [f"VGG trunk layer {n} missing" for n in CHROMAGAN_TRUNK if n not in trunk]
    problems += [f"unexpected VGG trunk layer {n}" for n in sorted(set(trunk) - set(CHROMAGAN_TRUNK))]
    state: dict[str, torch.Tensor] = {}
    for name in CHROMAGAN_TRUNK:
        if name in trunk:
            state.update(_torch_tensors("conv", f"trunk.{name}", trunk[name]))
    for kind, modules in CHROMAGAN_MODULES.items():
        found = kinds[kind]
        if len(found) != len(modules):
            listed = ", ".join(f"{n} {[list(a.shape) for a in w.values()]}" for n, w in found)
            problems.append(f"{len(found)} {kind} layers where ChromaGAN has {len(modules)}: {listed}")
            continue
        for module, (_, weights) in zip(modules, found, strict=True):
            state.update(_torch_tensors(kind, module, weights))
    for n, w in kinds["other"]:
        problems.append(f"layer {n} of unknown kind {[list(a.shape) for a in w.values()]}")
    if problems:
        raise InputError(
            h5.path, f"not a ChromaGAN generator (Keras {h5.keras_version or '?'}): " + "; ".join(problems)
        )
    for name in CHROMAGAN_MODULES["bn"]:
        state[f"{name}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return state


def read_chromagan_h5(path: str | Path) -> dict[str, torch.Tensor]:
    """A weight reader (path -> state dict): ChromaGAN's generator from its Keras h5."""
    return chromagan_state_dict(read_keras_h5(path))


def check_shapes(state: dict[str, torch.Tensor], net: nn.Module, path: Path, what: str) -> None:
    """InputError naming `path` and listing every tensor whose shape differs from `net`'s."""
    own = net.state_dict()
    wrong = [
        f"{k}: the file has {list(t.shape)}, the model {list(own[k].shape)}"
        for k, t in state.items()
        if k in own and tuple(t.shape) != tuple(own[k].shape)
    ]
    if wrong:
        raise InputError(path, f"not {what}: " + "; ".join(wrong))


def load_chromagan_h5(net: nn.Module, path: str | Path) -> dict[str, Any]:
    """Read a ChromaGAN Keras h5 into `net` (a `ChromaGANGenerator` of the file's size), strictly;
    returns what was read. InputError naming the file and the layers or shapes that differ."""
    h5 = read_keras_h5(path)
    state = chromagan_state_dict(h5)
    check_shapes(state, net, h5.path, f"a ChromaGAN generator of this size (Keras {h5.keras_version or '?'})")
    net.load_state_dict(state, strict=True)
    return {
        "file": str(h5.path),
        "keras_version": h5.keras_version,
        "layers": len(h5.layers),
        "keys": len(state),
    }
