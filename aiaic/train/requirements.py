"""A paper recipe runs the paper's setting or stops: the files a recipe requires, checked before any
data is read (`check_requirements(recipe, plan)`, called by `build_train_plan`).

A recipe opts in in one of two ways (both may be combined):

    paper = true            # top of the recipe: every file the paper's setting needs (below)

    [requires]
    files = [{ path = "../weights/extra.pth", what = "my network", source = "where to get it" }]
    random_init = false     # true: the backbone may start from random weights (say so explicitly)
    drop_terms = []         # colour-loss terms that may be switched off when their network is absent

With `paper = true` the recipe needs, as local files: the backbone's released weights ([model]
backbone_weights), the VGGSound ResNet-18 for E_a and E_a' (audio_encoder and relevance_audio_encoder
"vggsound", vggsound_weights), ImageNet VGG-19 for E_v (relevance_image_encoder "vgg19",
vgg19_weights), and the pretrained network each colour-loss term needs (DDColor's perceptual term:
torchvision's VGG16-BN, [train] vgg16_bn_weights or the torch hub cache). Everything missing is listed
in one ConfigError, each with where it comes from. The networks of loss terms come from the term
registry (`aiaic.train.terms`: `TermNeeds.network`), so a backbone's own term that reads one (e.g. a
VGG-19) is required the same way. Without either key nothing is required (the demo
and the tests run without any download; a missing VGG16-BN then switches the perceptual term off, and
the stage's config.json records it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from aiaic.config import recipe_section
from aiaic.errors import ConfigError
from aiaic.models.config import ModelConfig
from aiaic.models.pretrained import WHERE_FROM
from aiaic.train.terms import TERMS, get_term


class PlanView(Protocol):
    """What the check reads of a `aiaic.train.config.TrainPlan` (typed here without importing it: the
    plan's builder calls the check)."""

    @property
    def model(self) -> ModelConfig: ...

    @property
    def stages(self) -> Mapping[str, Any]: ...

    @property
    def train(self) -> Any: ...


# our backbone name's prefix -> where its released weights come from
BACKBONE_WEIGHTS_FROM = {
    "ddcolor-large": "DDColor's ddcolor_paper.pth (ConvNeXt-L, the DDColor paper's model): Hugging Face "
    "piddnad/DDColor-models, or piddnad/ddcolor_paper (pytorch_model.bin)",
    "ddcolor-tiny": "DDColor's ddcolor_paper_tiny.pth: Hugging Face piddnad/DDColor-models",
    "disco": "DISCO's disco-beta.pth.tar: MenghanXia/DisentangledColorization (its README's checkpoint link)",
    "chromagan": "ChromaGAN's my_model_colorization.h5: pvitoria/ChromaGAN (its README's weights link)",
}
# a pretrained network of a loss term (`aiaic.train.terms.PretrainedNet.name`) -> where it comes from
NETWORK_FROM = {
    "vgg16_bn": "torchvision's ImageNet VGG16-BN: download.pytorch.org/models/vgg16_bn-6c64b313.pth, or the "
    "torch hub cache after torchvision.models.vgg16_bn(weights='IMAGENET1K_V1')",
    "vgg19": "torchvision's ImageNet VGG-19: download.pytorch.org/models/vgg19-dcbb9e9d.pth, or the torch "
    "hub cache after torchvision.models.vgg19(weights='IMAGENET1K_V1')",
}
_REQUIRES_KEYS = {"files", "random_init", "drop_terms"}


def _where_backbone(backbone: str) -> str:
    for prefix, where in BACKBONE_WEIGHTS_FROM.items():
        if backbone.startswith(prefix):
            return where
    return f"the released weights of backbone {backbone!r}"


def _requires(recipe: Mapping[str, Any]) -> dict[str, Any]:
    table = recipe.get("requires", {})
    if not isinstance(table, Mapping):
        raise ConfigError("recipe entry [requires] is not a table")
    unknown = sorted(set(table) - _REQUIRES_KEYS)
    if unknown:
        raise ConfigError(f"unknown [requires] settings {unknown}; known: {sorted(_REQUIRES_KEYS)}")
    return dict(table)


def _paper_model_missing(plan: PlanView, random_init: bool) -> list[str]:
    """What the paper's model setting lacks: the backbone's weights and the pretrained encoders."""
    m, out = plan.model, []
    if m.backbone_weights is None and not random_init:
        out.append(
            f"[model] backbone_weights: not set (the paper starts {m.backbone} from its released weights; "
            "`random_init = true` in [requires] to start from random ones); get it from "
            + _where_backbone(m.backbone)
        )
    elif m.backbone_weights is not None and not Path(m.backbone_weights).is_file():
        out.append(f"{m.backbone_weights}: not found; get it from {_where_backbone(m.backbone)}")
    for key, value, want in (
        ("audio_encoder", m.audio_encoder, "vggsound"),
        ("relevance_audio_encoder", m.relevance_audio_encoder, "vggsound"),
        ("relevance_image_encoder", m.relevance_image_encoder, "vgg19"),
    ):
        if value != want:
            out.append(f"[model] {key} = {value!r}: the paper's is {want!r}")
    for key in ("vggsound_weights", "vgg19_weights"):
        path = getattr(m, key)
        if path is None or not Path(path).is_file():
            shown = "not set" if path is None else f"{path}: not found"
            out.append(f"[model] {key} ({shown}); get it from {WHERE_FROM[key]}")
    return out


def _term_files_missing(plan: PlanView, drop: set[str]) -> list[str]:
    """The pretrained networks (`aiaic.train.terms`: a term's `needs.network`) of the colour-loss terms
    some stage uses and may not drop, where neither the recipe's file nor the torch hub cache has them."""
    used = {t for st in plan.stages.values() for t, w in st.loss_terms().items() if w > 0}
    named = {k: Path(v) for k, v in plan.train.network_weights.items()}
    if plan.train.vgg16_bn_weights is not None:
        named["vgg16_bn"] = Path(plan.train.vgg16_bn_weights)
    out = []
    for term in sorted(used - drop):
        net = get_term(term).needs.network if term in TERMS else None
        if net is None:
            continue
        where = NETWORK_FROM.get(net.name, f"{net.description} ({net.file})")
        given = named.get(net.name)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / net.file
        if given is not None and not given.is_file():
            out.append(f"{given} ([train] {net.recipe_key}, the {term} term): not found; get it from {where}")
        elif given is None and not cached.is_file():
            out.append(
                f"{net.file} (the {term} term's {net.what}): not in {cached.parent} and [train] "
                f"{net.recipe_key} is not set; get it from {where} "
                f'(or `drop_terms = ["{term}"]` in [requires])'
            )
    return out


def check_requirements(recipe: Mapping[str, Any], plan: PlanView) -> None:
    """ConfigError listing every file the recipe requires (`paper = true`, [requires]) that is missing,
    each with where it comes from; nothing happens when the recipe requires nothing or all is there."""
    paper = recipe.get("paper", False)
    if not isinstance(paper, bool):
        raise ConfigError(f"recipe key paper must be true or false, got {paper!r}")
    requires = _requires(recipe)
    missing: list[str] = []
    if paper:
        missing += _paper_model_missing(plan, bool(requires.get("random_init", False)))
        missing += _term_files_missing(plan, set(requires.get("drop_terms", [])))
    section = recipe_section(recipe, "requires")
    for i, entry in enumerate(requires.get("files", [])):
        if not isinstance(entry, Mapping) or "path" not in entry:
            raise ConfigError(f"[requires] files[{i}] must be a table with path (and what, source)")
        path = Path(entry["path"])
        if not path.is_absolute() and section.folder is not None:
            path = section.folder / path
        if not path.is_file():
            what = entry.get("what", "a required file")
            missing.append(
                f"{path} ({what}): not found; get it from {entry.get('source', 'the recipe says not')}"
            )
    if missing:
        head = "the paper's setting" if paper else "this recipe"
        raise ConfigError(
            f"{head} needs files that are missing; nothing was started:\n"
            + "\n".join(f"  {m}" for m in missing)
        )
