"""Training throughput (samples/s) of every stage at 64 and 128 px, on this machine's CPU (or GPU).

Each row times full optimizer steps of a stage's objective (forward, backward, Adam step, with the
stage's components frozen or trained as in `aiaic.train.stages`) on batches of the loader's shapes,
so it measures the model side of `aiaic-train`; the loader's own rate is in bench_loader.

    python -m benchmarks.run train
"""

from __future__ import annotations

import time

import torch

from aiaic.models.colorizer import build_colorizer
from aiaic.models.config import ModelConfig
from aiaic.train.config import StageConfig, resolve_stage
from aiaic.train.objectives import StageObjective
from aiaic.train.stages import STAGES, apply_stage_modes, trainable_parameters

SIZES = (64, 128)
BATCH = 8
WARMUP, STEPS = 1, 4
CONFIGS = {
    "demo (base 16)": ModelConfig(backbone_options={"base_channels": 16}),
    "default (base 32)": ModelConfig(),
}


def _batch(size: int, g: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    b = {
        "L": torch.rand(BATCH, 1, size, size, generator=g) * 2 - 1,
        "ab": (torch.rand(BATCH, 2, size, size, generator=g) - 0.5) * 0.6,
        "rgb": torch.rand(BATCH, 3, size, size, generator=g),
        "mel": torch.randn(BATCH, 1, 64, 97, generator=g),
        "neg_mel": torch.randn(BATCH, 1, 64, 97, generator=g),
        "has_audio": torch.ones(BATCH, dtype=torch.bool),
        "audio_mask": torch.arange(BATCH) % 2 == 0,
    }
    return {k: v.to(device) for k, v in b.items()}


def time_stage(cfg: ModelConfig, stage: str, size: int, device: torch.device) -> float:
    """Samples per second of `stage` at `size` px (median step time over STEPS steps)."""
    torch.manual_seed(0)
    model = build_colorizer(cfg).to(device)
    spec = STAGES[stage]
    apply_stage_modes(model, spec, True)
    cfg = resolve_stage(StageConfig(), model.backbone, spec.colours)
    objective = StageObjective(model, spec, cfg)
    opt = torch.optim.Adam(trainable_parameters(model, spec), lr=1e-4)
    batch = _batch(size, torch.Generator().manual_seed(0), device)
    times = []
    for i in range(WARMUP + STEPS):
        t0 = time.perf_counter()
        loss = objective(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= WARMUP:
            times.append(time.perf_counter() - t0)
    times.sort()
    return BATCH / times[len(times) // 2]


def run() -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for name, cfg in CONFIGS.items():
        for size in SIZES:
            for stage in ("baseline", "stage1", "stage2", "rnet", "stage3", "e2e"):
                rate = time_stage(cfg, stage, size, device)
                rows.append(
                    {
                        "benchmark": "train",
                        "metric": f"{stage} {size}px samples/s",
                        "value": rate,
                        "unit": "samples/s",
                        "note": f"{name}, batch {BATCH}, {device.type}, "
                        f"{torch.get_num_threads()} threads; "
                        "model side only (see bench_loader for the loader)",
                    }
                )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
