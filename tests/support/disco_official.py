"""The official DISCO model (MenghanXia/DisentangledColorization, MIT), built from a local checkout for
numerical comparison only; nothing of it is part of aiaic.

    AIAIC_DISCO_OFFICIAL=/path/to/DisentangledColorization pytest tests/test_disco.py

The checkout is found through `AIAIC_DISCO_OFFICIAL` (a directory holding `models/model.py`); where it
is absent the callers skip with that reason. The official code needs CUDA in three places; as in
../shared/reference (section 4) two runtime shims make it run on a CPU without changing a file:
`basic.ColorLabel` is built on the CPU and `Tensor.cuda()` returns the tensor itself (inside
`official_shims()` only). The working directory is the checkout's `main/colorizer` while the model is
built (its colour table is opened by a relative path).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

ENV = "AIAIC_DISCO_OFFICIAL"


def official_checkout() -> tuple[Path | None, str]:
    """(the checkout, "") or (None, why it is not available)."""
    value = os.environ.get(ENV)
    if not value:
        return None, f"{ENV} is not set (a checkout of MenghanXia/DisentangledColorization)"
    repo = Path(value)
    if not (repo / "models" / "model.py").is_file():
        return None, f"{ENV}={repo} does not hold models/model.py"
    return repo, ""


@contextmanager
def official_shims(repo: Path) -> Iterator[None]:
    """Import paths, CPU colour table and a no-op `Tensor.cuda` for the official code."""
    paths = [str(repo), str(repo / "models"), str(repo / "utils")]
    for p in paths:
        if p not in sys.path:
            sys.path.append(p)
    import basic  # type: ignore[import-not-found]  # the official models/basic.py

    original_cuda = torch.Tensor.cuda
    original_label = basic.ColorLabel.__init__
    cwd = os.getcwd()

    def cpu_label(self, lambda_=0.5, device="cuda"):  # noqa: ANN001
        original_label(self, lambda_, device="cpu")

    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    basic.ColorLabel.__init__ = cpu_label
    os.chdir(repo / "main" / "colorizer")
    try:
        yield
    finally:
        os.chdir(cwd)
        torch.Tensor.cuda = original_cuda  # type: ignore[method-assign]
        basic.ColorLabel.__init__ = original_label


def build_official(repo: Path) -> nn.Module:
    """The official `AnchorColorProb` as the inference script builds it (DISCO-beta), random weights
    with settled spectral-norm vectors, in eval mode."""
    from aiaic.models.backbones.disco_arch import settle_spectral_norm

    with official_shims(repo):
        import model as official  # type: ignore[import-not-found]  # the official models/model.py

        net = official.AnchorColorProb(
            inChannel=1, outChannel=313, sp_size=16, d_model=64, use_dense_pos=True, spix_pos=False,
            learning_pos=False, n_clusters=8, random_hint=False, hint2regress=False, enhanced=True,
        )  # fmt: skip
    settle_spectral_norm(net)
    return net.eval()


def official_forward(repo: Path, net: nn.Module, L_n: torch.Tensor, seed: int = 130):
    """The inference script's call after its seeding: (pal_logit, ref_logit, ab, affinity, spix, hint)."""
    import numpy as np

    np.random.seed(seed)
    torch.manual_seed(seed)
    with official_shims(repo), torch.no_grad():
        return net(L_n, torch.zeros_like(L_n).expand(-1, 2, -1, -1), True, 0)
