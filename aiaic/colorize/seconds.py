"""Per-second audio guidance of a video, and its cross-fade between seconds.

Second i's guidance (c_i, r_i) comes from second i of the soundtrack and the second's key frame
through `InferenceModel.guidance`, computed once and dropped when no longer needed. A frame at t
seconds takes second floor(t)'s guidance, mixed linearly with the neighbouring second's within
smooth_seconds / 2 of a second boundary.
"""

from __future__ import annotations

import math

import torch

from aiaic.colorize.audio import Soundtrack
from aiaic.colorize.config import ColorizeConfig
from aiaic.colorize.guided import AudioInput, guidance_from_pcm, no_guidance
from aiaic.colorize.keyframes import KeyFrames


class SecondGuide:
    """Per second: the audio guidance inputs, then (c, r) from the model; computed once, dropped later."""

    def __init__(
        self,
        model,
        soundtrack: Soundtrack | None,
        fixed: AudioInput | None,
        keys: KeyFrames,
        cfg: ColorizeConfig,
        device: torch.device,
    ):
        self.model, self.soundtrack, self.fixed, self.keys, self.cfg = model, soundtrack, fixed, keys, cfg
        self.device = device
        self.cache: dict[int, tuple[torch.Tensor | None, float, str]] = {}
        self.counts = {"audio": 0, "silent": 0, "missing": 0, "disabled": 0}
        self.r_by_second: dict[int, float] = {}  # kept for the whole video (one float per second)

    def __call__(self, i: int) -> tuple[torch.Tensor | None, float, str]:
        """(c [cond_dim] or None, r, why) of second i."""
        if i not in self.cache:
            if self.fixed is not None:
                g = self.fixed
            elif self.soundtrack is None:
                g = no_guidance(self.model, "disabled" if self.cfg.no_audio else "missing")
            else:
                g = guidance_from_pcm(self.model, self.soundtrack.second(i), self.cfg.silence_db)
            self.counts[g.why] += 1
            c, r = None, 0.0
            if g.has_audio:
                key = self.keys.get(i)
                if key is not None:
                    c_b, r_b = self.model.guidance(
                        key,
                        {k: v[None].to(self.device) for k, v in g.audio.items()},
                        torch.tensor([True], device=self.device),
                    )
                    c = None if c_b is None else c_b[0]
                    r = float(r_b[0])
            self.cache[i] = (c, r, g.why)
            self.r_by_second[i] = r
        return self.cache[i]

    def forget_before(self, i: int) -> None:
        for k in [k for k in self.cache if k < i - 1]:
            del self.cache[k]


def frame_weights(t: float, smooth: float, last_second: int | None) -> list[tuple[float, int]]:
    """[(weight, second)] of a frame at t seconds: second floor(t), cross-faded linearly with its
    neighbour within smooth / 2 of a second boundary (weights sum to 1)."""
    i = max(0, int(math.floor(t)))
    half = smooth / 2.0
    frac = t - i
    if smooth > 0 and frac < half and i >= 1:
        alpha = (frac + half) / smooth
        return [(1.0 - alpha, i - 1), (alpha, i)]
    if smooth > 0 and frac > 1.0 - half and (last_second is None or i + 1 <= last_second):
        alpha = (frac - (1.0 - half)) / smooth
        return [(1.0 - alpha, i), (alpha, i + 1)]
    return [(1.0, i)]


def mix_guidance(weights: list[tuple[float, int]], guide: SecondGuide) -> tuple[torch.Tensor | None, float]:
    """Time-smoothed guidance: r = sum w_k r_k; c = the w-weighted mean of the seconds that have c."""
    r = 0.0
    cs, ws = [], []
    for w, sec in weights:
        c_k, r_k, _ = guide(sec)
        r += w * r_k
        if c_k is not None:
            cs.append(c_k)
            ws.append(w)
    if not cs or sum(ws) <= 0:
        return None, 0.0
    c = torch.stack(cs) * torch.tensor(ws, dtype=cs[0].dtype, device=cs[0].device)[:, None]
    return c.sum(dim=0) / sum(ws), r
