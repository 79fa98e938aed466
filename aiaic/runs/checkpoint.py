"""Checkpoints of a stage directory: weights (safetensors) + training state (state.pt), written atomically.

    RUN/<stage>/model.safetensors   every tensor of the model's state_dict; metadata {"step", "stage"}
    RUN/<stage>/state.pt            {"step", "epoch", "batch_in_epoch", "optimizer", "scheduler", "rng"}

Writing: both files go to temporary names and are fsynced; then a small `.commit.json` naming the
step is written atomically; then both temporary files are renamed into place and the commit note is
removed. A `kill -9` at any moment therefore leaves either the previous pair, or a commit note whose
renames `recover()` completes: never a weights file from one step with the state of another.
Reading uses `safetensors` for weights and `torch.load(weights_only=True)` for the state, so no
arbitrary object is unpickled.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from aiaic.config import write_config_json
from aiaic.errors import RunError
from aiaic.io import fsync_file

WEIGHTS = "model.safetensors"
STATE = "state.pt"
_COMMIT = ".commit.json"
_TMP = {WEIGHTS: ".model.safetensors.tmp", STATE: ".state.pt.tmp"}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict as contiguous CPU tensors (what safetensors stores)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def load_weights(path: Path, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, str]:
    """Load safetensors weights into `model` strictly; returns the file's metadata.

    Raises RunError naming the file when it is missing or its keys do not match the model.
    """
    if not path.is_file():
        raise RunError(f"{path}: weights file not found")
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        metadata = dict(f.metadata() or {})
        state = {k: f.get_tensor(k) for k in f.keys()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise RunError(
            f"{path}: weights do not match the model config (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    model.load_state_dict(state, strict=True)
    return metadata


# --- RNG ----------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), Python and NumPy global RNG states, in weights_only-loadable types."""
    np_state = cast(tuple, np.random.get_state(legacy=True))
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )


# --- training checkpoints -----------------------------------------------------------------------
def recover(stage_dir: Path) -> None:
    """Finish an interrupted commit, or remove the leftovers of an uncommitted write."""
    commit = stage_dir / _COMMIT
    if commit.is_file():
        for final, tmp in _TMP.items():
            if (stage_dir / tmp).is_file():
                os.replace(stage_dir / tmp, stage_dir / final)
        _fsync_dir(stage_dir)
        commit.unlink()
    else:
        for tmp in _TMP.values():
            (stage_dir / tmp).unlink(missing_ok=True)
    for leftover in stage_dir.glob(".*.tmp-*"):
        leftover.unlink(missing_ok=True)


def save_checkpoint(stage_dir: Path, model: nn.Module, train_state: dict[str, Any], stage: str) -> None:
    """Write weights + training state as one atomic checkpoint (see the module docstring)."""
    step = int(train_state["step"])
    tmp_w, tmp_s = stage_dir / _TMP[WEIGHTS], stage_dir / _TMP[STATE]
    save_file(model_tensors(model), str(tmp_w), metadata={"step": str(step), "stage": stage})
    fsync_file(tmp_w)
    torch.save(train_state, tmp_s)
    fsync_file(tmp_s)
    write_config_json(stage_dir / _COMMIT, {"step": step})
    os.replace(tmp_w, stage_dir / WEIGHTS)
    os.replace(tmp_s, stage_dir / STATE)
    _fsync_dir(stage_dir)
    (stage_dir / _COMMIT).unlink()


def has_checkpoint(stage_dir: Path) -> bool:
    recover_needed = (stage_dir / _COMMIT).is_file()
    return recover_needed or ((stage_dir / WEIGHTS).is_file() and (stage_dir / STATE).is_file())


def load_checkpoint(stage_dir: Path, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load the latest checkpoint into `model`; return the training state (weights_only load).

    Call `recover(stage_dir)` first (once, from one process). Raises RunError when there is no
    checkpoint, or when weights and state come from different steps.
    """
    w, s = stage_dir / WEIGHTS, stage_dir / STATE
    if not (w.is_file() and s.is_file()):
        raise RunError(f"{stage_dir}: no checkpoint to resume from ({WEIGHTS} and {STATE} needed)")
    meta = load_weights(w, model, device)
    state = torch.load(s, map_location="cpu", weights_only=True)
    if str(state.get("step")) != meta.get("step"):
        raise RunError(
            f"{stage_dir}: {WEIGHTS} is from step {meta.get('step')} but {STATE} from step "
            f"{state.get('step')}; the checkpoint is inconsistent"
        )
    return state


def read_config(stage_dir: Path) -> dict[str, Any] | None:
    """RUN/<stage>/config.json as a dict, or None when absent."""
    p = stage_dir / "config.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{p}: not valid JSON ({e})") from e


def is_complete(stage_dir: Path) -> bool:
    """True once the stage finished (config.json has "complete": true and the weights exist)."""
    cfg = read_config(stage_dir)
    return bool(cfg and cfg.get("complete")) and (stage_dir / WEIGHTS).is_file()
