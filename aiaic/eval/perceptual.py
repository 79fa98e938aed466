"""LPIPS (Zhang et al. 2018) with the `lpips` package's AlexNet variant.

`lpips.LPIPS(net="alex")` would fetch torchvision's ImageNet AlexNet (`alexnet-owt-7be5be79.pth`)
through the torch hub behind our back. We do not let it: the network is built with a random trunk
(`pnet_rand=True`, `pretrained=False`) and then

- the trunk (AlexNet `features.{0,3,6,8,10}`) is loaded from an ImageNet AlexNet state dict found
  either at a path the user gives (`--lpips-weights`) or in the torch hub cache
  (`torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth`, i.e. `$TORCH_HOME/hub/checkpoints`),
  read with `torch.load(weights_only=True)`;
- the five linear layers (`lin0..lin4`, LPIPS v0.1) are loaded from `lpips/weights/v0.1/alex.pth`,
  which ships inside the installed `lpips` package.

Where the file is in neither place and `load_lpips(download=True)` (what `aiaic-eval` does unless
`--offline` or `AIAIC_OFFLINE=1`), it is fetched into the hub cache exactly as torchvision does
(`torch.hub.load_state_dict_from_url(..., check_hash=True)`: the download is checked against the
sha256 prefix in its file name, written under a temporary name and renamed). Where no trunk weights
exist (offline, or the download failed), LPIPS is *unavailable* and `LpipsStatus.reason` says why; it
is never computed with a random trunk. Whether the file's sha256 starts with torchvision's published prefix
(`7be5be79`) is recorded, so a report can tell official weights from any other AlexNet-shaped file.

Inputs: uint8 RGB [H, W, 3] mapped to [-1, 1] (x / 127.5 - 1), channel-first [B, 3, H, W].
"""

from __future__ import annotations

import hashlib
import os
import socket
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from aiaic.errors import InputError

ALEXNET_CACHE_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = "https://download.pytorch.org/models/" + ALEXNET_CACHE_FILE  # torchvision IMAGENET1K_V1
DOWNLOAD_STALL_SECONDS = 60.0  # a connection or read that stalls this long fails the download
ALEXNET_SHA256_PREFIX = "7be5be79"
# torchvision AlexNet `features.<i>` -> lpips trunk `net.slice<k>.<i>`
_TRUNK_KEYS = {0: "slice1", 3: "slice2", 6: "slice3", 8: "slice4", 10: "slice5"}
_TRUNK_SHAPES = {
    0: (64, 3, 11, 11),
    3: (192, 64, 5, 5),
    6: (384, 192, 3, 3),
    8: (256, 384, 3, 3),
    10: (256, 256, 3, 3),
}


@dataclass(frozen=True)
class LpipsStatus:
    """Whether LPIPS can be computed, and from which weights.

    available: True only when ImageNet-shaped AlexNet trunk weights were loaded.
    reason: a human-readable explanation (where the weights came from, or why they are missing).
    weights: path of the trunk file used (None when unavailable).
    source: "user" (--lpips-weights), "hub-cache", "download" (fetched into the hub cache now), or None.
    sha256: hex digest of the trunk file (None when unavailable).
    official_checksum: True when sha256 starts with torchvision's IMAGENET1K_V1 prefix.
    """

    available: bool
    reason: str
    weights: str | None = None
    source: str | None = None
    sha256: str | None = None
    official_checksum: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def hub_cache_path(url: str = ALEXNET_URL) -> Path:
    """Where torchvision keeps the weights of `url`: `torch.hub.get_dir()/checkpoints/<file name>`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def fetch_trunk_weights(url: str = ALEXNET_URL) -> tuple[Path | None, str]:
    """Download `url` into the hub cache as torchvision does (sha256 prefix of the file name checked).

    Returns (path, "") or (None, the reason it failed); nothing is left behind on failure.
    """
    target = hub_cache_path(url)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_STALL_SECONDS)  # torch.hub's urlopen has no timeout of its own
    try:
        torch.hub.load_state_dict_from_url(
            url,
            model_dir=str(target.parent),
            map_location="cpu",
            progress=False,
            check_hash=True,
            weights_only=True,
        )
    except (OSError, RuntimeError, ValueError) as e:  # no network, HTTP error, hash mismatch, bad file
        return None, f"downloading {url} failed ({type(e).__name__}: {e})"
    finally:
        socket.setdefaulttimeout(previous)
    return target, ""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _lpips_linear_path() -> Path:
    import lpips

    return Path(os.path.dirname(lpips.__file__)) / "weights" / "v0.1" / "alex.pth"


def _load_trunk_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a torchvision AlexNet state dict (weights only) and map it to lpips' trunk names."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a bad file; we name the file and reason
        raise InputError(path, f"cannot read as a torch state dict ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict):
        raise InputError(path, f"expected an AlexNet state dict, found {type(state).__name__}")
    mapped: dict[str, torch.Tensor] = {}
    for idx, slice_name in _TRUNK_KEYS.items():
        for part, shape in (("weight", _TRUNK_SHAPES[idx]), ("bias", _TRUNK_SHAPES[idx][:1])):
            key = f"features.{idx}.{part}"
            if key not in state:
                raise InputError(path, f"not a torchvision AlexNet state dict: '{key}' missing")
            t = state[key]
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise InputError(path, f"'{key}' has shape {got}, AlexNet needs {shape}")
            mapped[f"{slice_name}.{idx}.{part}"] = t.float()
    return mapped


class LpipsMetric:
    """LPIPS distance (AlexNet, v0.1, spatially averaged), lower is more similar.

    Build with `load_lpips`; call `distance(pred, target)` on uint8 batches [B, H, W, 3].
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, status: LpipsStatus):
        self.model = model.to(device).eval()
        self.device = device
        self.status = status

    @torch.no_grad()
    def distance(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, 3] (or [H, W, 3]) pairs -> float64 [B] LPIPS distances."""
        p = to_lpips_tensor(pred).to(self.device)
        t = to_lpips_tensor(target).to(self.device)
        d = self.model(p, t)  # [B, 1, 1, 1]
        return d.reshape(-1).double().cpu().numpy()


def to_lpips_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 RGB [B, H, W, 3] or [H, W, 3] -> float32 [B, 3, H, W] in [-1, 1] (x / 127.5 - 1)."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.shape[-1] != 3 or arr.ndim not in (3, 4):
        raise ValueError(f"LPIPS expects uint8 [B, H, W, 3], got {arr.dtype} {arr.shape}")
    if arr.ndim == 3:
        arr = arr[None]
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return t / 127.5 - 1.0


def find_trunk_weights(
    user_path: Path | None, download: bool = False, url: str = ALEXNET_URL
) -> tuple[Path | None, str, str | None]:
    """(path or None, reason, source): the user's file, else the hub cache, else (with `download`) a
    fresh download into the hub cache. A user path that does not exist is an InputError."""
    if user_path is not None:
        p = Path(user_path)
        if not p.is_file():
            raise InputError(p, "LPIPS weights file not found")
        return p, f"AlexNet trunk from user file {p}", "user"
    cached = hub_cache_path(url)
    if cached.is_file():
        return cached, f"AlexNet trunk from the torch hub cache {cached}", "hub-cache"
    if download:
        path, why = fetch_trunk_weights(url)
        if path is not None:
            return path, f"AlexNet trunk downloaded from {url} into the torch hub cache {path}", "download"
        attempt = why
    else:
        attempt = "offline: no download attempted"
    reason = (
        f"ImageNet AlexNet weights not found: {cached} does not exist ({attempt}); "
        f"pass --lpips-weights PATH or place torchvision's {ALEXNET_CACHE_FILE} in the hub cache"
    )
    return None, reason, None


def load_lpips(
    weights: Path | None = None,
    device: torch.device | str = "cpu",
    *,
    download: bool = False,
    url: str = ALEXNET_URL,
) -> tuple[LpipsMetric | None, LpipsStatus]:
    """Build LPIPS-Alex. Returns (metric or None, status).

    Trunk weights: `weights`, else the hub cache, else (only with `download`) fetched from `url` into
    the hub cache. Unavailable (None + reason) when none are found or the download fails; a user-given
    file that is missing or not an AlexNet state dict raises `InputError`.
    """
    path, reason, source = find_trunk_weights(weights, download, url)
    if path is None:
        return None, LpipsStatus(available=False, reason=reason)
    trunk = _load_trunk_state(path)
    import lpips

    # pretrained=False: lpips would load its linear layers with strict=False; we load them below, checked.
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    lin_path = _lpips_linear_path()
    lin_state = torch.load(lin_path, map_location="cpu", weights_only=True)
    missing = [k for k in (f"lin{i}.model.1.weight" for i in range(5)) if k not in lin_state]
    if missing:
        raise InputError(lin_path, f"lpips linear layers incomplete, missing {missing}")
    model.load_state_dict(lin_state, strict=False)
    net_state = {f"net.{k}": v for k, v in trunk.items()}
    result = model.load_state_dict(net_state, strict=False)
    loaded = set(net_state) | set(lin_state)
    # `lins.<i>` aliases `lin<i>`; `scaling_layer` holds lpips' fixed input shift/scale buffers.
    leftover = [
        k for k in model.state_dict() if k not in loaded and not k.startswith(("scaling_layer", "lins."))
    ]
    if result.unexpected_keys or leftover:
        raise InputError(
            path,
            f"LPIPS weights did not fill the network: unexpected {result.unexpected_keys}, unset {leftover}",
        )
    digest = sha256_file(path)
    official = digest.startswith(ALEXNET_SHA256_PREFIX)
    if not official:
        reason += (
            f"; its sha256 ({digest[:8]}...) does not match torchvision IMAGENET1K_V1 "
            f"({ALEXNET_SHA256_PREFIX}), so values are not comparable with published LPIPS"
        )
    status = LpipsStatus(
        available=True,
        reason=reason,
        weights=str(path),
        source=source,
        sha256=digest,
        official_checksum=official,
    )
    return LpipsMetric(model, torch.device(device), status), status
