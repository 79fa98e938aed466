"""Which torch device a command runs on: training, evaluation and colorize all resolve it here."""

from __future__ import annotations

import torch

from aiaic.errors import ConfigError


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """ "auto" | "cpu" | "cuda" | "cuda:N" -> torch.device; plain "cuda" is cuda:`local_rank`."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device} was asked for, but no CUDA device is available")
        return torch.device("cuda", local_rank) if device == "cuda" else torch.device(device)
    raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
