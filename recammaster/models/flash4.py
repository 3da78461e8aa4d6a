"""FlashAttention-4's kernels in the form torch's FA4 registration calls them.

torch's ``register_flash_attention_fa4`` (2.11 to 2.13) takes the path of a module with ``_flash_attn_fwd``
and ``_flash_attn_bwd`` and unpacks two values from the forward; flash-attn-4's own module (4.0.0b36)
returns five, the last three for its other callers. This module hands torch the first two, and gives the
backward dense tensors (the kernels refuse broadcast ones). Imported only when ``flash4`` attention is asked
for (:func:`recammaster.models.attention.enable_flash_attention_4`).
"""

from __future__ import annotations

import torch
from flash_attn.cute import interface


def _flash_attn_fwd(*args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    out, lse = interface._flash_attn_fwd(*args, **kwargs)[:2]
    return out, lse


def _flash_attn_bwd(*tensors: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return interface._flash_attn_bwd(*(tensor.contiguous() for tensor in tensors), **kwargs)[:3]
