"""The training stages, described as data: what trains, what is frozen, which loss.

| stage       | from        | trains                            | c        | r                   | loss      |
|-------------|-------------|-----------------------------------|----------|---------------------|-----------|
| baseline    | initial     | backbone                          | none     | -                   | L_c       |
| stage1      | initial     | backbone, E_s, MLP, SG            | MLP(f_v) | 1, 0 for masked     | L_c       |
| stage2      | stage1      | E_a, A2V                          | -        | -                   | L_s       |
| rnet        | stage2      | relevance heads, w, b             | -        | -                   | BCE       |
| stage3      | rnet        | A2V                               | MLP(f_a) | relevance net       | L_c       |
| no_r_stage1 | initial     | backbone, E_s, MLP, SG            | MLP(f_v) | 1 (no masking)      | L_c       |
| no_r_stage2 | no_r_stage1 | E_a, A2V                          | -        | -                   | L_s       |
| no_r_stage3 | no_r_stage2 | A2V                               | MLP(f_a) | 1                   | L_c       |
| e2e         | initial     | backbone, E_a, A2V, MLP, SG, rel. | MLP(f_a) | relevance, 0 masked | L_c + BCE |

f_v = E_s(Y_rgb), f_a = A2V(E_a(A)); L_s = ||f_a - f_v||^2; BCE: true pair vs audio of another video.
"initial": every stage without a predecessor starts from the same initial weights (the same seed, and
the backbone's released weights where the model config names them), so baseline, stage 1, the w/o-r
model and the end-to-end model are compared from one starting point.

The ablations (Table 2 of the paper), each its own model in its own folders of the run:
- **w/o r** (`no_r_stage1..3`, `--stage no_r`): the same three steps with SG instead of DSG: stage 1
  never masks (r = 1 for every sample), stage 2 regresses this model's own f_v, stage 3 fine-tunes A2V
  with r = 1; no relevance net. Recipe settings come from `[train.stageN]`, then `[train.no_r_stageN]`.
- **w/o multi-step** (`e2e`, `--stage e2e`): audio guidance trained in one stage from the initial
  weights, the relevance mechanism kept: the same masked share as stage 1 (r = 0, so the backbone keeps
  working alone) and r from a relevance net for the rest. The relevance net is trained jointly, by its
  own BCE on the current encoders' features (detached: the heads learn from BCE only, the encoders
  from L_c only), and r enters the colour path detached, as in the staged model where the colour loss
  of stage 3 never reaches r. Joint training was chosen over "relevance net first, then guidance"
  because the latter is a staged schedule again (the very thing this row removes), and a relevance net
  trained before E_a would score features that E_a's end-to-end training then moves.

r is 0 for a sample without audio wherever c comes from the audio (`aiaic.runs.variants.guidance`).
Every component that a stage does not train is frozen: `requires_grad = False` and eval mode (so
BatchNorm statistics do not move). The relevance net's own pretrained encoders, when configured,
are always frozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from torch import nn

from aiaic.runs.variants import CSource, RSource

if TYPE_CHECKING:
    from aiaic.models.colorizer import AudioInfusedColorizer

Objective = Literal["color", "semantic", "relevance", "color_relevance"]


@dataclass(frozen=True)
class StageSpec:
    """One stage as data.

    Attributes:
        name: the run sub-directory and recipe table name.
        init_from: the stage whose finished weights this one starts from (None = the initial weights).
        trains: model components (`AudioInfusedColorizer.components`) whose parameters are optimised.
        objective: "color" (L_c on ab_n), "semantic" (L_s), "relevance" (BCE), "color_relevance"
            (L_c + BCE of the relevance net, trained together: e2e).
        c: where c comes from for the colour objective; r: where r comes from (`aiaic.runs.variants`).
        uses_mask: r = 0 for the loader's `audio_mask` share (`mask_prob` of the stage's settings).
        settings_from: a stage whose recipe table this one inherits (its own table overrides it).
        description: one line for logs.
    """

    name: str
    init_from: str | None
    trains: tuple[str, ...]
    objective: Objective
    c: CSource = "none"
    r: RSource = "zero"
    uses_mask: bool = False
    settings_from: str | None = None
    description: str = ""

    @property
    def colours(self) -> bool:
        """True for a stage trained with the colour loss L_c (alone or with the relevance BCE)."""
        return self.objective in ("color", "color_relevance")


_VISUAL_GUIDED = ("backbone", "semantic", "condition", "guidance")

STAGES: dict[str, StageSpec] = {
    s.name: s
    for s in (
        StageSpec("baseline", None, ("backbone",), "color", description="visual-only backbone, colour loss"),
        StageSpec(
            "stage1",
            None,
            _VISUAL_GUIDED,
            "color",
            "visual",
            "one",
            uses_mask=True,
            description="backbone + E_s + MLP + DSG from the colour image's semantics",
        ),
        StageSpec(
            "stage2", "stage1", ("audio", "a2v"), "semantic", description="E_a + A2V regress f_v (E_s frozen)"
        ),
        StageSpec(
            "rnet",
            "stage2",
            ("relevance",),
            "relevance",
            description="relevance heads: true pair vs audio of other videos",
        ),
        StageSpec(
            "stage3",
            "rnet",
            ("a2v",),
            "color",
            "audio",
            "relevance",
            description="f_a replaces f_v; A2V fine-tuned with L_c, r from the relevance net",
        ),
        StageSpec(
            "no_r_stage1",
            None,
            _VISUAL_GUIDED,
            "color",
            "visual",
            "one",
            settings_from="stage1",
            description="w/o r: backbone + E_s + MLP + SG (r = 1, no masking)",
        ),
        StageSpec(
            "no_r_stage2",
            "no_r_stage1",
            ("audio", "a2v"),
            "semantic",
            settings_from="stage2",
            description="w/o r: E_a + A2V regress this model's f_v",
        ),
        StageSpec(
            "no_r_stage3",
            "no_r_stage2",
            ("a2v",),
            "color",
            "audio",
            "one",
            settings_from="stage3",
            description="w/o r: f_a replaces f_v; A2V fine-tuned with L_c, r = 1",
        ),
        StageSpec(
            "e2e",
            None,
            ("backbone", "audio", "a2v", "condition", "guidance", "relevance"),
            "color_relevance",
            "audio",
            "relevance",
            uses_mask=True,
            description="w/o multi-step: audio guidance and relevance net trained end to end",
        ),
    )
}

MAIN_CHAIN = ("baseline", "stage1", "stage2", "rnet", "stage3")
ABLATION_CHAINS: dict[str, tuple[str, ...]] = {
    "no_r": ("no_r_stage1", "no_r_stage2", "no_r_stage3"),
    "e2e": ("e2e",),
}


def stage_sequence(stage: str, ablations: Sequence[str] = ()) -> tuple[str, ...]:
    """The stage folders `aiaic-train --stage <stage>` trains, in order: "all" is the main chain then
    the recipe's `ablations` chains; "no_r" and "e2e" their chain; a stage name itself."""
    if stage == "all":
        return MAIN_CHAIN + tuple(s for a in ablations for s in ABLATION_CHAINS[a])
    if stage in ABLATION_CHAINS:
        return ABLATION_CHAINS[stage]
    if stage in STAGES:
        return (stage,)
    known = ", ".join(["all", *ABLATION_CHAINS, *STAGES])
    raise ValueError(f"unknown stage {stage!r}; one of {known}")


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
