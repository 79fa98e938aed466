"""Where a colour path's guidance (c, r) comes from: one table for training and for inference.

A source of c (`CSource`):
    "none"    no guidance: the plain backbone (what DSG with r = 0 gives, too)
    "visual"  c = MLP(E_s(Y_rgb)), from the colour image (training only: stage 1)
    "audio"   c = MLP(A2V(E_a(A)))

A source of r (`RSource`), each 0 where c comes from audio and the sample has none:
    "zero"       r = 0
    "one"        r = 1 (SG instead of DSG: the "w/o r" model)
    "relevance"  the relevance net's score, never trained by the colour loss (detached)

A training stage may also mask (r = 0 for the loader's `audio_mask` share). The variants a trained
run provides, the paper's Table 2 rows among them:

| variant            | weights      | c     | r         | audio    | paper's row                   |
|--------------------|--------------|-------|-----------|----------|-------------------------------|
| baseline           | baseline     | none  | zero      | -        | visual-only backbone          |
| full               | stage3       | audio | relevance | given    | full                          |
| full_missing_audio | stage3       | none  | zero      | -        | full (missing audio): r = 0   |
| no_r               | no_r_stage3  | audio | one       | given    | w/o r                         |
| no_r_missing_audio | no_r_stage3  | audio | one       | silenced | w/o r (missing audio)         |
| e2e                | e2e          | audio | relevance | given    | w/o multi-step                |

"silenced": every sample hears one second of silence (zero PCM through the model's own front end) and
counts as having audio: the w/o-r model has no way to know the audio is missing, so r stays 1 and the
audio path runs on the silent second. `missing_audio` is the old name of `full_missing_audio`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import torch

from aiaic.errors import RunError

if TYPE_CHECKING:
    from aiaic.models.colorizer import AudioInfusedColorizer

CSource = Literal["none", "visual", "audio"]
RSource = Literal["zero", "one", "relevance"]
AudioInput = Literal["given", "silenced"]


@dataclass(frozen=True)
class Variant:
    """One row of the table above.

    Attributes:
        name: the variant's name (`aiaic-eval --variants`, `aiaic-colorize --variant`).
        stage: the run sub-directory whose weights it uses.
        c: the source of c; r: the source of r; audio: the sample's own second or a silent one.
        train_stage: the `aiaic-train --stage` value that produces `stage`.
        title: the row's name in the report.
    """

    name: str
    stage: str
    c: CSource
    r: RSource
    audio: AudioInput
    train_stage: str
    title: str


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("baseline", "baseline", "none", "zero", "given", "baseline", "Visual-only backbone"),
        Variant("full", "stage3", "audio", "relevance", "given", "all", "Full (r from the relevance net)"),
        Variant(
            "full_missing_audio", "stage3", "none", "zero", "given", "all", "Full (missing audio: r = 0)"
        ),
        Variant("no_r", "no_r_stage3", "audio", "one", "given", "no_r", "w/o r (SG, r = 1)"),
        Variant(
            "no_r_missing_audio",
            "no_r_stage3",
            "audio",
            "one",
            "silenced",
            "no_r",
            "w/o r (missing audio: silence, r = 1)",
        ),
        Variant("e2e", "e2e", "audio", "relevance", "given", "e2e", "w/o multi-step (end to end)"),
    )
}
ALIASES = {"missing_audio": "full_missing_audio"}


def variant(name: str) -> Variant:
    """The table's row for `name` (or its old alias); RunError for an unknown name."""
    spec = VARIANTS.get(ALIASES.get(name, name))
    if spec is None:
        raise RunError(f"unknown variant {name!r}; one of {sorted(VARIANTS)}")
    return spec


def canonical_name(name: str) -> str:
    """`name` with an old alias replaced ("missing_audio" -> "full_missing_audio")."""
    return ALIASES.get(name, name)


class Guidance(NamedTuple):
    """c [B, cond_dim] or None (the plain backbone), and r [B] in [0, 1]."""

    c: torch.Tensor | None
    r: torch.Tensor


def guidance(
    model: AudioInfusedColorizer,
    c_source: CSource,
    r_source: RSource,
    L: torch.Tensor,
    *,
    rgb: torch.Tensor | None = None,
    mel: torch.Tensor | None = None,
    rel_audio: torch.Tensor | None = None,
    has_audio: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    feats: list[torch.Tensor] | None = None,
    audio_feat: torch.Tensor | None = None,
) -> Guidance:
    """(c, r) of one source pair for a batch: what training stages and inference variants both call.

    Args:
        L: L_n [B, 1, H, W] (the frame the relevance net sees).
        rgb: the colour image [B, 3, H, W] in [0, 1] ("visual" only).
        mel: what E_a reads (`ModelConfig.audio_input`: the normalised log-mel [B, 1, 64, 97] or the
            VGGSound spectrogram [B, 1, 257, T]), or None (no audio for any sample).
        rel_audio: what the relevance net's audio encoder reads (`ModelConfig.relevance_audio_input`);
            None = `mel`.
        has_audio: bool [B] (None = every sample has audio when mel is given).
        mask: bool [B], r = 0 where True (a training stage's masked share), or None.
        feats: `model.encode_grey(L)`, if already computed; audio_feat: E_a(mel) [B, 512], if known.
    """
    B, dev = L.shape[0], L.device
    zeros = torch.zeros(B, device=dev, dtype=L.dtype)
    if c_source == "none" or r_source == "zero":
        return Guidance(None, zeros)
    if c_source == "visual":
        if rgb is None:
            raise ValueError("guidance from the colour image needs rgb [B, 3, H, W]")
        c, present = model.condition(model.visual_semantics(rgb)), torch.ones(B, dtype=torch.bool, device=dev)
    else:
        present = (
            torch.ones(B, dtype=torch.bool, device=dev) if has_audio is None else has_audio.to(dev).bool()
        )
        if mel is None or not bool(present.any()):
            return Guidance(None, zeros)
        audio_feat = model.audio_features(mel) if audio_feat is None else audio_feat
        c = model.condition(model.a2v(audio_feat))
    if mask is not None:
        present = present & ~mask.to(dev).bool()
    if r_source == "one":
        r = present.to(L.dtype)
    elif r_source == "relevance":
        if mel is None:
            raise ValueError("r from the relevance net needs audio")
        score = model.relevance_score(
            L, mel if rel_audio is None else rel_audio, present, audio_feat, feats
        ).detach()
        r = score.to(L.dtype)
    else:
        raise ValueError(f"unknown r source {r_source!r}")
    return Guidance(c, r)
