"""The loop's API (LoopConfig + Optimisation + callbacks) and precision, the recipe's defaults from the
backbone (optimizer, loss terms, size multiple), the global batch, and the CLI's missing-flag errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from support.train_fixtures import TINY_MODEL  # noqa: E402
from typer.testing import CliRunner

from aiaic.cli.train import app
from aiaic.config import load_recipe
from aiaic.errors import ConfigError
from aiaic.models.backbone_spec import InputPolicy, OptimizerDefaults
from aiaic.models.backbones import unet
from aiaic.models.backbones.registry import available, build_backbone, register, spec_of
from aiaic.models.colorizer import build_colorizer
from aiaic.models.config import ModelConfig
from aiaic.train.config import StageConfig, build_train_plan, resolve_stage
from aiaic.train.distributed import DistInfo, per_rank_batch
from aiaic.train.loop import LoopCallbacks, LoopConfig, LoopState, Optimisation, train_loop
from aiaic.train.objectives import StageObjective
from aiaic.train.precision import MixedPrecision
from aiaic.train.runner import make_optimizer
from aiaic.train.stages import STAGES, apply_stage_modes, trainable_parameters

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


# a U-Net registered with another backbone's training declarations: DDColor's optimizer, loss and size
# multiple (its spec alone says so: the plan reads the spec, never a built network)
ADAMW_LOSS = {"l1": 0.1, "perceptual": 5.0, "adversarial": 1.0, "colorfulness": 0.5}
ADAMW_SPEC = dataclasses.replace(
    unet.SPEC,
    name="test-adamw-unet",
    input=InputPolicy(size_multiple=32),
    input_for=None,
    optimizer=OptimizerDefaults("adamw", 1e-4, (0.9, 0.99), 0.01),
    loss=ADAMW_LOSS,
)
if "test-adamw-unet" not in available():
    register(ADAMW_SPEC)(unet.build_unet)


def _batches(n: int, size: int = 32) -> list[dict[str, torch.Tensor]]:
    """Batches whose colour is a smooth function of the grey level (learnable from L alone)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        L = torch.nn.functional.interpolate(
            torch.rand(4, 1, 8, 8, generator=g) * 2 - 1, size=size, mode="bilinear", align_corners=False
        )
        ab = torch.cat([0.4 * torch.tanh(2 * L), -0.3 * L], dim=1)
        out.append(
            {
                "L": L,
                "ab": ab,
                "rgb": torch.zeros(4, 3, size, size),
                "has_audio": torch.ones(4, dtype=torch.bool),
                "audio_mask": torch.zeros(4, dtype=torch.bool),
            }
        )
    return out


def test_bf16_autocast_trains_on_the_cpu():
    torch.manual_seed(0)
    model = build_colorizer(
        ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY_MODEL.items()})
    )
    spec = STAGES["baseline"]
    cfg = resolve_stage(StageConfig(lr=3e-3, color_loss="l2"), model.backbone, True)
    apply_stage_modes(model, spec, True)
    objective = StageObjective(model, spec, cfg)
    params = trainable_parameters(model, spec)
    dtypes: list[torch.dtype] = []
    model.backbone.generator.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    losses: list[float] = []
    batches = _batches(4)
    loop_cfg = LoopConfig(epochs=8, precision="bf16", log_every=100, show_progress=False, batch_size=4)
    callbacks = LoopCallbacks(
        checkpoint=lambda s: None,
        set_modes=lambda: apply_stage_modes(model, spec, True),
        on_step=lambda s, out: losses.append(float(out["loss"].detach())),
    )
    opt = Optimisation(objective, make_optimizer(cfg, params), params)
    state = train_loop(loop_cfg, opt, lambda epoch: batches, LoopState(), DistInfo(), callbacks)
    assert state.step == 32 and state.epoch == 8 and len(losses) == 32
    assert set(dtypes) == {torch.bfloat16}  # the convolutions really ran in bfloat16
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.5 * first, (first, last)
    assert all(p.dtype == torch.float32 for p in params)  # the weights stay float32


def test_fp16_needs_cuda():
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        MixedPrecision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="runs at fp32 but its MixedPrecision is bf16"):
        train_loop(
            LoopConfig(epochs=1),
            Optimisation(
                torch.nn.Identity(),
                torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0),
                [],
                amp=MixedPrecision("bf16", torch.device("cpu")),
            ),
            lambda e: [],
            LoopState(),
            DistInfo(),
            LoopCallbacks(checkpoint=lambda s: None),
        )


def test_global_batch_divides_over_ranks():
    assert per_rank_batch(16, 1) == 16 and per_rank_batch(16, 8) == 2
    with pytest.raises(ConfigError, match=r"\[train.stage1\] batch_size = 16 .* not divide over 3 ranks"):
        per_rank_batch(16, 3, "[train.stage1] batch_size")


def test_stage_defaults_come_from_the_backbone(tmp_path):
    recipe = {
        "model": {"backbone": "test-adamw-unet", "backbone_options": {"base_channels": 8}},
        "train": {
            "image_size": 64,
            "stage2": {"optimizer": "adam", "lr": 1e-3},
            "stage3": {"color_loss": "huber"},
            "e2e": {"loss": {"l2": 1.0, "colorfulness": 0.1}, "weight_decay": 0.0},
        },
    }
    plan = build_train_plan(recipe, {"shards": tmp_path, "out": tmp_path})
    base = plan.stages["baseline"]
    assert (base.optimizer, base.lr, tuple(base.betas)) == ("adamw", 1e-4, (0.9, 0.99))
    assert base.weight_decay == 0.01
    assert base.loss_terms() == ADAMW_LOSS
    assert (base.disc_channels, base.disc_blocks, base.disc_lr) == (64, 3, 1e-4)  # the spec's critic
    s2 = plan.stages["stage2"]
    assert (s2.optimizer, s2.lr, s2.weight_decay) == ("adam", 1e-3, 0.01)
    assert s2.loss is None  # not a colour stage
    assert plan.stages["stage3"].loss_terms() == {"huber": 1.0}
    e2e = plan.stages["e2e"]
    assert e2e.loss_terms() == {"l2": 1.0, "colorfulness": 0.1} and e2e.weight_decay == 0.0
    opt = make_optimizer(base, [torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.99)
    # a [train]-wide loss reaches every colour stage; the default U-Net keeps its Huber
    wide = build_train_plan({"train": {"loss": {"l1": 2.0}, "image_size": 32}}, {"shards": "s", "out": "o"})
    assert wide.stages["stage1"].loss_terms() == {"l1": 2.0}
    unet = build_train_plan({"train": {"image_size": 32}}, {"shards": "s", "out": "o"}).stages["baseline"]
    assert unet.loss_terms() == {"huber": 1.0} and (unet.optimizer, unet.lr) == ("adam", 1e-3)
    # the image size must be a multiple of the spec's size multiple (32 here, not 2**depth = 8)
    with pytest.raises(ConfigError, match="image_size 48: must be a multiple of 32.*test-adamw-unet"):
        build_train_plan({**recipe, "train": {"image_size": 48}}, {"shards": "s", "out": "o"})
    with pytest.raises(ConfigError, match="unknown loss terms \\['l3'\\]"):
        build_train_plan({"train": {"loss": {"l3": 1.0}}}, {"shards": "s", "out": "o"})
    with pytest.raises(ConfigError, match="either loss"):
        build_train_plan(
            {"train": {"stage1": {"loss": {"l1": 1.0}, "color_loss": "l2"}}}, {"shards": "s", "out": "o"}
        )
    with pytest.raises(ConfigError, match="loss must be a table"):
        build_train_plan({"train": {"loss": "l1"}}, {"shards": "s", "out": "o"})


def test_cli_without_shards_or_out_says_which_flag():
    runner = CliRunner()
    res = runner.invoke(app, ["--device", "cpu"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2
    assert "give --shards or set `shards` in the recipe's [train] table" in text
    assert "Traceback" not in text and "TypeError" not in text
    res = runner.invoke(app, ["--shards", "somewhere"])
    assert res.exit_code == 2 and "give --out or set `out`" in " ".join(res.output.split())


def test_the_ddcolor_recipe_is_the_papers(tmp_path):
    import shutil

    (tmp_path / "pipelines").mkdir()
    shutil.copy(PIPELINES / "vggsound-ddcolor.toml", tmp_path / "pipelines")
    recipe = load_recipe(tmp_path / "pipelines" / "vggsound-ddcolor.toml")
    for key in ("vggsound_weights", "vgg19_weights"):  # the paper's pretrained audio side, as placeholders
        target = tmp_path / "pipelines" / recipe["model"][key]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"placeholder")
    assert recipe["model"]["audio_encoder"] == "vggsound" and recipe["train"]["ablations"] == ["no_r", "e2e"]
    train = recipe["train"]
    assert recipe["model"]["backbone"] == "ddcolor-tiny" and train["image_size"] == 256
    assert (train["baseline"]["epochs"], train["baseline"]["batch_size"]) == (20, 16)
    assert (train["stage1"]["epochs"], train["stage1"]["batch_size"]) == (20, 16)
    assert (
        train["stage2"]["epochs"],
        train["stage2"]["batch_size"],
        train["stage2"]["lr"],
        train["stage2"]["optimizer"],
    ) == (20, 64, 1e-3, "adam")
    assert (train["stage3"]["epochs"], train["stage3"]["batch_size"]) == (10, 16)
    assert train["loss"] == {"l1": 11.0, "perceptual": 5.0, "adversarial": 1.0, "colorfulness": 0.5}
    assert (train["optimizer"], train["lr"], train["betas"], train["weight_decay"]) == (
        "adamw",
        1e-4,
        [0.9, 0.99],
        0.01,
    )
    # every key is one the trainer knows (checked with the U-Net standing in for DDColor)
    stand_in = build_train_plan(recipe, {"shards": "s", "out": "o", "backbone": "unet"})
    assert stand_in.stages["stage3"].loss_terms() == train["loss"]
    assert stand_in.stages["stage2"].weight_decay == 0.0 and stand_in.stages["stage1"].optimizer == "adamw"
    if "ddcolor-tiny" not in available():
        pytest.skip("the DDColor backbone is not in this branch")
    plan = build_train_plan(recipe, {"shards": "s", "out": "o"})
    with torch.device("meta"):
        backbone = build_backbone("ddcolor-tiny", plan.model)
    assert plan.train.image_size % backbone.size_multiple == 0
    assert backbone.input_policy == spec_of("ddcolor-tiny").input_policy()
    assert plan.stages["stage1"].loss_terms() == train["loss"]
