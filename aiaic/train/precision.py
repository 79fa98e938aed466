"""Mixed precision for the training loop: autocast, and gradient scaling where fp16 needs it.

    fp32   no autocast (the default)
    bf16   torch.autocast(bfloat16): on the CPU and on GPUs that support it; no scaling needed
    fp16   torch.autocast(float16) + a GradScaler: CUDA only

One `MixedPrecision` serves every optimizer of a step (the colorizer's and the discriminator's): each
backward goes through `backward`, each optimizer through `step`, and `update` runs once per step.
The scaler's state is part of the stage's checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from aiaic.errors import ConfigError

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    """Autocast + optional GradScaler for `precision` ("fp32", "bf16", "fp16") on `device`."""

    def __init__(self, precision: str, device: torch.device):
        if precision not in _DTYPES:
            raise ConfigError(f"precision must be one of {list(_DTYPES)}, got {precision!r}")
        if precision == "fp16" and device.type != "cuda":
            raise ConfigError(
                f"--precision fp16 needs a CUDA device (gradient scaling), not {device}; use bf16 on the CPU"
            )
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16; use fp16"
            )
        self.precision = precision
        self.device = device
        self.dtype = _DTYPES[precision]
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def autocast(self) -> AbstractContextManager[Any]:
        """The forward pass's context (a no-op for fp32)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        parameters: Iterable[nn.Parameter] = (),
        grad_clip: float = 0.0,
    ) -> None:
        """Unscale (fp16), clip the gradients' global norm to `grad_clip` (0 = off), step."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(list(parameters), grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per training step, after every optimizer stepped."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
