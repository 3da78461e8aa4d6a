"""Wan's self-attention in two halves, for the callers that change what goes between them.

diffusers' ``WanAttnProcessor`` projects, normalises and rotates queries and keys, runs the kernel and projects the
output, all in one call that needs as many queries as keys. Two ReCamMaster paths need less than that: the
source-token cache (:mod:`recammaster.models.source_cache`) adds recorded keys and values, and the last block of a
forward whose source velocity nobody reads computes the target tokens' queries alone. Both compute what the
processor computes, the same operations in the same order.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from torch import nn


def rotate_pairs(hidden_states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding: channel pairs (2i, 2i+1) rotated by the angle whose cosine and sine sit at 2i
    and 2i+1 of ``cos`` and ``sin`` (which repeat each angle twice). ``hidden_states`` (B, L, heads, D)."""
    even, odd = hidden_states.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)
    return rotated.type_as(hidden_states)


def queries_keys_values(
    attn: nn.Module,
    hidden_states: torch.Tensor,
    rotary_emb: tuple[torch.Tensor, torch.Tensor],
    query_tokens: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L, heads, D) queries, keys and values of ``hidden_states`` (B, L, dim), queries and keys normalised and
    rotated; ``query_tokens`` n: the queries of the first n tokens alone (keys and values of all)."""
    queries_from = hidden_states if query_tokens is None else hidden_states[:, :query_tokens]
    query = attn.norm_q(attn.to_q(queries_from)).unflatten(2, (attn.heads, -1))
    key = attn.norm_k(attn.to_k(hidden_states)).unflatten(2, (attn.heads, -1))
    value = attn.to_v(hidden_states).unflatten(2, (attn.heads, -1))
    cos, sin = rotary_emb
    return rotate_pairs(query, cos[:, : query.shape[1]], sin[:, : query.shape[1]]), rotate_pairs(key, cos, sin), value


def attend(attn: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, backend) -> torch.Tensor:
    """The kernel (diffusers' ``backend``) and the output projection: (B, Lq, heads, D) -> (B, Lq, dim)."""
    output = dispatch_attention_fn(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, backend=backend)
    return attn.to_out[1](attn.to_out[0](output.flatten(2, 3).type_as(query)))
