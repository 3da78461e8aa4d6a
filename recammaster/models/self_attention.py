"""Wan's self-attention in two halves, for the callers that change what goes between them or how.

diffusers' ``WanAttnProcessor`` projects, normalises and rotates queries and keys, runs the kernel and projects the
output, all in one call that needs as many queries as keys. Three ReCamMaster paths need otherwise: the source-token
cache (:mod:`recammaster.models.source_cache`) adds recorded keys and values, the last block of a forward whose
source velocity nobody reads computes the target tokens' queries alone, and on a GPU the queries' and keys' norm
and rotation can run as one kernel (:mod:`recammaster.models.norm_rotation`; :class:`SelfAttentionProcessor`).
All compute what the processor computes, the same operations in the same order.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from torch import nn

from recammaster.models.norm_rotation import rms_norm_rotate, rotate_pairs


def _norm_rotate(projected: torch.Tensor, norm: nn.Module, cos: torch.Tensor, sin: torch.Tensor, heads: int):
    """The fused kernel's path: (B, L, dim) -> (B, L, heads, D)."""
    eps = norm.eps if norm.eps is not None else torch.finfo(projected.dtype).eps
    return rms_norm_rotate(projected, norm.weight, eps, cos, sin).unflatten(2, (heads, -1))


def queries_keys_values(
    attn: nn.Module,
    hidden_states: torch.Tensor,
    rotary_emb: tuple[torch.Tensor, torch.Tensor],
    query_tokens: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L, heads, D) queries, keys and values of ``hidden_states`` (B, L, dim), queries and keys normalised and
    rotated; ``query_tokens`` n: the queries of the first n tokens alone (keys and values of all). With the
    attention's ``fused_norm_rotation`` set and no gradient asked for, the norm and rotation run as one op."""
    queries_from = hidden_states if query_tokens is None else hidden_states[:, :query_tokens]
    cos, sin = rotary_emb
    value = attn.to_v(hidden_states).unflatten(2, (attn.heads, -1))
    if getattr(attn, "fused_norm_rotation", False) and not torch.is_grad_enabled():
        query = _norm_rotate(attn.to_q(queries_from), attn.norm_q, cos, sin, attn.heads)
        return query, _norm_rotate(attn.to_k(hidden_states), attn.norm_k, cos, sin, attn.heads), value
    query = attn.norm_q(attn.to_q(queries_from)).unflatten(2, (attn.heads, -1))
    key = attn.norm_k(attn.to_k(hidden_states)).unflatten(2, (attn.heads, -1))
    return rotate_pairs(query, cos[:, : query.shape[1]], sin[:, : query.shape[1]]), rotate_pairs(key, cos, sin), value


def attend(
    attn: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, backend, parallel_config=None
) -> torch.Tensor:
    """The kernel (diffusers' ``backend``) and the output projection: (B, Lq, heads, D) -> (B, Lq, dim)."""
    output = dispatch_attention_fn(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, backend=backend,
                                   parallel_config=parallel_config)  # fmt: skip
    return attn.to_out[1](attn.to_out[0](output.flatten(2, 3).type_as(query)))


class SelfAttentionProcessor:
    """diffusers' ``WanAttnProcessor`` for a self-attention, through :func:`queries_keys_values` and :func:`attend`
    (so that its norm and rotation can be fused); keeps the attention backend and context parallelism it replaces."""

    def __init__(self, replaced) -> None:
        self._attention_backend = getattr(replaced, "_attention_backend", None)
        self._parallel_config = getattr(replaced, "_parallel_config", None)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("SelfAttentionProcessor computes self-attention without a mask")
        query, key, value = queries_keys_values(attn, hidden_states, rotary_emb)
        return attend(attn, query, key, value, self._attention_backend, self._parallel_config)
