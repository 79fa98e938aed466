"""The critic of the adversarial colour-loss term: its training step and its losses.

The critic's architecture comes from the backbone's spec (`BackboneSpec.critic`, a `CriticSpec`; the
default is DDColor's `PatchDiscriminator` of `aiaic.models.critics`, re-exported here), and so does
its loss:
- "vanilla" (DDColor's recipe): BCE with real = 1 on the truth, fake = 0 on the prediction;
- "wgan-gp" (ChromaGAN's): mean D(fake) - mean D(real) + gp_weight * mean (|grad_x D(x)|_2 - 1)^2 at
  x = eps * real + (1 - eps) * fake, eps ~ U(0, 1) per sample.

`DiscriminatorTrainer` trains it alongside the colorizer (DDColor: Adam lr 1e-4, betas (0.9, 0.99)):
one step after each of the colorizer's, on the same batch. Under torchrun it is wrapped in its own
DistributedDataParallel. Its weights and optimizer state go into the stage's checkpoint (state.pt).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aiaic.models.backbone_spec import CriticSpec, OptimizerDefaults
from aiaic.models.critics import PATCH_CRITIC, PatchDiscriminator, SelfAttention
from aiaic.runs.checkpoint import model_tensors
from aiaic.train.distributed import DistInfo, wrap_ddp
from aiaic.train.precision import MixedPrecision

__all__ = [
    "DiscriminatorTrainer",
    "PatchDiscriminator",
    "SelfAttention",
    "build_discriminator_trainer",
    "discriminator_loss",
    "gradient_penalty",
]


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(D(real), 1) + BCE(D(fake), 0), each a mean over patches and samples (DDColor's l_d)."""
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty: mean over samples of (|grad_x D(x)|_2 - 1)^2 at x = eps * real + (1 - eps) *
    fake, eps ~ U(0, 1) per sample ([B, 3, H, W] each; computed in float32, with the graph kept so the
    penalty trains the critic)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=torch.float32)
    x = (eps * real.float() + (1.0 - eps) * fake.float()).requires_grad_(True)
    scores = critic(x).float()
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).square().mean()


class DiscriminatorTrainer:
    """The discriminator, its optimizer, and the step that trains it after each colorizer step.

    Args:
        discriminator: the module (on the training device).
        optimizer: optimises `discriminator.parameters()`.
        amp: the loop's mixed precision (shared gradient scaler).
        dist_info: wraps the module in DistributedDataParallel when a process group exists.
        critic: its spec (input and loss); DDColor's vanilla patch critic when not given.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        optimizer: torch.optim.Optimizer,
        amp: MixedPrecision,
        dist_info: DistInfo,
        critic: CriticSpec | None = None,
    ):
        self.module = discriminator
        self.optimizer = optimizer
        self.amp = amp
        self.spec = critic or PATCH_CRITIC
        self.wrapped = wrap_ddp(discriminator, dist_info)

    def step(self, real_x: torch.Tensor, fake_x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step on what the critic reads (`CriticSpec.input`: RGB or cat(L_n, ab_n),
        [B, 3, H, W]) of the truth and of the (detached) prediction.

        Returns {"d_loss", "d_real", "d_fake"}: the loss and, for a vanilla GAN, D's mean probability
        of "real" on each (for WGAN-GP its mean score on each, and "d_gp", the gradient penalty).
        """
        self.module.train()
        self.module.requires_grad_(True)
        n = real_x.shape[0]
        real_x, fake_x = real_x.detach(), fake_x.detach()
        with self.amp.autocast():  # one pass over both halves: no batch norm couples them
            logits = self.wrapped(torch.cat([real_x, fake_x])).float()
        real, fake = logits[:n], logits[n:]
        extra: dict[str, torch.Tensor] = {}
        if self.spec.loss == "wgan-gp":
            gp = gradient_penalty(self.wrapped, real_x, fake_x)
            loss = fake.mean() - real.mean() + self.spec.gp_weight * gp
            extra["d_gp"] = gp.detach()
        else:
            loss = discriminator_loss(real, fake)
        self.optimizer.zero_grad(set_to_none=True)
        self.amp.backward(loss)
        self.amp.step(self.optimizer)
        with torch.no_grad():
            if self.spec.loss == "wgan-gp":
                return {"d_loss": loss.detach(), "d_real": real.mean(), "d_fake": fake.mean(), **extra}
            return {
                "d_loss": loss.detach(),
                "d_real": torch.sigmoid(real).mean(),
                "d_fake": torch.sigmoid(fake).mean(),
            }

    def state_dict(self) -> dict[str, Any]:
        """{"weights": the module's tensors (CPU), "optimizer": its state} (weights_only-loadable)."""
        return {
            "weights": model_tensors(self.module),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["weights"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])


def build_discriminator_trainer(
    channels: int,
    blocks: int,
    lr: float,
    betas: tuple[float, ...],
    amp: MixedPrecision,
    dist_info: DistInfo,
    critic: CriticSpec | None = None,
) -> DiscriminatorTrainer:
    """A fresh critic (`critic.build(channels, blocks)`; DDColor's PatchDiscriminator by default) on the
    rank's device with its optimizer (`critic.optimizer`'s kind and weight decay, at `lr` and `betas`)."""
    spec = critic or PATCH_CRITIC
    disc = spec.build(channels, blocks).to(dist_info.device)
    opt = _critic_optimizer(spec.optimizer, disc.parameters(), lr, (betas[0], betas[1]))
    return DiscriminatorTrainer(disc, opt, amp, dist_info, spec)


def _critic_optimizer(
    opt: OptimizerDefaults, params: Any, lr: float, betas: tuple[float, float]
) -> torch.optim.Optimizer:
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=opt.weight_decay)
    if opt.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=opt.weight_decay)
    if opt.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=opt.weight_decay)
    raise ValueError(f"unknown critic optimizer {opt.name!r}; one of adam, adamw, rmsprop")
