"""ReCamMaster's sampler: flow-matching Euler steps on upstream's shifted sigma schedule.

Upstream (DiffSynth's ``FlowMatchScheduler`` with shift 5, sigma_min 0 and ``extra_one_step``; spec
``upstream-recammaster.md`` §4.5) samples with s_i = linspace(1, 0, N + 1)[:N], sigma_i = shift s_i /
(1 + (shift - 1) s_i), timestep t_i = 1000 sigma_i, and after the last step sigma = 0. Each Euler step is
z <- z + v (sigma_{i+1} - sigma_i) with v the predicted velocity (noise - clean). Both are pure functions
here, computed in float32 exactly as upstream does; the pipeline supplies the velocity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NUM_TRAIN_TIMESTEPS = 1000
DEFAULT_SHIFT = 5.0


def flow_match_sigmas(num_steps: int, shift: float = DEFAULT_SHIFT) -> torch.Tensor:
    """The ``num_steps`` sigmas of upstream's schedule followed by the final 0: (num_steps + 1,) float32."""
    if num_steps < 1:
        raise ValueError(f"num_inference_steps must be at least 1, got {num_steps}")
    sigmas = torch.linspace(1.0, 0.0, num_steps + 1)[:-1]
    sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
    return torch.cat([sigmas, torch.zeros(1)])


def euler_sample(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    sigmas: torch.Tensor,
    callback: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """Integrate from sigmas[0] to sigmas[-1]: ``velocity(latents, timestep)`` with timestep = 1000 sigma.

    ``callback(step, latents)`` runs after every step and may return replacement latents. The latents
    keep their dtype (bf16 in upstream's loop).
    """
    timesteps = sigmas * NUM_TRAIN_TIMESTEPS
    for step in range(len(sigmas) - 1):
        predicted = velocity(latents, timesteps[step])
        latents = latents + predicted * (sigmas[step + 1] - sigmas[step])
        if callback is not None and (replaced := callback(step, latents)) is not None:
            latents = replaced
    return latents


def adams_bashforth_sample(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    sigmas: torch.Tensor,
    callback: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """The same integration as :func:`euler_sample`, second order: one velocity a step, as Euler, but each step
    extrapolates the velocity linearly from this step's and the last one's (two-step Adams-Bashforth with
    variable step sizes; the first step is Euler's). Its error falls with the square of the step size, so fewer
    steps reach Euler's accuracy: a speed lever whose quality cost is measured in ``benchmarks/RESULTS.md``.
    """
    timesteps = sigmas * NUM_TRAIN_TIMESTEPS
    previous: tuple[torch.Tensor, torch.Tensor] | None = None  # (velocity, step size) of the last step
    for step in range(len(sigmas) - 1):
        predicted = velocity(latents, timesteps[step])
        size = sigmas[step + 1] - sigmas[step]
        slope = predicted
        if previous is not None:
            ratio = size / (2 * previous[1])
            slope = (1 + ratio) * predicted - ratio * previous[0]
        latents = latents + slope * size
        previous = (predicted, size)
        if callback is not None and (replaced := callback(step, latents)) is not None:
            latents = replaced
    return latents


SOLVERS = {"euler": euler_sample, "ab2": adams_bashforth_sample}
