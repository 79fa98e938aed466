"""Weight files, one way for every network: find, read, filter, load strictly, say what was ignored.

    path = find_weights(value, weight_set)              # a file, or the Hugging Face file of `weight_set`
    state = READERS["torch"](path)                      # {key: tensor} (a reader per file format)
    report = load_weights(module, path, reader="torch", key_filter=drop_prefix("head."),
                          expected="a DDColor checkpoint")

A reader turns a file into a flat state dict: "torch" (`torch.load(weights_only=True)`, unwrapping
the usual containers: `{"params": ...}`, `{"state_dict": ...}` as a `.pth.tar` holds it,
`{"model_state_dict": ...}`, `{"model": ...}`) is built in; another format (a Keras `.h5` read
with h5py) registers its own with `register_reader("name")`. A key filter maps the file's keys
onto the module's (strip a prefix, drop a classifier head); the keys it drops are reported and
logged, never silently lost. The load itself is strict: a missing, unexpected or wrongly shaped key
raises `InputError` naming the file and the keys. Nothing is ever downloaded except by
`find_weights` for a Hugging Face repo id, and only with `huggingface_hub` installed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from aiaic.errors import ConfigError, InputError

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
Reader = Callable[[Path], StateDict]
KeyFilter = Callable[[StateDict], StateDict]

_WRAPPERS = ("model_state_dict", "state_dict", "params", "model")
_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Decorator: make `reader(path) -> {key: tensor}` available as `WeightSet(reader=name)`."""

    def deco(reader: Reader) -> Reader:
        if name in READERS:
            raise ValueError(f"weight reader {name!r} is already registered")
        READERS[name] = reader
        return reader

    return deco


def get_reader(reader: str | Reader) -> Reader:
    """The reader `reader` names (or `reader` itself); ConfigError for an unknown name."""
    if callable(reader):
        return reader
    if reader not in READERS:
        raise ConfigError(f"unknown weight reader {reader!r}; registered: {sorted(READERS)}")
    return READERS[reader]


@register_reader("torch")
def read_state_dict(path: str | Path) -> StateDict:
    """Load a torch checkpoint safely (weights only) and unwrap the usual containers -> {key: tensor}."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "weights file not found")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise InputError(
            p, f"cannot be read as a weights-only torch checkpoint: {type(e).__name__}: {e}"
        ) from e
    for _ in range(2):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPERS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(p, "holds no state dict (expected a mapping of parameter names to tensors)")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise InputError(p, "holds no tensors")
    return state


@dataclass(frozen=True)
class WeightFormat:
    """How a weight file becomes the module's state dict.

    reader: a name in `READERS` ("torch": weights-only torch.load, unwrapping
        `params`/`state_dict`/`model_state_dict`/`model`) or a callable `path -> {key: tensor}` (a
        Keras `.h5` reader built on h5py plugs in here).
    key_filter: maps the file's keys onto the module's (drop a head, rename); what it drops is
        reported and logged as `ignored_what` ("classifier keys").
    """

    reader: str | Reader = "torch"
    key_filter: KeyFilter | None = None
    ignored_what: str = "keys"


@dataclass(frozen=True)
class WeightSet:
    """One released set of weights (torchvision's `Weights`).

    name: how a recipe names it (`backbone_weights = "ddcolor_paper_tiny"`).
    file: the file name as released (also the file fetched from `hf_repo`).
    hf_repo: the Hugging Face repo holding `file` ("piddnad/ddcolor_paper_tiny"), if any.
    url: where else it is published (documentation only: nothing downloads from it).
    sha256: the file's hash where known (checked after a download and when loading by name).
    format: how to read it (None = the spec's `weight_format`).
    description: one line for `--help` and logs.
    """

    name: str
    file: str
    hf_repo: str | None = None
    url: str | None = None
    sha256: str | None = None
    format: WeightFormat | None = None
    description: str = ""


# --- key filters ------------------------------------------------------------------------------


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """`state` with `prefix` removed from every key, when every key has it (else an unchanged copy)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def drop_prefix(*prefixes: str) -> KeyFilter:
    """A key filter dropping every key that starts with one of `prefixes` (a head the model lacks)."""
    return lambda state: {k: v for k, v in state.items() if not k.startswith(prefixes)}


def keep_prefix(prefix: str) -> KeyFilter:
    """A key filter keeping only the keys that start with `prefix`."""
    return lambda state: {k: v for k, v in state.items() if k.startswith(prefix)}


def chain(*filters: KeyFilter) -> KeyFilter:
    """The key filters applied in order."""

    def apply(state: StateDict) -> StateDict:
        for f in filters:
            state = f(state)
        return state

    return apply


# --- strict loading ---------------------------------------------------------------------------


def check_state(
    module: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, expected: str
) -> None:
    """InputError naming `path` and listing the missing, unexpected and wrongly shaped keys of `state`
    against `module` ("not <expected>: 2 missing (e.g. [...]); ..."); nothing when they match."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[:10]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:10]})")
        if wrong:
            k = wrong[0]
            detail.append(
                f"{len(wrong)} with wrong shapes (e.g. {k}: file {list(state[k].shape)}, "
                f"model {list(own[k].shape)})"
            )
        raise InputError(path, f"not {expected}: " + "; ".join(detail))


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str) -> None:
    """Load `state` into `module` strictly; InputError naming `path` and the keys ("not a <what>
    checkpoint: ...") when they do not match."""
    check_state(module, state, path, f"a {what} checkpoint")
    module.load_state_dict(dict(state), strict=True)


@dataclass(frozen=True)
class LoadReport:
    """What `load_weights` did: the file, how many tensors it loaded, the file's keys it ignored."""

    file: str
    keys: int
    ignored: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "keys": self.keys, "ignored": list(self.ignored)}


def load_weights(
    module: nn.Module,
    path: str | Path,
    *,
    expected: str,
    reader: str | Reader = "torch",
    key_filter: KeyFilter | None = None,
    ignored_what: str = "keys",
    logger: logging.Logger | None = None,
) -> LoadReport:
    """Read `path` with `reader`, strip a `module.` (DataParallel) prefix, apply `key_filter`, and load
    the result into `module` strictly.

    The keys the filter dropped are returned and logged ("<file>: ignored N <ignored_what> ...", on
    `logger`); InputError naming the file and the keys for anything else that does not fit
    (`expected` completes "not ...", e.g. "a DDColor checkpoint").
    """
    p = Path(path)
    state = strip_prefix(get_reader(reader)(p), "module.")
    kept = key_filter(state) if key_filter is not None else state
    ignored = sorted(set(state) - set(kept))
    if ignored:
        (logger or log).info(
            "%s: ignored %d %s the model does not use: %s", p, len(ignored), ignored_what, ", ".join(ignored)
        )
    check_state(module, kept, p, expected)
    module.load_state_dict(dict(kept), strict=True)
    return LoadReport(str(p), len(kept), ignored)


# --- finding a file ---------------------------------------------------------------------------


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: Path, sha256: str | None) -> None:
    """InputError when `sha256` is given and the file's differs (a truncated or different download)."""
    if sha256 is None:
        return
    got = sha256_of(path)
    if got != sha256.lower():
        raise InputError(path, f"sha256 {got} is not the released file's {sha256}")


def is_repo_id(text: str) -> bool:
    """Whether `text` reads as a Hugging Face repo id ("owner/name")."""
    return bool(_HF_REPO_ID.match(text))


def hf_download(repo: str, filename: str) -> Path:
    """`hf_hub_download(repo, filename)` into the usual cache; ConfigError without `huggingface_hub`
    or when the hub refuses."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise ConfigError(
            f"{repo}: no such file; as a Hugging Face repo id it needs the package "
            "huggingface_hub (pip install huggingface_hub), or download "
            f"{filename} yourself and pass its path"
        ) from e
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as e:  # the hub raises many types (network, missing repo, auth)
        raise ConfigError(
            f"{repo}: cannot fetch {filename} from Hugging Face: {type(e).__name__}: {e}"
        ) from e


DEFAULT_HF_FILE = "pytorch_model.bin"  # what a bare Hugging Face repo id fetches


def find_weights(value: str | Path, weight_sets: Sequence[WeightSet] = ()) -> tuple[Path, WeightSet | None]:
    """The local file of a weights setting, and the weight set it is (None when not one of `weight_sets`).

    In order: an existing path as is; the name (or Hugging Face repo) of one of `weight_sets`,
    fetched from its repo with `huggingface_hub` into the usual cache and checked against its sha256;
    any other Hugging Face repo id ("owner/name"), its `pytorch_model.bin`. ConfigError when a
    download is impossible, InputError for a missing file.
    """
    p = Path(value)
    if p.exists():
        return p, None
    text = str(value)
    ws = next((w for w in weight_sets if text in (w.name, w.hf_repo)), None)
    if ws is not None:
        if ws.hf_repo is None:
            where = f" ({ws.url})" if ws.url else ""
            raise ConfigError(
                f"{text}: {ws.file} has no Hugging Face repo; download it{where} and pass its path"
            )
        path = hf_download(ws.hf_repo, ws.file)
        check_sha256(path, ws.sha256)
        return path, ws
    if is_repo_id(text):
        return hf_download(text, DEFAULT_HF_FILE), None
    raise InputError(p, "backbone weights file not found")
