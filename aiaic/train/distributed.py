"""Process group and device setup: the only module that reads the launcher's environment.

    python -m torch.distributed.run --nproc_per_node 2 -m aiaic.cli.train --shards S --out R   # 2 CPU ranks
    torchrun --nproc_per_node 8 $(which aiaic-train) --shards S --out R --device cuda           # 8 GPUs

Under torchrun (WORLD_SIZE > 1) the process group is initialised with gloo on CPU and NCCL on CUDA;
each rank uses cuda:LOCAL_RANK. A single process needs no launcher and no process group.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from aiaic.errors import ConfigError
from aiaic.runs.device import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """rank, world_size, local_rank, the device of this process, and whether a process group exists."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the only rank that writes files and logs)."""
        return self.rank == 0


def wrap_ddp(module: nn.Module, info: DistInfo, *, find_unused_parameters: bool = False) -> nn.Module:
    """`module` in DistributedDataParallel where a process group exists (on this rank's device), else
    `module` itself."""
    if not info.initialized:
        return module
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from e


def launcher_rank() -> int:
    """The RANK torchrun gave this process (0 without a launcher)."""
    return _env_int("RANK", 0)


def setup_distributed(device: str = "auto", timeout_s: float = 600.0) -> DistInfo:
    """Read RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun), pick the device, init the process group."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistInfo(0, 1, 0, dev, False)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s)
        )
    log.debug("rank %d/%d on %s (%s)", rank, world_size, dev, backend)
    return DistInfo(rank, world_size, local_rank, dev, True)


def teardown(info: DistInfo) -> None:
    """Destroy the process group (when one was created)."""
    if info.initialized and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.initialized:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; the input is unchanged)."""
    out = value.detach().clone()
    if info.initialized:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= info.world_size
    return out


def per_rank_batch(global_batch: int, world_size: int, where: str = "batch_size") -> int:
    """Samples per step on each rank for a global batch (the recipe's `batch_size`, summed over ranks).

    Raises ConfigError naming both numbers when `world_size` ranks cannot share it equally.
    """
    if global_batch % world_size:
        raise ConfigError(
            f"{where} = {global_batch} is the global batch and does not divide over "
            f"{world_size} ranks; use a multiple of {world_size} (e.g. "
            f"{max(world_size, global_batch // world_size * world_size)})"
        )
    return global_batch // world_size
