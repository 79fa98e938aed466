"""DISCO's colour classes: the 313 in-gamut ab bins, their ImageNet priors and the rebalancing weights.

The bins are the centres of the 10 x 10 ab grid cells Zhang et al. (ECCV 2016) found in gamut, in
Lab units, ordered by a then b (class q has centre `bins()[q]`); DISCO's palette and reference heads
predict logits over them. The two tables ship as package data, byte for byte the official
`utils/gamut_pts.npy` (int64 [313, 2]) and `utils/gamut_probs.npy` (float64 [313]) of
MenghanXia/DisentangledColorization (MIT), and are checked against their sha256 when read.
"""

from __future__ import annotations

import hashlib
import io
from functools import cache
from importlib import resources

import numpy as np
import torch

N_BINS = 313
AB_SCALE = 110.0  # ab_n = ab / AB_SCALE
PTS_FILE = "disco_gamut_pts.npy"
PRIORS_FILE = "disco_gamut_probs.npy"
# sha256 of the official files (../shared/reference/disco-gamut.json)
SHA256 = {
    PTS_FILE: "b5dec01315c34f43f1c8c089e84c45ae35d1838d8e77ed0e7ca930f79ffa450e",
    PRIORS_FILE: "19d00659c7d6f6ee47456fd2c19c86a073f7124875e3d5ab9d601864e062b56c",
}


def _read_table(name: str) -> np.ndarray:
    data = resources.files("aiaic.models.backbones").joinpath("data", name).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise RuntimeError(f"package data {name} is damaged: sha256 {digest}, expected {SHA256[name]}")
    return np.load(io.BytesIO(data), allow_pickle=False)


@cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    pts, priors = _read_table(PTS_FILE), _read_table(PRIORS_FILE)
    if pts.shape != (N_BINS, 2) or priors.shape != (N_BINS,):
        raise RuntimeError(f"DISCO gamut tables have shapes {pts.shape} and {priors.shape}")
    return pts, priors


def bins() -> torch.Tensor:
    """The 313 bin centres, float32 [313, 2], ab in Lab units."""
    return torch.from_numpy(_tables()[0].astype(np.float32))


def priors() -> torch.Tensor:
    """The bins' empirical probabilities on ImageNet, float32 [313] (as DISCO casts them)."""
    return torch.from_numpy(_tables()[1].astype(np.float32))


def class_weights(colorfulness: float = 0.5) -> torch.Tensor:
    """DISCO's rebalancing weights [313]: w = 1 / ((1 - lam) p + lam / Q) with lam = 1 - colorfulness
    (DISCO's `ColorLabel(lambda_=1 - colorfulness)`), Q the number of bins with p > 0, scaled so that
    sum(p w) = 1. colorfulness 0.5 is DISCO's default; 1 gives no rebalancing."""
    if not 0.0 <= colorfulness <= 1.0:
        raise ValueError(f"colorfulness must be in [0, 1], got {colorfulness}")
    lam = 1.0 - colorfulness
    p = priors()
    uniform = torch.zeros_like(p)
    uniform[p > 0] = 1.0 / (p > 0).sum().to(p.dtype)
    w = 1.0 / ((1.0 - lam) * p + lam * uniform)
    return w / torch.sum(p * w)


def nearest_bin(ab_n: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The class of each ab: ab_n [B, 2, h, w] (ab / 110) -> long [B, 1, h, w], the nearest bin of
    `table` ([313, 2], Lab units) in Euclidean ab distance. This is the arg-max of DISCO's soft
    encoding (a Gaussian over the 5 nearest bins), which always peaks at the nearest one."""
    b, _, h, w = ab_n.shape
    ab = (ab_n * AB_SCALE).permute(0, 2, 3, 1).reshape(-1, 2)
    idx = torch.cdist(ab.float(), table.to(ab.device)).argmin(dim=1)
    return idx.view(b, h, w).unsqueeze(1)
