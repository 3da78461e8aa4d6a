"""An independent umT5 encoder, written from spec §9 alone, over a state dict in the official Wan layout.

Plain torch functions, no transformers: the tests compare ``recammaster.models.text_encoder`` (transformers'
``UMT5EncoderModel`` fed through our rename table) against this. The relative position buckets are computed
with Python's ``math`` per distance, deliberately unlike transformers' tensor formula.
Spec: ``shared/spec/upstream-recammaster.md`` §9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ReferenceConfig:
    vocab_size: int = 128
    dim: int = 32
    num_heads: int = 4
    head_dim: int = 8  # attention width = num_heads * head_dim (4096 = 64 * 64 in umT5-XXL)
    ffn_dim: int = 64
    num_layers: int = 2
    num_buckets: int = 32  # both directions together
    max_distance: int = 128
    eps: float = 1e-6


def random_official_state_dict(
    config: ReferenceConfig, *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Random weights under the official key names and shapes (spec §9), scaled so activations stay O(1)."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int, std: float) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator, dtype=torch.float64) * std).to(dtype)

    def norm_weight() -> torch.Tensor:
        return (1.0 + 0.1 * torch.randn(config.dim, generator=generator, dtype=torch.float64)).to(dtype)

    attn_dim = config.num_heads * config.head_dim
    state_dict = {"token_embedding.weight": randn(config.vocab_size, config.dim, std=1.0)}
    for i in range(config.num_layers):
        state_dict[f"blocks.{i}.norm1.weight"] = norm_weight()
        for name in "qkv":
            # No 1/sqrt(d) in T5 attention: keep q.k of order 1 through the weights instead.
            state_dict[f"blocks.{i}.attn.{name}.weight"] = randn(attn_dim, config.dim, std=config.dim**-0.5)
        state_dict[f"blocks.{i}.attn.o.weight"] = randn(config.dim, attn_dim, std=attn_dim**-0.5)
        state_dict[f"blocks.{i}.norm2.weight"] = norm_weight()
        state_dict[f"blocks.{i}.ffn.gate.0.weight"] = randn(config.ffn_dim, config.dim, std=config.dim**-0.5)
        state_dict[f"blocks.{i}.ffn.fc1.weight"] = randn(config.ffn_dim, config.dim, std=config.dim**-0.5)
        state_dict[f"blocks.{i}.ffn.fc2.weight"] = randn(config.dim, config.ffn_dim, std=config.ffn_dim**-0.5)
        state_dict[f"blocks.{i}.pos_embedding.embedding.weight"] = randn(config.num_buckets, config.num_heads, std=1.0)
    state_dict["norm.weight"] = norm_weight()
    return state_dict


def relative_position_bucket(rel: int, num_buckets: int, max_distance: int) -> int:
    """Bidirectional bucket of rel = key_pos - query_pos: exact below half/2, logarithmic up to max_distance."""
    half = num_buckets // 2
    exact = half // 2
    bucket = half if rel > 0 else 0
    n = abs(rel)
    if n < exact:
        return bucket + n
    logarithmic = exact + math.floor(math.log(n / exact) / math.log(max_distance / exact) * (half - exact))
    return bucket + min(half - 1, logarithmic)


def position_bias(table: torch.Tensor, length: int, num_buckets: int, max_distance: int) -> torch.Tensor:
    """(num_buckets, heads) embedding -> additive bias (1, heads, Lq, Lk)."""
    buckets = torch.tensor(
        [[relative_position_bucket(k - q, num_buckets, max_distance) for k in range(length)] for q in range(length)]
    )
    return table[buckets].permute(2, 0, 1)[None]


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """T5's RMSNorm: no mean subtraction, computed in (at least) float32, cast back, then scaled."""
    x = _at_least_float32(x)
    normed = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight * normed.to(weight.dtype)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def self_attention(
    x: torch.Tensor, weights: dict[str, torch.Tensor], prefix: str, mask: torch.Tensor, bias: torch.Tensor, heads: int
) -> torch.Tensor:
    b, length, _ = x.shape

    def split_heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, length, heads, -1)

    q = split_heads(x @ weights[f"{prefix}.q.weight"].T)
    k = split_heads(x @ weights[f"{prefix}.k.weight"].T)
    v = split_heads(x @ weights[f"{prefix}.v.weight"].T)
    logits = torch.einsum("bqhc,bkhc->bhqk", q, k) + bias  # no 1/sqrt(d)
    logits = logits.masked_fill(mask[:, None, None, :] == 0, torch.finfo(logits.dtype).min)
    probs = torch.softmax(_at_least_float32(logits), dim=-1).to(x.dtype)
    out = torch.einsum("bhqk,bkhc->bqhc", probs, v).reshape(b, length, -1)
    return out @ weights[f"{prefix}.o.weight"].T


def feed_forward(x: torch.Tensor, weights: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    gate = gelu_tanh(x @ weights[f"{prefix}.gate.0.weight"].T)
    return (x @ weights[f"{prefix}.fc1.weight"].T * gate) @ weights[f"{prefix}.fc2.weight"].T


def umt5_encoder(
    weights: dict[str, torch.Tensor], input_ids: torch.Tensor, mask: torch.Tensor, config: ReferenceConfig
) -> torch.Tensor:
    """(B, L) token ids and 0/1 mask -> (B, L, dim) final hidden states, in the weights' dtype."""
    x = weights["token_embedding.weight"][input_ids]
    length = input_ids.shape[1]
    for i in range(config.num_layers):
        bias = position_bias(
            weights[f"blocks.{i}.pos_embedding.embedding.weight"], length, config.num_buckets, config.max_distance
        )
        h = rms_norm(x, weights[f"blocks.{i}.norm1.weight"], config.eps)
        x = x + self_attention(h, weights, f"blocks.{i}.attn", mask, bias, config.num_heads)
        h = rms_norm(x, weights[f"blocks.{i}.norm2.weight"], config.eps)
        x = x + feed_forward(h, weights, f"blocks.{i}.ffn")
    return rms_norm(x, weights["norm.weight"], config.eps)
