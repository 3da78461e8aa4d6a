"""Selective activation checkpointing: recompute a block in the backward pass, except its self-attention.

Plain gradient checkpointing runs each block's forward twice; at ReCamMaster's 65,520 tokens the second run is
mostly the self-attention kernel (70% of a forward). Keeping that kernel's output (and its log-sum-exp) costs
one (tokens x width) tensor per block, 0.2 GB at 1.3B, and saves the kernel's second run; everything else (norms,
projections, the feed-forward) is recomputed as before. The cross-attention to the 512 text tokens is cheap to
recompute and is not kept.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

_aten = torch.ops.aten
ATTENTION_KERNELS = frozenset({
    _aten._scaled_dot_product_flash_attention.default,
    _aten._scaled_dot_product_cudnn_attention.default,
    _aten._scaled_dot_product_efficient_attention.default,
    _aten._scaled_dot_product_flash_attention_for_cpu.default,
})  # fmt: skip


def _keep_self_attention(_context, operator, *arguments, **_keywords) -> CheckpointPolicy:
    """Keep an attention kernel's outputs when keys are at least as many as queries (self-attention; the last block
    of a forward without source velocity has half as many queries), recompute the rest (the text's 512 keys)."""
    if operator in ATTENTION_KERNELS and arguments[1].shape[-2] >= arguments[0].shape[-2]:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def keep_self_attention_contexts():
    """The ``context_fn`` of ``torch.utils.checkpoint.checkpoint`` for this policy."""
    return create_selective_checkpoint_contexts(_keep_self_attention)


def checkpoint_keeping_attention(function, *arguments):
    """``function(*arguments)``, its activations recomputed in the backward pass except self-attention's."""
    return torch.utils.checkpoint.checkpoint(function, *arguments, use_reentrant=False,
                                             context_fn=keep_self_attention_contexts)  # fmt: skip
