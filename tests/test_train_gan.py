"""The adversarial colour-loss term: the patch discriminator learns to tell truth from prediction, trains
alongside a real stage, and is checkpointed and resumed with the rest (weights and optimizer state)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support.model_configs import TINY_MODEL  # noqa: E402
from support.split_fixtures import write_split_dir  # noqa: E402

from aiaic.runs import checkpoint as ckpt
from aiaic.train.config import build_train_plan
from aiaic.train.discriminator import DiscriminatorTrainer, PatchDiscriminator, build_discriminator_trainer
from aiaic.train.distributed import DistInfo
from aiaic.train.precision import MixedPrecision
from aiaic.train.runner import run_training

GAN_LOSS = {"huber": 1.0, "adversarial": 0.1, "colorfulness": 0.05, "perceptual": 1.0}
GAN_TRAIN = {
    "image_size": 32,
    "batch_size": 4,
    "lr": 1e-3,
    "log_every": 1,
    "disc_channels": 8,
    "disc_blocks": 2,
    "disc_lr": 3e-3,
    "loss": GAN_LOSS,
}


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gsplit") / "split"
    return write_split_dir(root, classes=2, videos_per_class=3, seconds=4, size=32, shards_per_split=4)


def _images(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Colourful 'truth' and washed-out 'predictions', RGB [8, 3, 32, 32] in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(8, 3, 32, 32, generator=g)
    grey = torch.rand(8, 1, 32, 32, generator=g)
    fake = 0.9 * grey.expand(-1, 3, -1, -1) + 0.1 * torch.rand(8, 3, 32, 32, generator=g)
    return real, fake


def test_discriminator_separates_real_from_fake():
    torch.manual_seed(0)
    amp = MixedPrecision("fp32", torch.device("cpu"))
    trainer = build_discriminator_trainer(8, 2, 3e-3, (0.9, 0.99), amp, DistInfo())
    assert trainer.module(torch.rand(2, 3, 32, 32)).shape == (2, 4 * 4)  # 32 / 2**3 = 4: a 4 x 4 patch map
    real, fake = _images(0)
    first = trainer.step(real, fake)
    for _ in range(30):
        last = trainer.step(real, fake)
    assert float(last["d_loss"]) < 0.5 * float(first["d_loss"])
    assert float(last["d_real"]) > 0.8 and float(last["d_fake"]) < 0.2
    # it generalises to unseen images of the two kinds
    real2, fake2 = _images(1)
    with torch.no_grad():
        p_real = torch.sigmoid(trainer.module(real2)).mean()
        p_fake = torch.sigmoid(trainer.module(fake2)).mean()
    assert float(p_real) > float(p_fake) + 0.5
    with pytest.raises(ValueError, match="at least 8 px"):
        trainer.module(torch.rand(1, 3, 4, 4))


def test_discriminator_state_roundtrips_through_a_weights_only_file(tmp_path):
    amp = MixedPrecision("fp32", torch.device("cpu"))
    torch.manual_seed(0)
    a = build_discriminator_trainer(8, 2, 1e-3, (0.9, 0.99), amp, DistInfo())
    a.step(*_images(0))
    torch.save({"discriminator": a.state_dict()}, tmp_path / "s.pt")
    torch.manual_seed(1)
    b = build_discriminator_trainer(8, 2, 1e-3, (0.9, 0.99), amp, DistInfo())
    b.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True)["discriminator"])
    for k, v in a.module.state_dict().items():  # weights and spectral-norm vectors
        assert torch.equal(v, b.module.state_dict()[k]), k
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    # and the next step is the same
    out_a, out_b = a.step(*_images(1)), b.step(*_images(1))
    assert torch.equal(out_a["d_loss"], out_b["d_loss"])
    assert isinstance(a, DiscriminatorTrainer) and isinstance(a.module, PatchDiscriminator)


def _run(split: Path, out: Path, epochs: int, resume: bool = False, **flags):
    recipe = {"model": dict(TINY_MODEL), "train": {**GAN_TRAIN, "epochs": epochs}}
    plan = build_train_plan(
        recipe, {"shards": split, "out": out, "stage": "baseline", "device": "cpu", "resume": resume, **flags}
    )
    return run_training(plan)


@pytest.mark.slow
def test_a_stage_with_the_adversarial_term_trains_checkpoints_and_resumes(split, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-hub"))  # no VGG16-BN: perceptual is off
    ref = tmp_path / "ref"
    _run(split, ref, epochs=6)
    d = ref / "baseline"
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["loss_terms"] == {"huber": 1.0, "adversarial": 0.1, "colorfulness": 0.05}
    assert "vgg16_bn-6c64b313.pth" in cfg["disabled_terms"]["perceptual"]
    assert cfg["train"]["loss"] == GAN_LOSS  # what the recipe asked for, beside what ran
    rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r.get("split") is None]
    assert len(train_rows) == 24  # 16 samples / batch 4 x 6 epochs
    for r in train_rows:
        assert {"loss_huber", "loss_adversarial", "loss_colorfulness"} <= r.keys()
        assert {"d_loss", "d_real", "d_fake"} <= r.keys()
        assert "loss_perceptual" not in r
        total = r["loss_huber"] + 0.1 * r["loss_adversarial"] + 0.05 * r["loss_colorfulness"]
        assert r["loss"] == pytest.approx(total, rel=1e-5)

    # the discriminator learnt: it starts at chance and ends scoring the truth above the predictions
    def mean(rows, key):
        return sum(r[key] for r in rows) / len(rows)

    head, tail = train_rows[:4], train_rows[-4:]
    assert abs(mean(head, "d_real") - mean(head, "d_fake")) < 0.05
    assert mean(tail, "d_real") - mean(tail, "d_fake") > 0.15
    assert mean(tail, "d_loss") < mean(head, "d_loss") - 0.15
    state = torch.load(d / ckpt.STATE, weights_only=True)
    assert {"weights", "optimizer"} <= state["discriminator"].keys()
    assert state["discriminator"]["optimizer"]["state"]  # Adam moments were saved

    # stopped right after its step-12 checkpoint (the end of epoch 3), then resumed to step 24
    run = tmp_path / "run"
    _run(split, run, epochs=3)
    first = torch.load(run / "baseline" / ckpt.STATE, weights_only=True)
    assert first["step"] == 12
    cfg_path = run / "baseline" / "config.json"
    cfg1 = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg1, "complete": False}))
    # (a runtime switch such as activation checkpointing may change on resume: the model is the same)
    (results,) = _run(split, run, epochs=6, resume=True, activation_checkpointing=True)
    assert results.status == "resumed" and results.steps == 24
    resumed = torch.load(run / "baseline" / ckpt.STATE, weights_only=True)
    # the resumed run ends where the uninterrupted one does: generator, discriminator and its Adam state
    a, b = load_file(str(run / "baseline" / ckpt.WEIGHTS)), load_file(str(d / ckpt.WEIGHTS))
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point()) < 1e-5
    da, db = resumed["discriminator"], state["discriminator"]
    for k in db["weights"]:
        torch.testing.assert_close(da["weights"][k], db["weights"][k], atol=1e-5, rtol=1e-4)
    for i, s in db["optimizer"]["state"].items():
        torch.testing.assert_close(da["optimizer"]["state"][i]["exp_avg"], s["exp_avg"], atol=1e-6, rtol=1e-4)
        assert int(da["optimizer"]["state"][i]["step"]) == int(s["step"]) == 24
    shutil.rmtree(run)
