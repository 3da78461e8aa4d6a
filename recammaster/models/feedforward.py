"""The feed-forward's first product with its GELU applied as cuBLASLt writes it, for inference on a GPU.

Wan's feed-forward is Linear(dim, ffn) -> GELU (tanh) -> Linear(ffn, dim). Compiled, inductor runs the product on
cuBLAS, writes it (65,520 x 8,960 bf16 at 1.3B: 1.2 GB a block), then reads it back for the GELU in a kernel of
its own. cuBLASLt can apply the GELU (its tanh form, Wan's) in the product's epilogue, before the one write
(``torch._addmm_activation``). A custom op keeps that call whole: inductor would split the aten op into a
product and a pointwise kernel again. The epilogue rounds to bf16 once, after the GELU, where the plain path
rounds before and after it: the same numbers within bf16 noise. Without gradients only; with them (training) the
plain path runs, since the backward needs the product the epilogue never writes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.library.custom_op("recammaster::linear_gelu", mutates_args=())
def linear_gelu(hidden_states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """GELU(tanh)(hidden_states W^T + b), on a GPU in one cuBLASLt call. (..., in) -> (..., out)."""
    if hidden_states.device.type != "cuda":  # the CPU's _addmm_activation applies the erf GELU, not Wan's tanh
        return F.gelu(F.linear(hidden_states, weight, bias), approximate="tanh")
    rows = hidden_states.reshape(-1, hidden_states.shape[-1])
    product = torch._addmm_activation(bias, rows, weight.t(), use_gelu=True)
    return product.view(*hidden_states.shape[:-1], weight.shape[0])


@linear_gelu.register_fake
def _linear_gelu_shape(hidden_states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return hidden_states.new_empty((*hidden_states.shape[:-1], weight.shape[0]))


class LinearGELU(nn.Module):
    """diffusers' ``GELU`` activation module (its ``proj`` and tanh GELU) through :func:`linear_gelu` when no
    gradient is asked for. Holds the same ``proj``, so the state dict keeps its keys."""

    def __init__(self, proj: nn.Linear) -> None:
        super().__init__()
        self.proj = proj

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or self.proj.bias is None:
            return F.gelu(self.proj(hidden_states), approximate="tanh")
        return linear_gelu(hidden_states, self.proj.weight, self.proj.bias)


def fuse_activation(feedforward: nn.Module) -> None:
    """Swap ``feedforward.net[0]`` (diffusers' ``GELU`` with the tanh approximation, Wan's) for :class:`LinearGELU`."""
    activation = feedforward.net[0]
    if isinstance(activation, LinearGELU):
        return
    if getattr(activation, "approximate", None) != "tanh":
        raise ValueError(f"only a tanh GELU can go into the product's epilogue, got {activation!r}")
    feedforward.net[0] = LinearGELU(activation.proj)
