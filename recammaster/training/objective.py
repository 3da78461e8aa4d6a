"""ReCamMaster's training objective, free of any training framework.

Spec ``upstream-recammaster.md`` §2.5: noise the target latents to a drawn sigma, x = (1 - sigma) z + sigma eps;
put the clean source latents beside them on the frame axis; predict the velocity eps - z; the loss is the
float32 mean squared error over the target half only, times the schedule's weight for that sigma. Optional
per-position ``weights`` make that mean a weighted one (characters weighed more: ``character_weight``).

The paper trains with three robustness tricks that the released code lacks (users ask for them,
upstream issues #16 and #69); each is an option here and off by default:

- ``condition_noise``: noise the source latents too, to a sigma whose timestep lies in a range (the paper:
  200-500), so the model does not copy source pixels blindly;
- ``condition_drop``: with this probability replace a sample's source latents with zeros (the paper drops
  the condition 20% of the time), which keeps the text-and-camera-only ability;
- ``text_drop``: with this probability train on the empty caption's embedding instead of the caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from recammaster.training.schedule import TrainingSchedule


@dataclass(frozen=True)
class ConditionAugmentation:
    """The paper's training tricks; the defaults (all off) are upstream's released recipe."""

    condition_noise: tuple[float, float] | None = None
    condition_drop: float = 0.0
    text_drop: float = 0.0

    def __post_init__(self) -> None:
        for name in ("condition_drop", "text_drop"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.condition_noise is not None:
            low, high = self.condition_noise
            if not 0 <= low <= high <= 1000:
                raise ValueError(f"condition_noise is a timestep range within [0, 1000], got {self.condition_noise}")


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar: the weighted mean over the batch
    per_sample: torch.Tensor  # (B,) weighted losses
    timestep: torch.Tensor  # (B,) timesteps the DiT saw


def _broadcast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.device, torch.float32).view(-1, *([1] * (like.ndim - 1)))


def flow_matching_loss(
    transformer: nn.Module,
    target: torch.Tensor,
    source: torch.Tensor,
    text: torch.Tensor,
    camera: torch.Tensor,
    schedule: TrainingSchedule,
    generators: Sequence[torch.Generator],
    augmentation: ConditionAugmentation | None = None,
    empty_text: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> LossOutput:
    """The weighted velocity loss of one batch.

    Args:
        target, source: (B, C, F, h, w) normalised latents of the target and source clips.
        text: (B, L, D) caption embeddings; camera: (B, F, 12) target camera relative to the source.
        generators: one CPU generator per sample, for all of its random draws, so that a sample's noise
            does not depend on the batch or the GPU it lands in (its noise is drawn on the latents' device,
            seeded from it: see :func:`_gaussian`).
        empty_text: (L, D) or (1, L, D) embedding of the empty caption, needed for ``text_drop``.
        weights: (B, F, h, w) positive weights of the target's latent positions, shared by its channels; each
            sample's squared error is then their weighted mean.
    """
    augmentation = augmentation or ConditionAugmentation()
    if len(generators) != len(target):
        raise ValueError(f"{len(generators)} generators for a batch of {len(target)}")
    if augmentation.text_drop > 0 and empty_text is None:
        raise ValueError("text_drop needs the empty caption's embedding (empty_text)")
    device = target.device
    draws = [_draw(schedule, augmentation, generator, target.shape[1:], device) for generator in generators]
    target, source = target.float(), source.float()
    sigma = _broadcast(torch.stack([d.sigma for d in draws]), target)
    noise = torch.stack([d.noise for d in draws])
    noisy = (1 - sigma) * target + sigma * noise

    if augmentation.condition_noise is not None:
        condition_sigma = _broadcast(torch.stack([d.condition_sigma for d in draws]), source)
        source_noise = torch.stack([d.condition_noise for d in draws])
        source = (1 - condition_sigma) * source + condition_sigma * source_noise
    if augmentation.condition_drop > 0:
        source = source * _broadcast(torch.tensor([0.0 if d.drop_condition else 1.0 for d in draws]), source)
    if augmentation.text_drop > 0:
        drop = torch.tensor([d.drop_text for d in draws], device=device)
        text = torch.where(drop[:, None, None], empty_text.reshape(1, *text.shape[1:]).to(text), text)

    model_input = torch.cat([noisy, source], dim=2)
    timestep = torch.stack([d.timestep for d in draws]).to(device)
    weight = torch.stack([d.weight for d in draws]).to(device)
    predicted = transformer(model_input, timestep, text.float(), camera.float(), source_velocity=False).sample
    squared_error = (predicted.float() - (noise - target)) ** 2
    if weights is None:
        per_sample = squared_error.flatten(1).mean(dim=1) * weight
    else:
        weights = weights.float().unsqueeze(1).expand_as(squared_error)
        per_sample = (squared_error * weights).flatten(1).sum(dim=1) / weights.flatten(1).sum(dim=1) * weight
    return LossOutput(per_sample.mean(), per_sample.detach(), timestep)


@dataclass
class _SampleDraws:
    timestep: torch.Tensor
    sigma: torch.Tensor
    weight: torch.Tensor
    noise: torch.Tensor
    condition_sigma: torch.Tensor | None
    condition_noise: torch.Tensor | None
    drop_condition: bool
    drop_text: bool


def _gaussian(shape: torch.Size, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Standard normal noise made on ``device`` by a generator of that device, seeded from the sample's generator.

    Drawing a batch's noise on the host (32 clips of 16 x 21 x 32 x 32: 75 ms on one CPU core) and copying it over
    kept a small model's training host-bound, the GPU mostly idle; a device generator per sample still keeps each
    sample's noise independent of its batch and of the GPU it lands on.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.randn(shape, generator=torch.Generator(device).manual_seed(seed), device=device)


def _draw(
    schedule: TrainingSchedule,
    augmentation: ConditionAugmentation,
    generator: torch.Generator,
    shape: torch.Size,
    device: torch.device,
) -> _SampleDraws:
    """One sample's random draws, in a fixed order: noise level, noise, then each enabled trick's."""
    level = schedule.draw(1, generator)
    noise = _gaussian(shape, generator, device)
    condition_sigma = condition_noise = None
    if augmentation.condition_noise is not None:
        condition_sigma = schedule.between(*augmentation.condition_noise, 1, generator)[0]
        condition_noise = _gaussian(shape, generator, device)
    drop_condition = (
        augmentation.condition_drop > 0 and torch.rand(1, generator=generator).item() < augmentation.condition_drop
    )
    drop_text = augmentation.text_drop > 0 and torch.rand(1, generator=generator).item() < augmentation.text_drop
    return _SampleDraws(level.timestep[0], level.sigma[0], level.weight[0], noise, condition_sigma, condition_noise,
                        drop_condition, drop_text)  # fmt: skip
