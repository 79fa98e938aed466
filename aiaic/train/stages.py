"""The training stages, described as data: what trains, what is frozen, which loss.

| stage    | from    | trains                  | condition c      | r                      | loss            |
|----------|---------|-------------------------|------------------|------------------------|-----------------|
| baseline | scratch | backbone                | none             | -                      | L_c             |
| stage1   | scratch | backbone, E_s, MLP, SG  | MLP(E_s(Y_rgb))  | 0 masked, else 1       | L_c             |
| stage2   | stage1  | E_a, A2V                | -                | -                      | ||f_a - f_v||^2 |
| rnet     | stage2  | relevance heads, w, b   | -                | -                      | BCE true/other  |
| stage3   | rnet    | A2V                     | MLP(f_a)         | relevance net          | L_c             |
| e2e      | scratch | backbone, E_a, A2V, MLP, SG | MLP(f_a)     | 0 masked, else 1       | L_c             |

r is always 0 for a sample without audio where the audio steers (stage3, e2e).

Every component that a stage does not train is frozen: `requires_grad = False` and eval mode (so
BatchNorm statistics do not move). The relevance net's own pretrained encoders, when configured,
are always frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from torch import nn

if TYPE_CHECKING:
    from aiaic.models.colorizer import AudioInfusedColorizer

Objective = Literal["color", "semantic", "relevance"]
Condition = Literal["none", "visual", "audio"]
RSource = Literal["none", "unmasked", "relevance", "audio_unmasked"]


@dataclass(frozen=True)
class StageSpec:
    """One stage as data.

    Attributes:
        name: the run sub-directory and recipe table name.
        init_from: the stage whose finished weights this one starts from (None = fresh init).
        trains: model components (`AudioInfusedColorizer.components`) whose parameters are optimised.
        objective: "color" (L_c on ab_n), "semantic" (L_s), "relevance" (BCE).
        condition: where c comes from for the colour objective.
        r_source: "unmasked" (r = 1 - audio_mask), "relevance" (the relevance net, 0 without audio),
            "audio_unmasked" (r = has_audio and not audio_mask), "none".
        description: one line for logs.
    """

    name: str
    init_from: str | None
    trains: tuple[str, ...]
    objective: Objective
    condition: Condition = "none"
    r_source: RSource = "none"
    uses_mask: bool = False
    description: str = ""


STAGES: dict[str, StageSpec] = {
    s.name: s
    for s in (
        StageSpec("baseline", None, ("backbone",), "color", "none", "none",
                  description="visual-only backbone, colour loss"),
        StageSpec("stage1", None, ("backbone", "semantic", "condition", "guidance"), "color", "visual",
                  "unmasked", uses_mask=True,
                  description="backbone + E_s + MLP + DSG from the colour image's semantics"),
        StageSpec("stage2", "stage1", ("audio", "a2v"), "semantic",
                  description="E_a + A2V regress f_v (E_s frozen)"),
        StageSpec("rnet", "stage2", ("relevance",), "relevance",
                  description="relevance heads: true pair vs audio of other videos"),
        StageSpec("stage3", "rnet", ("a2v",), "color", "audio", "relevance",
                  description="f_a replaces f_v; A2V fine-tuned with L_c, r from the relevance net"),
        StageSpec("e2e", None, ("backbone", "audio", "a2v", "condition", "guidance"), "color", "audio",
                  "audio_unmasked", uses_mask=True,
                  description="audio guidance end to end from scratch (w/o multi-step ablation)"),
    )
}


def apply_stage_modes(model: AudioInfusedColorizer, spec: StageSpec, training: bool = True) -> None:
    """Set requires_grad and train/eval mode per component: trained ones follow `training`,
    frozen ones are always eval with requires_grad False."""
    unknown = [c for c in spec.trains if c not in model.components]
    if unknown:
        raise ValueError(f"stage {spec.name} trains unknown components {unknown}")
    for name in model.components:
        module = getattr(model, name)
        trains = name in spec.trains
        module.requires_grad_(trains)
        module.train(training and trains)


def trainable_parameters(model: AudioInfusedColorizer, spec: StageSpec) -> list[nn.Parameter]:
    """The parameters a stage optimises, in a stable order."""
    params: list[nn.Parameter] = []
    for name in spec.trains:
        params.extend(getattr(model, name).parameters())
    return params
