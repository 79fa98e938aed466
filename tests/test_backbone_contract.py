"""The backbone conformance kit: every registered backbone keeps the contract of `aiaic.models.backbones`.

Parametrised over the registry (as timm's test_models.py is): built on the meta device and on the CPU,
guide=None is the plain network exactly, DSG at r = 0 is the identity, the guide sees
[B, insertion_channels, h, w] at the module named `insertion_point` (and only there), `pool` gives
`feature_dim`, the input policy is enforced with a clear error, `load_pretrained` reloads the network's
own state dict strictly and refuses a foreign one naming keys, and one training step of every stage runs
with the backbone's own loss terms and critic.

Full-size variants (`TOO_BIG`) are built on the meta device only: their CPU builds and steps take
minutes and gigabytes; their class is the same as the small variant's, which runs every check.

The last tests register a throwaway backbone from this file only (its own spec, options, extras, loss
term, weight reader and WGAN-GP critic conditioned on L) and train it through `run_training`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aiaic.errors import ConfigError, InputError
from aiaic.models.backbone_spec import (
    BackboneSpec,
    CriticSpec,
    InputPolicy,
    OptimizerDefaults,
    WeightFormat,
    WeightSet,
)
from aiaic.models.backbones import Backbone, BackboneOutput, available, build_backbone, spec_of
from aiaic.models.backbones.registry import register, unregister
from aiaic.models.colorizer import build_colorizer
from aiaic.models.config import ModelConfig
from aiaic.models.guidance import DynamicSemanticGuidance
from aiaic.train.config import StageConfig, resolve_stage
from aiaic.train.discriminator import build_discriminator_trainer
from aiaic.train.distributed import DistInfo
from aiaic.train.losses import build_color_loss
from aiaic.train.objectives import StageObjective
from aiaic.train.precision import MixedPrecision
from aiaic.train.runner import make_optimizer
from aiaic.train.stages import STAGES, apply_stage_modes, trainable_parameters
from aiaic.train.terms import TermInputs, TermNeeds, get_term, register_term, unregister_term

# full-size released architectures: meta-device checks only (CPU build and steps take minutes and GBs)
TOO_BIG = {
    "ddcolor-tiny": "ConvNeXt-T DDColor, ~55M parameters",
    "ddcolor-large": "ConvNeXt-L, ~230M",
    "chromagan": "ChromaGAN's released generator, 171M parameters (its Dense layers at 224)",
    "disco": "DISCO-beta, 43M parameters; a CPU step at its 256 px default takes minutes",
}
SMALL_OPTIONS: dict[str, dict] = {"unet": {"base_channels": 8}}  # small sizes for the CPU checks
BUILT_IN = sorted(n for n in available() if not n.startswith("test-"))
SMALL = [n for n in BUILT_IN if n not in TOO_BIG]
HEADS = dict(
    semantic_channels=(4, 4, 8, 8),
    semantic_dim=8,
    cond_dim=8,
    guidance_hidden=8,
    a2v_hidden=8,
    relevance_dim=4,
    relevance_hidden=8,
)


def _config(name: str) -> ModelConfig:
    return ModelConfig(backbone=name, backbone_options=SMALL_OPTIONS.get(name, {}), **HEADS)


def _build(name: str, seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    return build_backbone(name, _config(name)).eval()


def _side(net: Backbone) -> int:
    """The smallest comfortable side the policy allows (fixed size, or two multiples and >= 32)."""
    policy = net.input_policy
    if policy.fixed_size is not None:
        return policy.fixed_size
    m = policy.size_multiple
    return m * max(2, math.ceil(32 / m))


def _L_n(side: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, side, side, generator=g) * 2 - 1


# ---- building -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILT_IN)
def test_builds_on_meta_with_its_declarations(name):
    spec = spec_of(name)
    with torch.device("meta"):
        net = build_backbone(name, _config(name))
    assert net.backbone_spec is spec and isinstance(net.backbone_options, spec.options)
    assert net.input_policy == spec.input_policy(net.backbone_options)  # the plan reads the spec alone
    module = net.get_submodule(net.insertion_point)  # the insertion point names a real module
    assert isinstance(module, nn.Module) and module is not net
    assert net.insertion_channels >= 1 and net.feature_dim >= 1
    assert set(spec.loss) and all(w >= 0 for w in spec.loss.values())
    for term in spec.loss:
        needs = get_term(term).needs  # every default term is registered, its extras declared
        assert set(needs.extras) <= set(spec.extras), (term, needs.extras)
        assert not needs.critic or spec.critic is not None
    assert len({w.name for w in spec.weights}) == len(spec.weights)


@pytest.mark.parametrize("name", SMALL)
def test_builds_on_cpu_with_the_meta_layout(name):
    with torch.device("meta"):
        meta = build_backbone(name, _config(name)).state_dict()
    cpu = _build(name).state_dict()
    assert {k: tuple(v.shape) for k, v in cpu.items()} == {k: tuple(v.shape) for k, v in meta.items()}
    assert all(t.device.type == "cpu" and bool(torch.isfinite(t.float()).all()) for t in cpu.values())


# ---- the guide ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SMALL)
def test_guide_none_is_the_plain_backbone_exactly(name):
    net = _build(name)
    L_n = _L_n(_side(net))
    module = net.get_submodule(net.insertion_point)
    with torch.no_grad():
        plain = net(L_n)
        assert torch.equal(net(L_n, guide=None), plain)
        assert torch.equal(net.decode(net.encode(L_n)), plain)
        assert torch.equal(net.forward_outputs(L_n).ab, plain)
        guided = net(L_n, guide=lambda h: h + 1.0)
        assert torch.equal(net(L_n), plain)  # the hook is gone after a guided call
    assert not module._forward_hooks
    assert plain.shape == (2, 2, *L_n.shape[-2:]) and torch.isfinite(plain).all()
    assert not torch.equal(guided, plain)


@pytest.mark.parametrize("name", SMALL)
def test_dsg_at_r_zero_is_the_identity(name):
    net = _build(name)
    L_n = _L_n(_side(net))
    dsg = DynamicSemanticGuidance(net.insertion_channels, cond_dim=8, hidden=8)
    with torch.no_grad():
        for p in dsg.parameters():  # a guide that changes everything where r > 0
            p.normal_()
        c = torch.randn(2, 8)
        plain = net(L_n)
        r0 = net(L_n, guide=lambda h: dsg(h, c, torch.zeros(2)))
        r01 = net(L_n, guide=lambda h: dsg(h, c, torch.tensor([0.0, 1.0])))
    assert torch.equal(r0, plain)
    assert torch.equal(r01[0], plain[0]) and not torch.equal(r01[1], plain[1])


@pytest.mark.parametrize("name", SMALL)
def test_the_guide_runs_once_at_the_named_module_with_the_declared_shape(name):
    net = _build(name)
    L_n = _L_n(_side(net))
    module = net.get_submodule(net.insertion_point)
    outputs: list[torch.Tensor] = []
    seen: list[torch.Tensor] = []
    probe = module.register_forward_hook(lambda m, i, o: outputs.append(o.clone()))
    try:
        with torch.no_grad():
            net(L_n, guide=lambda h: seen.append(h.clone()) or h * 2.0)
    finally:
        probe.remove()
    assert len(seen) == 1 and len(outputs) == 1  # once, on the output of the module named
    assert torch.equal(seen[0], outputs[0])
    b, c, h, w = seen[0].shape
    assert (b, c) == (2, net.insertion_channels) and h >= 1 and w >= 1
    with pytest.raises(ValueError, match="must keep the shape"):
        net(L_n, guide=lambda h: h[:, :1])


@pytest.mark.parametrize("name", SMALL)
def test_pool_gives_feature_dim(name):
    net = _build(name)
    L_n = _L_n(_side(net))
    with torch.no_grad():
        v = net.pool(net.encode(L_n))
    assert v.shape == (2, net.feature_dim) and torch.isfinite(v).all()
    assert not torch.equal(v[0], v[1])  # it describes the picture


@pytest.mark.parametrize("name", SMALL)
def test_the_input_policy_is_enforced_with_a_clear_error(name):
    net = _build(name)
    side = _side(net)
    policy = net.input_policy
    bad = side + 1 if policy.size_multiple > 1 or policy.fixed_size else None
    if bad is not None:
        with pytest.raises(ValueError, match=r"must be .*" + type(net).__name__):
            net(_L_n(side)[..., :bad, :bad] if bad < side else torch.zeros(1, 1, bad, bad))
    with pytest.raises(ValueError, match=r"L_n \[B, 1, H, W\]"):
        net(torch.zeros(1, 3, side, side))


# ---- weights ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SMALL)
def test_load_pretrained_reloads_its_own_state_dict_and_refuses_a_foreign_one(name, tmp_path):
    source = _build(name, seed=3)
    with torch.no_grad():  # move BatchNorm statistics and spectral-norm vectors off their initial values
        source.train()
        source(_L_n(_side(source), batch=2, seed=4))
        source.eval()
    own = tmp_path / f"{name}.pth"
    torch.save(source.state_dict(), own)
    target = _build(name, seed=5)
    info = target.load_pretrained(own)
    assert info["file"] == str(own) and info["keys"] == len(source.state_dict())
    for k, t in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], t), k
    L_n = _L_n(_side(source))
    with torch.no_grad():
        assert torch.equal(target(L_n), source(L_n))
    other = next(n for n in SMALL if n != name)
    foreign = tmp_path / "foreign.pth"
    torch.save(_build(other).state_dict(), foreign)
    with pytest.raises(InputError) as e:
        _build(name).load_pretrained(foreign)
    text = str(e.value)
    assert "foreign.pth" in text and ("missing" in text or "unexpected" in text)
    # the message names keys in sorted order (the first few of each kind)
    assert any(k in text for k in sorted(source.state_dict())[:10] + sorted(torch.load(foreign))[:10])


# ---- one training step of each stage --------------------------------------------------------------


def _batch(side: int, n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    L = torch.rand(n, 1, side, side, generator=g) * 2 - 1
    ab = torch.cat([0.3 * torch.tanh(2 * L), -0.2 * L], dim=1)
    return {
        "L": L,
        "ab": ab,
        "rgb": torch.rand(n, 3, side, side, generator=g),
        "mel": torch.randn(n, 1, 64, 97, generator=g),
        "neg_mel": torch.randn(n, 1, 64, 97, generator=g),
        "has_audio": torch.ones(n, dtype=torch.bool),
        "audio_mask": torch.tensor([True] + [False] * (n - 1)),
    }


def train_one_step(name: str, stage: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One optimizer step of `stage` on `name` (its own loss terms and critic, perceptual off: no
    VGG16-BN file here), as the runner builds it; returns the objective's output and the critic's."""
    torch.manual_seed(0)
    spec, st = spec_of(name), STAGES[stage]
    model = build_colorizer(_config(name))
    if (
        st.init_from is not None
    ):  # a stage after stage 1 starts from a trained DSG, not its identity-like init
        with torch.no_grad():
            for p in model.guidance.parameters():
                p.normal_(0.0, 0.1)
    apply_stage_modes(model, st, True)
    cfg = resolve_stage(StageConfig(disc_channels=8, disc_blocks=2), spec, st.colours)
    adversary = color = None
    if st.colours:
        terms = cfg.loss_terms()
        if any(w > 0 and get_term(k).needs.critic for k, w in terms.items()):
            assert cfg.disc_lr is not None and cfg.disc_betas is not None
            amp = MixedPrecision("fp32", torch.device("cpu"))
            adversary = build_discriminator_trainer(
                8, 2, cfg.disc_lr, cfg.disc_betas, amp, DistInfo(), spec.critic
            )
        color, _ = build_color_loss(
            terms, discriminator=adversary.module if adversary else None, critic=spec.critic
        )
    objective = StageObjective(model, st, cfg, color, adversary)
    params = trainable_parameters(model, st)
    before = [p.detach().clone() for p in params]
    opt = make_optimizer(cfg, params)
    out = objective(batch)
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    assert torch.isfinite(out["loss"]), (name, stage)
    assert any(not torch.equal(a, p) for a, p in zip(before, params, strict=True)), (name, stage)
    out.update(objective.discriminator_step(out))
    return out


def _random_vgg19() -> tuple[nn.Module, str]:
    from aiaic.models.backbones.disco_loss import VGG19_FILE, VGG19Perceptual

    return VGG19Perceptual(), VGG19_FILE


# the pretrained networks a backbone's guided stages cannot train without (DISCO's colour-class terms sit
# upstream of the insertion point: its guidance learns from its VGG-19 perceptual term alone); the other
# terms reading a network are off here (no file in the test's hub cache), as a user without them sees
NEEDED_NETWORKS = {"disco-mini": ("vgg19",)}
_RANDOM_NETWORKS = {"vgg19": _random_vgg19}


@pytest.mark.slow  # ~15-20 s per backbone (nine stages)
@pytest.mark.parametrize("name", SMALL)
def test_one_training_step_of_every_stage_with_its_own_losses(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    for net_name in NEEDED_NETWORKS.get(name, ()):
        # random weights in torchvision's layout, where the test's torch hub cache looks for them
        module, file = _RANDOM_NETWORKS[net_name]()
        (tmp_path / "hub" / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
        torch.save(module.state_dict(), tmp_path / "hub" / "hub" / "checkpoints" / file)
    side = _side(_build(name))
    batch = _batch(side)
    for stage in STAGES:
        out = train_one_step(name, stage, batch)
        if STAGES[stage].colours:
            # terms reading a pretrained network are off here (no hub cache): perceptual, class_kl
            active = {k for k, w in spec_of(name).loss.items() if w > 0 and get_term(k).needs.network is None}
            assert {f"loss_{k}" for k in active} <= out.keys(), (stage, sorted(out))
            if "adversarial" in active:
                assert torch.isfinite(out["d_loss"])


# ---- a throwaway backbone, registered here only ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ToyOptions:
    width: int = 8

    def __post_init__(self) -> None:
        if self.width < 2:
            raise ValueError(f"width must be >= 2, got {self.width}")


class ToyNet(Backbone):
    """E: two strided convs; C: conv -> ReLU(inplace) -> upsample -> conv to ab, plus a class head.

    The insertion point `decoder.0` is a conv followed by an in-place ReLU (as DISCO's refine net)."""

    insertion_point = "decoder.0"
    input_policy = InputPolicy(size_multiple=4, default_size=32)

    def __init__(self, width: int):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, 2, 1)
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Upsample(scale_factor=4)
        )
        self.head = nn.Conv2d(width, 2, 1)
        self.classes = nn.Linear(width, 3)
        self.insertion_channels = width
        self.feature_dim = width

    def encode(self, L_n):
        self.check_input(L_n)
        return [self.encoder(L_n)]

    def decode(self, feats):
        return self.decode_outputs(feats).ab

    def decode_outputs(self, feats):
        h = self.decoder(feats[0])
        return BackboneOutput(torch.tanh(self.head(h)), {"class_logits": self.classes(h.mean(dim=(2, 3)))})

    def pool(self, feats):
        return feats[0].mean(dim=(2, 3))


class ToyCritic(nn.Module):
    """x [B, 3, H, W] (cat(L_n, ab_n)) -> [B, N] patch scores; no normalisation (WGAN-GP)."""

    def __init__(self, channels: int, blocks: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, 2, 1), nn.LeakyReLU(0.2)]
        for _ in range(blocks - 1):
            layers += [nn.Conv2d(channels, channels, 3, 2, 1), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, x):
        return self.net(x).flatten(1)


def _read_toy(path: Path) -> dict[str, torch.Tensor]:
    """A made-up file format: a JSON of lists (as an h5 reader would map its datasets)."""
    return {k: torch.tensor(v) for k, v in json.loads(Path(path).read_text()).items()}


TOY = BackboneSpec(
    name="test-toy",
    options=ToyOptions,
    input=InputPolicy(size_multiple=4, default_size=32),
    weights=(WeightSet("toy_v1", file="toy.json", format=WeightFormat(reader=_read_toy)),),
    optimizer=OptimizerDefaults("adam", 3e-3),
    loss={"l2": 1.0, "test_toy_class": 0.1, "adversarial": 0.01},
    critic=CriticSpec(build=ToyCritic, input="lab", loss="wgan-gp", channels=8, blocks=2),
    extras={"class_logits": "[B, 3] logits of the picture's (toy) class"},
)


def _toy_class_term(t: TermInputs) -> torch.Tensor:
    """Cross-entropy of the class head against the sign of the true mean a (a class the truth implies)."""
    label = (t.target[:, 0].mean(dim=(1, 2)) > 0).long()
    return F.cross_entropy(t.extras["class_logits"].float(), label)


@pytest.fixture
def toy_registered():
    register(TOY)(lambda options, cfg: ToyNet(options.width))
    register_term("test_toy_class", needs=TermNeeds(extras=("class_logits",)))(_toy_class_term)
    try:
        yield TOY
    finally:
        unregister("test-toy")
        unregister_term("test_toy_class")


def test_a_throwaway_backbone_plugs_in_from_this_file_alone(toy_registered, tmp_path):
    from support.split_fixtures import write_split_dir

    from aiaic.runs import checkpoint as ckpt
    from aiaic.train.config import build_train_plan
    from aiaic.train.runner import run_training

    cfg = ModelConfig(backbone="test-toy", backbone_options={"width": 6}, **HEADS)
    assert cfg.backbone_options == {"width": 6}
    with pytest.raises(ValueError, match="width must be >= 2"):
        ModelConfig(backbone="test-toy", backbone_options={"width": 1})
    with pytest.raises(ConfigError, match="test-toy.*unknown"):
        ModelConfig(backbone="test-toy", backbone_options={"depth": 3})
    # its weight set's own reader loads a file strictly
    net = build_backbone("test-toy", cfg)
    path = tmp_path / "toy.json"
    path.write_text(json.dumps({k: v.tolist() for k, v in net.state_dict().items()}))
    fresh = build_backbone("test-toy", cfg)
    fresh.load_pretrained(path, spec_of("test-toy").format_of(TOY.weights[0]))
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in net.state_dict().items())

    split = write_split_dir(
        tmp_path / "split", classes=2, videos_per_class=2, seconds=2, size=16, shards_per_split=1
    )
    model = {"backbone": "test-toy", "backbone_options": {"width": 6}, **{k: v for k, v in HEADS.items()}}
    model["semantic_channels"] = list(HEADS["semantic_channels"])
    recipe = {"model": model, "train": {"epochs": 1, "batch_size": 4, "image_size": 16, "log_every": 1}}
    plan = build_train_plan(recipe, {"shards": split, "out": tmp_path / "run", "stage": "1", "device": "cpu"})
    stage1 = plan.stages["stage1"]
    assert stage1.loss_terms() == dict(TOY.loss) and (stage1.optimizer, stage1.lr) == ("adam", 3e-3)
    assert (stage1.disc_channels, stage1.disc_blocks) == (8, 2)  # the critic's own defaults
    (result,) = run_training(plan)
    assert result.status == "trained" and result.steps >= 1
    stage = tmp_path / "run" / "stage1"
    rows = [json.loads(x) for x in (stage / "metrics.jsonl").read_text().splitlines()]
    row = next(r for r in rows if "loss_test_toy_class" in r)
    assert {"loss_l2", "loss_adversarial", "d_loss", "d_gp"} <= row.keys()
    assert row["loss"] == pytest.approx(
        row["loss_l2"] + 0.1 * row["loss_test_toy_class"] + 0.01 * row["loss_adversarial"], rel=1e-5
    )
    assert "discriminator" in torch.load(stage / ckpt.STATE, weights_only=True)
    # a term reading an extra the backbone does not give is refused when the plan is built
    with pytest.raises(ConfigError, match="class_logits.*'unet'"):
        build_train_plan(
            {"train": {"loss": {"l1": 1.0, "test_toy_class": 1.0}, "image_size": 32}},
            {"shards": split, "out": tmp_path / "o"},
        )


def test_the_guide_is_safe_before_an_in_place_relu(toy_registered):
    """ToyNet's insertion point is followed by ReLU(inplace=True); a guide whose result autograd keeps
    (sigmoid saves its output) must still train: the hook hands on a tensor of its own."""
    torch.manual_seed(0)
    net = build_backbone("test-toy", ModelConfig(backbone="test-toy"))
    L_n = _L_n(16)
    scale = torch.tensor(2.0, requires_grad=True)
    ab = net(L_n, guide=lambda h: torch.sigmoid(h * scale))
    ab.square().mean().backward()
    assert scale.grad is not None and torch.isfinite(scale.grad)
    # the same gradient as an explicit forward without in-place ops
    scale2 = torch.tensor(2.0, requires_grad=True)
    h = torch.relu(torch.sigmoid(net.decoder[0](net.encode(L_n)[0]) * scale2))
    ref = torch.tanh(net.head(net.decoder[2](h)))
    ref.square().mean().backward()
    assert torch.allclose(scale.grad, scale2.grad) and torch.allclose(ab, ref)


def test_u_net_sizes_live_in_its_options_table_and_old_runs_still_load():
    from aiaic.config import config_to_dict
    from aiaic.models.config import model_config_from_dict, model_config_from_recipe

    recipe = {"model": {"backbone_options": {"base_channels": 16, "guide_at": -1}}}
    cfg = model_config_from_recipe(recipe)
    assert cfg.options().base_channels == 16 and cfg.options().guide_at == -1
    assert cfg.backbone_options == {"base_channels": 16, "depth": 3, "norm": "batch", "guide_at": -1}
    with pytest.raises(ConfigError, match=r"base_channels.*\[model.backbone_options\]"):
        model_config_from_recipe({"model": {"base_channels": 16}})
    with pytest.raises(ConfigError, match="unet.*unknown.*widht"):
        model_config_from_recipe({"model": {"backbone_options": {"widht": 3}}})
    # the table is the recipe's backbone's: --backbone naming another one starts from that one's defaults
    other = model_config_from_recipe(recipe, {"backbone": "ddcolor-mini"})
    assert other.backbone == "ddcolor-mini" and other.backbone_options == {}
    assert model_config_from_recipe(recipe, {"backbone": "unet"}) == cfg
    # a config.json saved before the move (sizes at the top of "model") rebuilds the same network

    saved = config_to_dict(cfg)
    old = {k: v for k, v in saved.items() if k != "backbone_options"}
    old.update(base_channels=16, depth=3, norm="batch", guide_at=-1)
    assert model_config_from_dict(old) == cfg == model_config_from_dict(saved)


def test_wgan_gp_penalty_and_step_on_a_linear_critic():
    """For D(x) = sum(w * x) the gradient is w everywhere: the penalty is (|w|_2 - 1)^2 exactly, and the
    critic's step lowers D(fake) - D(real) + 10 * penalty."""
    from aiaic.train.discriminator import gradient_penalty

    class Linear(nn.Module):
        def __init__(self, channels: int, blocks: int):
            super().__init__()
            self.w = nn.Parameter(torch.full((1, 3, 4, 4), 0.5))

        def forward(self, x):
            return (x * self.w).flatten(1).sum(dim=1, keepdim=True)

    critic = Linear(0, 0)
    real, fake = torch.rand(3, 3, 4, 4), torch.rand(3, 3, 4, 4)
    expected = (critic.w.detach().norm() - 1.0) ** 2
    torch.testing.assert_close(gradient_penalty(critic, real, fake), expected)
    spec = CriticSpec(build=Linear, input="lab", loss="wgan-gp", optimizer=OptimizerDefaults("adam", 1e-2))
    trainer = build_discriminator_trainer(
        1, 1, 1e-2, (0.5, 0.9), MixedPrecision("fp32", torch.device("cpu")), DistInfo(), spec
    )
    first = trainer.step(real, fake)
    assert float(first["d_gp"]) == pytest.approx(float(expected), rel=1e-5)
    torch.testing.assert_close(
        first["d_loss"], first["d_fake"] - first["d_real"] + 10.0 * first["d_gp"], rtol=1e-5, atol=1e-6
    )
    for _ in range(20):
        last = trainer.step(real, fake)
    assert float(last["d_loss"]) < float(first["d_loss"])


def test_input_policy_sizes():
    fixed = InputPolicy(fixed_size=224)
    assert fixed.default_size == 224 and fixed.problem(224, 224) is None
    assert fixed.problem(256, 256) == "must be 224 x 224 (a fixed input size)"
    multiple = InputPolicy(size_multiple=32, default_size=512)
    assert multiple.problem(64, 96) is None and multiple.problem(48, 64) == "must be a multiple of 32"
    assert multiple.problem(0, 32) == "must be a positive multiple of 32"
    assert InputPolicy(size_multiple=8).default_size == 256
    with pytest.raises(ValueError, match="default_size 100: must be a multiple of 32"):
        InputPolicy(size_multiple=32, default_size=100)
    with pytest.raises(ValueError, match="fixed_size 100 is not a multiple of 32"):
        InputPolicy(size_multiple=32, fixed_size=100)
