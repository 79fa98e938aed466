"""Write a ChromaGAN generator as Keras writes `my_model_colorization.h5`, with h5py (tests only).

Layouts: "keras-2.2.4" (the released file: bytes attributes, weight names with ":0", the layer
names of ChromaGAN.py's process, `model_2` holding the VGG trunk) and "tf.keras" (a tf.keras 2.x
save of the same graph in a fresh process: auto names from `conv2d`, `batch_normalization`,
`dense`, trunk group `model`, str JSON attributes). Both: root attributes keras_version, backend,
model_config and training_config (JSON strings), `model_weights` with layer_names in `Model.layers`
order, one group per layer with its `weight_names`, the datasets at `<layer>/<weight name>`.
Weights are the module's, converted back to Keras's layouts (kernels (kh, kw, in, out), (in, out)).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from aiaic.models.backbones.chromagan_arch import ChromaGANGenerator, ChromaGANSize

# Model.layers of the generator (depth order, Keras 2 names; reference chromagan.layers.json)
LAYER_ORDER = (
    "input_1 model_2 conv2d_6 batch_normalization_1 conv2d_7 batch_normalization_2 conv2d_8 "
    "batch_normalization_3 conv2d_9 batch_normalization_4 flatten_1 dense_1 conv2d_10 dense_2 "
    "batch_normalization_5 dense_3 conv2d_11 repeat_vector_1 batch_normalization_6 reshape_1 "
    "concatenate_2 conv2d_12 conv2d_13 up_sampling2d_1 conv2d_14 conv2d_15 up_sampling2d_2 flatten_2 "
    "conv2d_16 dense_4 conv2d_17 dense_5 up_sampling2d_3 dense_6"
).split()
_OFFSETS = {"conv2d": 6}  # first Keras 2 number of each class in the released file (others: 1)


def tf_keras_name(name: str) -> str:
    """The name a fresh tf.keras process gives the layer ChromaGAN.py's process named `name`."""
    if name == "model_2":
        return "model"
    m = re.fullmatch(r"(.+)_(\d+)", name)
    if not m or name.startswith("block"):
        return name
    base, n = m.group(1), int(m.group(2)) - _OFFSETS.get(m.group(1), 1)
    if base == "input":
        return name
    return base if n == 0 else f"{base}_{n}"


def _graph(size: ChromaGANSize) -> list[tuple[str, str, dict[str, Any], list[str]]]:
    """(name, Keras class, config, inbound layer names) of every generator layer, Keras 2 names."""
    s, q = size.image_size, size.image_size // 8
    g, m, c, d, h = size.global_width, size.mid, size.colour, size.global_dense, size.class_hidden

    def conv(f: int, k: int, st: int = 1, act: str = "relu") -> dict[str, Any]:
        return {"filters": f, "kernel_size": [k, k], "strides": [st, st], "padding": "same",
                "data_format": "channels_last", "dilation_rate": [1, 1], "activation": act,
                "use_bias": True}  # fmt: skip

    def dense(u: int, act: str = "linear") -> dict[str, Any]:
        return {"units": u, "activation": act, "use_bias": True}

    bn = {"axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True}
    return [
        ("input_1", "InputLayer", {"batch_input_shape": [None, s, s, 3], "dtype": "float32"}, []),
        ("model_2", "Model", {}, ["input_1"]),
        ("conv2d_6", "Conv2D", conv(g, 3, 2), ["model_2"]),
        ("batch_normalization_1", "BatchNormalization", bn, ["conv2d_6"]),
        ("conv2d_7", "Conv2D", conv(g, 3), ["batch_normalization_1"]),
        ("batch_normalization_2", "BatchNormalization", bn, ["conv2d_7"]),
        ("conv2d_8", "Conv2D", conv(g, 3, 2), ["batch_normalization_2"]),
        ("batch_normalization_3", "BatchNormalization", bn, ["conv2d_8"]),
        ("conv2d_9", "Conv2D", conv(g, 3), ["batch_normalization_3"]),
        ("batch_normalization_4", "BatchNormalization", bn, ["conv2d_9"]),
        ("flatten_1", "Flatten", {"data_format": "channels_last"}, ["batch_normalization_4"]),
        ("dense_1", "Dense", dense(d[0]), ["flatten_1"]),
        ("dense_2", "Dense", dense(d[1]), ["dense_1"]),
        ("dense_3", "Dense", dense(d[2]), ["dense_2"]),
        ("repeat_vector_1", "RepeatVector", {"n": q * q}, ["dense_3"]),
        ("reshape_1", "Reshape", {"target_shape": [q, q, d[2]]}, ["repeat_vector_1"]),
        ("flatten_2", "Flatten", {"data_format": "channels_last"}, ["batch_normalization_4"]),
        ("dense_4", "Dense", dense(h[0]), ["flatten_2"]),
        ("dense_5", "Dense", dense(h[1]), ["dense_4"]),
        ("dense_6", "Dense", dense(size.num_classes, "softmax"), ["dense_5"]),
        ("conv2d_10", "Conv2D", conv(m[0], 3), ["model_2"]),
        ("batch_normalization_5", "BatchNormalization", bn, ["conv2d_10"]),
        ("conv2d_11", "Conv2D", conv(m[1], 3), ["batch_normalization_5"]),
        ("batch_normalization_6", "BatchNormalization", bn, ["conv2d_11"]),
        ("concatenate_2", "Concatenate", {"axis": -1}, ["batch_normalization_6", "reshape_1"]),
        ("conv2d_12", "Conv2D", conv(c[0], 1), ["concatenate_2"]),
        ("conv2d_13", "Conv2D", conv(c[1], 3), ["conv2d_12"]),
        ("up_sampling2d_1", "UpSampling2D", {"size": [2, 2]}, ["conv2d_13"]),
        ("conv2d_14", "Conv2D", conv(c[2], 3), ["up_sampling2d_1"]),
        ("conv2d_15", "Conv2D", conv(c[3], 3), ["conv2d_14"]),
        ("up_sampling2d_2", "UpSampling2D", {"size": [2, 2]}, ["conv2d_15"]),
        ("conv2d_16", "Conv2D", conv(c[4], 3), ["up_sampling2d_2"]),
        ("conv2d_17", "Conv2D", conv(2, 3, 1, "sigmoid"), ["conv2d_16"]),
        ("up_sampling2d_3", "UpSampling2D", {"size": [2, 2]}, ["conv2d_17"]),
    ]


def _trunk_config(size: ChromaGANSize) -> dict[str, Any]:
    s, layers, prev = size.image_size, [], "input_2"
    inp = {"batch_input_shape": [None, s, s, 3], "dtype": "float32", "name": "input_2"}
    layers.append({"name": "input_2", "class_name": "InputLayer", "inbound_nodes": [], "config": inp})
    for b, (n, w) in enumerate(zip((2, 2, 3, 3), size.vgg, strict=True), start=1):
        if b > 1:
            pool = {"name": f"block{b - 1}_pool", "pool_size": [2, 2], "strides": [2, 2], "padding": "valid"}
            layers.append({"name": pool["name"], "class_name": "MaxPooling2D", "config": pool,
                           "inbound_nodes": [[[prev, 0, 0, {}]]]})  # fmt: skip
            prev = f"block{b - 1}_pool"
        for i in range(1, n + 1):
            name = f"block{b}_conv{i}"
            cfg = {"name": name, "filters": w, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
                   "activation": "relu", "use_bias": True}  # fmt: skip
            layers.append({"name": name, "class_name": "Conv2D", "config": cfg,
                           "inbound_nodes": [[[prev, 0, 0, {}]]]})  # fmt: skip
            prev = name
    return {"name": "model_2", "layers": layers, "input_layers": [["input_2", 0, 0]],
            "output_layers": [[prev, 0, 0]]}  # fmt: skip


def model_config(size: ChromaGANSize, rename: Any = str) -> dict[str, Any]:
    """The functional `model_config` JSON object of the generator (`rename` maps Keras 2 names)."""
    layers = []
    for name, cls, cfg, inbound in _graph(size):
        config = {"name": rename(name), "trainable": True, **cfg}
        if cls == "Model":
            config = {**_trunk_config(size), "name": rename(name)}
        node = [[rename(i), 0, 0, {}] for i in inbound]  # Keras renumbers the nodes it keeps from 0
        layers.append({"name": rename(name), "class_name": cls, "config": config,
                       "inbound_nodes": [node] if node else []})  # fmt: skip
    return {"class_name": "Model", "config": {"name": rename("model_3"), "layers": layers,
            "input_layers": [[rename("input_1"), 0, 0]],
            "output_layers": [[rename("up_sampling2d_3"), 0, 0], [rename("dense_6"), 0, 0]]}}  # fmt: skip


TRAINING_CONFIG = {
    "optimizer_config": {
        "class_name": "Adam",
        "config": {"lr": 1.9999999494757503e-05, "beta_1": 0.5, "beta_2": 0.999, "decay": 0.0,
                   "epsilon": 1e-07, "amsgrad": False},
    },
    "loss": ["mse", "kld"], "metrics": [], "sample_weight_mode": None, "loss_weights": None,
}  # fmt: skip


def _keras_weights(net: ChromaGANGenerator, module: str) -> list[tuple[str, np.ndarray]]:
    """(short Keras weight name, array in Keras's layout) of one of our modules."""
    sd = {k.rsplit(".", 1)[1]: v.detach().cpu().numpy() for k, v in net.state_dict().items()
          if k.rsplit(".", 1)[0] == module}  # fmt: skip
    if "running_mean" in sd:
        return [("gamma", sd["weight"]), ("beta", sd["bias"]),
                ("moving_mean", sd["running_mean"]), ("moving_variance", sd["running_var"])]  # fmt: skip
    w = sd["weight"]
    return [("kernel", w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T), ("bias", sd["bias"])]


def write_chromagan_h5(net: ChromaGANGenerator, path: Path, layout: str = "keras-2.2.4") -> Path:
    """Write `net`'s weights as a Keras full-model h5 in `layout` ("keras-2.2.4" or "tf.keras")."""
    if layout not in ("keras-2.2.4", "tf.keras"):
        raise ValueError(f"unknown layout {layout!r}")
    old = layout == "keras-2.2.4"
    rename = str if old else tf_keras_name
    suffix = ":0"  # tf.keras 2.x keeps TensorFlow's variable names too

    def text(s: str) -> Any:
        return s.encode("utf8") if old else s

    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = text("2.2.4" if old else "2.15.0")
        f.attrs["backend"] = text("tensorflow")
        f.attrs["model_config"] = text(json.dumps(model_config(net.size, rename)))
        f.attrs["training_config"] = text(json.dumps(TRAINING_CONFIG))
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([rename(n).encode("utf8") for n in LAYER_ORDER])
        mw.attrs["backend"] = text("tensorflow")
        mw.attrs["keras_version"] = f.attrs["keras_version"]
        for name in LAYER_ORDER:
            g = mw.create_group(rename(name))
            if name == "model_2":
                items = [(f"{blk}/{short}", a) for blocks in net.trunk.names for blk in blocks
                         for short, a in _keras_weights(net, f"trunk.{blk}")]  # fmt: skip
            elif hasattr(net, name):
                items = [(f"{rename(name)}/{short}", a) for short, a in _keras_weights(net, name)]
            else:
                items = []
            g.attrs["weight_names"] = np.array([(n + suffix).encode("utf8") for n, _ in items])
            for n, a in items:
                g.create_dataset(n + suffix, data=np.ascontiguousarray(a, dtype=np.float32))
    return path
