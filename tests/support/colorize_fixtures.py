"""Helpers for the eval and colorize tests: a tiny real training run, and a stand-in InferenceModel.

`train_tiny_run(root)` writes a split directory (support.split_fixtures) with train, val and ood
splits and trains the baseline and the three stages (not e2e) with the trainer's own code for one
epoch of a very small model, so `load_inference` is exercised for real.

`StandInModel` has the interface of `aiaic.runs.inference.InferenceModel` with a transparent rule, so a
test can predict the colour it must see: c = (clamp((peak mel band - 14) / 20, -0.5, 0.5), 0.2),
r = has_audio and ab_n = r * c (as DSG with a backbone that predicts ab = 0). Used only for I/O tests
that check which second's audio reached which frame.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aiaic.data.audio import MelConfig, log_mel
from support.split_fixtures import write_split_dir

TINY_MODEL = {
    "backbone_options": {"base_channels": 4, "depth": 2},
    "semantic_channels": [4, 4, 8, 8], "semantic_dim": 8, "cond_dim": 8, "guidance_hidden": 8,
    "a2v_hidden": 8, "relevance_dim": 4, "relevance_hidden": 8,
}  # fmt: skip


def shared_tiny_run(tmp_path_factory) -> Path:
    """The tiny run, trained once per pytest session (kept under the session's base temp dir)."""
    root = tmp_path_factory.getbasetemp() / "aiaic_tiny_run"
    if not (root / "run" / "stage3" / "config.json").is_file():
        torch.manual_seed(0)
        train_tiny_run(root)
    return root / "run"


def train_tiny_run(root: Path) -> tuple[Path, Path]:
    """(run_dir, split_dir): baseline, stage1, stage2, rnet, stage3 trained; no e2e stage."""
    from aiaic.train.config import build_train_plan
    from aiaic.train.runner import run_training

    split = write_split_dir(
        root / "split", classes=3, videos_per_class=3, seconds=2, size=40, shards_per_split=1, ood_classes=1
    )
    recipe = {
        "model": TINY_MODEL,
        "train": {"epochs": 1, "batch_size": 4, "image_size": 32, "device": "cpu", "log_every": 1},
    }
    plan = build_train_plan(recipe, {"shards": split, "out": root / "run", "stage": "all"})
    run_training(plan)
    return root / "run", split


class StandInModel:
    """Contract #4's InferenceModel interface with a rule a test can compute (see the module docstring)."""

    image_size = 32
    variant = "full"
    mel_config = MelConfig()
    mel_mean = torch.zeros(64)
    mel_std = torch.ones(64)

    def normalize_mel(self, raw):
        return (torch.as_tensor(raw, dtype=torch.float32) - self.mel_mean[:, None]) / self.mel_std[:, None]

    def audio_input(self, pcm, mels=None):
        rows = [
            torch.zeros(1, 64, 97) if x is None else self.normalize_mel(log_mel(x, self.mel_config))[None]
            for x in pcm
        ]
        return {"mel": torch.stack(rows)}

    def expected_ab_n(self, mel: torch.Tensor, has_audio: torch.Tensor) -> torch.Tensor:
        """[N, 2] the constant ab_n predicted for mel [N, 1, 64, 97] (and the guidance c)."""
        r = has_audio.float()
        peak = mel[:, 0].mean(-1).argmax(-1).float()
        a = ((peak - 14.0) / 20.0).clamp(-0.5, 0.5) * r
        return torch.stack([a, 0.2 * r], dim=1)

    @torch.no_grad()
    def guidance(self, L_n, mel=None, has_audio=None):
        n = L_n.shape[0]
        if mel is None:
            return None, torch.zeros(n)
        if isinstance(mel, dict):
            mel = mel["mel"]
        has = torch.ones(n, dtype=torch.bool) if has_audio is None else has_audio.bool()
        return self.expected_ab_n(mel, has), has.float()

    @torch.no_grad()
    def predict_guided(self, L_n, c, r):
        """DSG-like: r * c + (1 - r) * 0 (the stand-in's backbone predicts ab = 0)."""
        n = L_n.shape[0]
        ab = torch.zeros(n, 2) if c is None else c * r[:, None]
        return ab[:, :, None, None].expand(n, 2, *L_n.shape[-2:]).contiguous()

    @torch.no_grad()
    def predict(self, L_n, mel=None, has_audio=None):
        c, r = self.guidance(L_n, mel, has_audio)
        return self.predict_guided(L_n, c, r), r
