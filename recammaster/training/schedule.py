"""Training schedules: upstream's noise levels (which one a step trains on, how much its loss counts) and
the learning rate's warm-up and decay (upstream keeps the rate constant).

Spec ``upstream-recammaster.md`` §2.5: the 1000 training sigmas are the sampler's schedule with 1000
steps (shift 5), t_i = 1000 sigma_i. A step draws i uniformly, rounds t_i to bfloat16 (the DiT sees that
rounded t), and then trains on the sigma, and with the weight, of the schedule entry nearest the rounded
t. The weight is a Gaussian bump around t = 500, shifted to 0 at its minimum and scaled to mean 1.

The bump all but ignores the noisiest draws (sigma > 0.9: 36% of the draws, 10% of the loss; t = 1000 weighs 0),
where the noisy target tells nothing and the model must infer it from the source and the camera. ``weighting="flat"``
weighs every draw 1. Tried on the embedded default (configs/embedded-4x4c-chars16-flat.yaml), it gained nothing
over the bump (docs/embedded.md, "Where the characters come from").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recammaster.pipeline.sampler import DEFAULT_SHIFT, NUM_TRAIN_TIMESTEPS, flow_match_sigmas


def loss_weights(timesteps: torch.Tensor) -> torch.Tensor:
    """w_i = y_i' * N / sum(y') with y_i = exp(-2 ((t_i - 500) / 1000)^2) and y' = y - min(y)."""
    bump = torch.exp(-2 * ((timesteps - NUM_TRAIN_TIMESTEPS / 2) / NUM_TRAIN_TIMESTEPS) ** 2)
    bump = bump - bump.min()
    return bump * len(timesteps) / bump.sum()


@dataclass(frozen=True)
class TrainingDraw:
    """One sample's noise level: ``timestep`` as the DiT sees it (bf16-rounded), ``sigma`` and loss ``weight``."""

    timestep: torch.Tensor
    sigma: torch.Tensor
    weight: torch.Tensor


TIMESTEP_WEIGHTINGS = ("upstream", "flat")


class TrainingSchedule:
    """The 1000-entry training schedule, with upstream's draw (index, bf16 rounding, nearest entry) and loss
    weights (``weighting``: ``upstream``'s bump, or ``flat``, every noise level alike)."""

    def __init__(
        self, num_timesteps: int = NUM_TRAIN_TIMESTEPS, shift: float = DEFAULT_SHIFT, weighting: str = "upstream"
    ) -> None:
        if weighting not in TIMESTEP_WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(TIMESTEP_WEIGHTINGS)}, got {weighting!r}")
        self.sigmas = flow_match_sigmas(num_timesteps, shift)[:-1]
        self.timesteps = self.sigmas * NUM_TRAIN_TIMESTEPS
        self.weights = loss_weights(self.timesteps) if weighting == "upstream" else torch.ones_like(self.timesteps)

    def nearest(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Index of the schedule entry nearest each timestep (the first one on a tie, as argmin)."""
        return (self.timesteps[None, :] - timesteps.float()[:, None]).abs().argmin(dim=1)

    def draw(self, batch_size: int, generator: torch.Generator | None = None) -> TrainingDraw:
        """``batch_size`` noise levels, each from a uniform index, as upstream draws one per sample."""
        index = torch.randint(0, len(self.timesteps), (batch_size,), generator=generator)
        timestep = self.timesteps[index].to(torch.bfloat16)
        entry = self.nearest(timestep)
        return TrainingDraw(timestep.float(), self.sigmas[entry], self.weights[entry])

    def between(self, low: float, high: float, batch_size: int, generator: torch.Generator | None = None):
        """Sigmas of uniform random schedule entries with low <= t <= high (for noising the condition)."""
        inside = torch.nonzero((self.timesteps >= low) & (self.timesteps <= high)).flatten()
        if len(inside) == 0:
            raise ValueError(f"no training timestep lies in [{low}, {high}]")
        return self.sigmas[inside[torch.randint(0, len(inside), (batch_size,), generator=generator)]]


@dataclass(frozen=True)
class RateSchedule:
    """Warm-up, stable, decay: the rate rises linearly over ``warmup_steps``, stays, and falls linearly to 0
    over the last ``decay_steps`` before ``max_steps``. Warm-up spares a run started from saved weights
    (``init_checkpoint``) AdamW's full-size first steps; the decay ends a run on a lower loss than a
    constant rate reaches. Zero steps of both is upstream's constant rate.
    """

    warmup_steps: int = 0
    decay_steps: int = 0
    max_steps: int = 0

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or self.decay_steps < 0:
            raise ValueError(f"warm-up and decay steps must not be negative: {self.warmup_steps}, {self.decay_steps}")
        if self.warmup_steps + self.decay_steps > self.max_steps and not self.constant:
            raise ValueError(f"warm-up ({self.warmup_steps}) and decay ({self.decay_steps}) steps do not fit in "
                             f"max_steps ({self.max_steps})")  # fmt: skip

    @property
    def constant(self) -> bool:
        return self.warmup_steps == 0 and self.decay_steps == 0

    def factor(self, step: int) -> float:
        """The multiple of the learning rate for optimizer step ``step`` (0-based)."""
        warm = min(1.0, (step + 1) / (self.warmup_steps + 1))
        left = self.max_steps - step
        return warm * (min(1.0, left / self.decay_steps) if self.decay_steps else 1.0)
