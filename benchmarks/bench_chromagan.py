"""Benchmark ChromaGAN at 224 px: our PyTorch port against the official Keras model on the same weights.

    python -m benchmarks.run chromagan
    AIAIC_BENCH_CHROMAGAN_BATCH=4 AIAIC_BENCH_CHROMAGAN_REPEATS=2 python -m benchmarks.run chromagan
    KERAS_BACKEND=torch /work/venv-keras/bin/python -m benchmarks.run chromagan   # with the Keras side

Weights: a randomly initialised `chromagan` written as an h5 in the released layout
(`tests/support/chromagan_h5.py`) and read back through `aiaic.models.keras_h5` (the path
`--backbone-weights FILE.h5` takes; speed does not depend on the values).

Rows: "aiaic one frame" is the port's forward at 224 x 224 on one L/255-tiled frame (inference
mode, fp32); "aiaic batched" is the same on a batch of AIAIC_BENCH_CHROMAGAN_BATCH frames (time per
frame). "keras one frame" is `model.predict` of the same graph built in Keras (the layer list of
`ChromaGAN.py`'s `colorization_model`, re-stated here, never in the library) with the same h5
loaded, one frame per call as ChromaGANPrint.py does; it runs only where Keras is importable
(TensorFlow is not a dependency of aiaic; Keras 3 with the torch backend serves) and is otherwise
reported as skipped with the reason. The Keras row also records max |ab_keras - ab_aiaic|.
Runs alternate between aiaic and Keras and the best of each is kept (the machine is shared).
ratio = Keras time / aiaic time.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aiaic.models.backbones.chromagan_arch import SIZES, ChromaGANGenerator, ChromaGANSize

BATCH = int(os.environ.get("AIAIC_BENCH_CHROMAGAN_BATCH", "8"))
REPEATS = int(os.environ.get("AIAIC_BENCH_CHROMAGAN_REPEATS", "3"))
MODEL = os.environ.get("AIAIC_BENCH_CHROMAGAN_MODEL", "chromagan")


def build_keras_chromagan(size: ChromaGANSize) -> Any:
    """ChromaGAN's generator as a Keras functional model (Keras 2 API names where Keras lets us),
    with the VGG trunk as a nested model, as `colorization_model` builds it. Needs `keras`."""
    import keras
    from keras import layers

    s, v = size.image_size, size.vgg
    trunk_in = keras.Input((s, s, 3))
    h = trunk_in
    for b, (n, w) in enumerate(zip((2, 2, 3, 3), v, strict=True), start=1):
        if b > 1:
            h = layers.MaxPooling2D(2, name=f"block{b - 1}_pool")(h)
        for i in range(1, n + 1):
            h = layers.Conv2D(w, 3, padding="same", activation="relu", name=f"block{b}_conv{i}")(h)
    trunk = keras.Model(trunk_in, h, name="model_2")

    def conv(x: Any, f: int, k: int, name: str, stride: int = 1, act: str = "relu") -> Any:
        return layers.Conv2D(f, k, strides=stride, padding="same", activation=act, name=name)(x)

    def bn(x: Any, i: int) -> Any:
        return layers.BatchNormalization(name=f"batch_normalization_{i}")(x)

    g, m, c, d, ch = size.global_width, size.mid, size.colour, size.global_dense, size.class_hidden
    inp = keras.Input((s, s, 3), name="input_1")
    t = trunk(inp)
    gl = bn(conv(t, g, 3, "conv2d_6", 2), 1)
    gl = bn(conv(gl, g, 3, "conv2d_7"), 2)
    gl = bn(conv(gl, g, 3, "conv2d_8", 2), 3)
    gl = bn(conv(gl, g, 3, "conv2d_9"), 4)
    q = s // 8
    vec = layers.Flatten(name="flatten_1")(gl)
    for i, w in enumerate(d, start=1):
        vec = layers.Dense(w, name=f"dense_{i}")(vec)
    vec = layers.RepeatVector(q * q, name="repeat_vector_1")(vec)
    vec = layers.Reshape((q, q, d[2]), name="reshape_1")(vec)
    cls = layers.Flatten(name="flatten_2")(gl)
    cls = layers.Dense(ch[0], name="dense_4")(cls)
    cls = layers.Dense(ch[1], name="dense_5")(cls)
    cls = layers.Dense(size.num_classes, activation="softmax", name="dense_6")(cls)
    mid = bn(conv(t, m[0], 3, "conv2d_10"), 5)
    mid = bn(conv(mid, m[1], 3, "conv2d_11"), 6)
    out = layers.concatenate([mid, vec], name="concatenate_2")
    out = conv(out, c[0], 1, "conv2d_12")
    out = conv(out, c[1], 3, "conv2d_13")
    out = layers.UpSampling2D(2, name="up_sampling2d_1")(out)
    out = conv(conv(out, c[2], 3, "conv2d_14"), c[3], 3, "conv2d_15")
    out = layers.UpSampling2D(2, name="up_sampling2d_2")(out)
    out = conv(conv(out, c[4], 3, "conv2d_16"), 2, 3, "conv2d_17", act="sigmoid")
    out = layers.UpSampling2D(2, name="up_sampling2d_3")(out)
    return keras.Model(inp, [out, cls], name="model_3")


def _seconds(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _keras_model(path: Path) -> tuple[Any, str]:
    """(the Keras model with the h5 loaded, its description) or (None, why it is skipped)."""
    try:
        import keras
    except ImportError as e:
        return None, f"skipped: Keras is not importable here ({e}); run under a venv with keras"
    model = build_keras_chromagan(SIZES[MODEL])
    model.load_weights(str(path))
    return model, f"Keras {keras.__version__} ({keras.backend.backend()} backend) predict, same h5"


def run() -> list[dict]:
    from aiaic.models.keras_h5 import load_chromagan_h5
    from tests.support.chromagan_h5 import write_chromagan_h5

    size = SIZES[MODEL]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "my_model_colorization.h5"
        write_chromagan_h5(ChromaGANGenerator(size), path)
        net = ChromaGANGenerator(size).eval()
        load_chromagan_h5(net, path)
        keras_model, keras_note = _keras_model(path)
        x = torch.rand(BATCH, 3, size.image_size, size.image_size)
        frame = x[:1].numpy().transpose(0, 2, 3, 1)
        one, batched, keras_one = [], [], []
        with torch.inference_mode():
            ab = net(x[:1])[0].numpy()
            net(x)  # warm-up of the batched shapes
            for _ in range(REPEATS):  # alternate, keep the best of each (the machine is shared)
                one.append(_seconds(lambda: net(x[:1])))
                batched.append(_seconds(lambda: net(x)) / BATCH)
                if keras_model is not None:
                    keras_one.append(_seconds(lambda: keras_model.predict(frame, verbose=0)))
        rows = [
            {
                "benchmark": "chromagan",
                "metric": "aiaic one frame",
                "value": min(one),
                "unit": "s",
                "note": f"{MODEL} at {size.image_size} px, fp32, {torch.get_num_threads()} threads",
            },
            {
                "benchmark": "chromagan",
                "metric": "aiaic batched",
                "value": min(batched),
                "unit": "s/frame",
                "ratio": min(one) / min(batched),
                "note": f"batch {BATCH}; ratio = one frame / batched per frame",
            },
        ]
        row: dict[str, Any] = {"benchmark": "chromagan", "metric": "keras one frame", "unit": "s"}
        if keras_model is None:
            rows.append({**row, "value": None, "note": keras_note})
        else:
            ab_k = keras_model.predict(frame, verbose=0)[0].transpose(0, 3, 1, 2)
            diff = float(np.abs(ab_k - ab).max())
            note = f"{keras_note}; max |ab diff| vs aiaic {diff:.2e}; ratio = keras / aiaic one frame"
            rows.append({**row, "value": min(keras_one), "ratio": min(keras_one) / min(one), "note": note})
    return rows
