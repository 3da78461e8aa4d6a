"""The queries' and keys' RMS norm and rotary embedding in one Triton kernel, for inference on a GPU.

Wan normalises the queries and keys over all heads' channels (``torch.nn.RMSNorm`` of 1,536 at 1.3B), then rotates
channel pairs by their token's angles. Compiled, inductor fuses the two into a kernel that moved 0.8 GB a block in
0.9 ms on an H200 (under a quarter of the card's bandwidth; benchmarks/RESULTS.md). This one reads each row once,
normalises it and rotates it in registers and writes it once. Its roundings are the plain path's: normalised and
scaled by the weight in float32 and rounded to the input's dtype, then rotated in float32 and rounded again.

Off the GPU the custom op computes the plain path (the models on the CPU run that); the kernel itself also runs on
CPU tensors in Triton's interpreter (``TRITON_INTERPRET=1``), which is how the tests check it.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F


def rotate_pairs(hidden_states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding: channel pairs (2i, 2i+1) rotated by the angle whose cosine and sine sit at 2i
    and 2i+1 of ``cos`` and ``sin`` (which repeat each angle twice). ``hidden_states`` (B, L, heads, D)."""
    even, odd = hidden_states.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)
    return rotated.type_as(hidden_states)


@functools.cache
def _kernel(interpreted: bool):
    """The Triton kernel, made on first use (``interpreted``: whether Triton's interpreter was asked for then; Triton
    reads it as the kernel is made)."""
    import triton

    from recammaster.models import norm_rotation_kernel

    return triton.jit(norm_rotation_kernel.norm_rotate)


def launch(
    hidden_states: torch.Tensor, weight: torch.Tensor, eps: float, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """Run the kernel: ``hidden_states`` (B, L, heads x D), ``cos`` and ``sin`` (1, >= L, 1, D), as Wan's rotary
    module gives them; on CPU tensors, in Triton's interpreter (which must have been asked for)."""
    import triton

    batch, length, width = hidden_states.shape
    head_dim = cos.shape[-1]
    source = hidden_states.contiguous()
    output = torch.empty_like(source)
    cos, sin = (angles.reshape(-1, head_dim)[:length].contiguous() for angles in (cos, sin))
    kernel = _kernel(os.environ.get("TRITON_INTERPRET", "0") == "1")
    kernel[(batch * length,)](source, weight, cos, sin, output, length, eps, width=width, head_dim=head_dim,
                              block=triton.next_power_of_2(width))  # fmt: skip
    return output


@torch.library.custom_op("recammaster::rms_norm_rotate", mutates_args=())
def rms_norm_rotate(
    hidden_states: torch.Tensor, weight: torch.Tensor, eps: float, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """RMS norm over the last axis of ``hidden_states`` (B, L, heads x D), then each head's channel pairs rotated
    (:func:`rotate_pairs`); on a GPU in one kernel."""
    if hidden_states.device.type == "cuda":
        return launch(hidden_states, weight, eps, cos, sin)
    length, head_dim = hidden_states.shape[1], cos.shape[-1]
    normalised = F.rms_norm(hidden_states, (hidden_states.shape[-1],), weight, eps).unflatten(-1, (-1, head_dim))
    return rotate_pairs(normalised, cos[:, :length], sin[:, :length]).flatten(-2)


@rms_norm_rotate.register_fake
def _rms_norm_rotate_shape(hidden_states, weight, eps, cos, sin) -> torch.Tensor:
    return torch.empty_like(hidden_states)
