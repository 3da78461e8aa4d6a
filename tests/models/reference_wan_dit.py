"""An independent reference of the ReCamMaster DiT, written from spec ``upstream-recammaster.md`` §1.3 and §2.2.

Plain float64 torch functions over a state dict in the OFFICIAL key layout, with explicit softmax
attention and complex-number RoPE: deliberately unlike diffusers' modules, so agreement means the
model (and the key conversion) computes what upstream computes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-6


def random_official_state_dict(config: dict, seed: int = 0, camera: bool = True) -> dict[str, torch.Tensor]:
    """Random weights in the official layout for a (tiny) config; camera layers random too when asked."""
    generator = torch.Generator().manual_seed(seed)
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    ffn, text, freq = config["ffn_dim"], config["text_dim"], config["freq_dim"]
    c_in, c_out = config["in_channels"], config["out_channels"]
    pt, ph, pw = config["patch_size"]

    def rand(*shape, scale=None):
        fan_in = shape[-1] if len(shape) > 1 else 1
        scale = scale if scale is not None else 1 / math.sqrt(fan_in)
        return torch.randn(*shape, generator=generator) * scale

    state = {
        "patch_embedding.weight": rand(dim, c_in, pt, ph, pw, scale=1 / math.sqrt(c_in * pt * ph * pw)),
        "patch_embedding.bias": rand(dim, scale=0.1),
        "text_embedding.0.weight": rand(dim, text), "text_embedding.0.bias": rand(dim, scale=0.1),
        "text_embedding.2.weight": rand(dim, dim), "text_embedding.2.bias": rand(dim, scale=0.1),
        "time_embedding.0.weight": rand(dim, freq), "time_embedding.0.bias": rand(dim, scale=0.1),
        "time_embedding.2.weight": rand(dim, dim), "time_embedding.2.bias": rand(dim, scale=0.1),
        "time_projection.1.weight": rand(6 * dim, dim), "time_projection.1.bias": rand(6 * dim, scale=0.1),
        "head.modulation": rand(1, 2, dim, scale=0.1),
        "head.head.weight": rand(c_out * pt * ph * pw, dim), "head.head.bias": rand(c_out * pt * ph * pw, scale=0.1),
    }  # fmt: skip
    for i in range(config["num_layers"]):
        block = {"modulation": rand(1, 6, dim, scale=0.1)}
        for attention in ("self_attn", "cross_attn"):
            for part in "qkvo":
                block[f"{attention}.{part}.weight"] = rand(dim, dim)
                block[f"{attention}.{part}.bias"] = rand(dim, scale=0.1)
            block[f"{attention}.norm_q.weight"] = 1 + rand(dim, scale=0.1)
            block[f"{attention}.norm_k.weight"] = 1 + rand(dim, scale=0.1)
        block["norm3.weight"] = 1 + rand(dim, scale=0.1)
        block["norm3.bias"] = rand(dim, scale=0.1)
        block["ffn.0.weight"], block["ffn.0.bias"] = rand(ffn, dim), rand(ffn, scale=0.1)
        block["ffn.2.weight"], block["ffn.2.bias"] = rand(dim, ffn), rand(dim, scale=0.1)
        if camera:
            block["cam_encoder.weight"], block["cam_encoder.bias"] = rand(dim, 12, scale=0.3), rand(dim, scale=0.1)
            block["projector.weight"] = torch.eye(dim) + rand(dim, dim, scale=0.3 / math.sqrt(dim))
            block["projector.bias"] = rand(dim, scale=0.1)
        state.update({f"blocks.{i}.{key}": value for key, value in block.items()})
    return state


def _linear(x, state, name):
    return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]


def _layer_norm(x):
    return F.layer_norm(x, x.shape[-1:], eps=EPS)


def _rms_norm(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * weight


def _rope_factors(head_dim: int, frames: int, rows: int, columns: int) -> torch.Tensor:
    """Complex factors (tokens, head_dim / 2): frame | height | width parts, positions from 0."""
    pairs = head_dim // 2
    split = [pairs - 2 * (pairs // 3), pairs // 3, pairs // 3]
    tables = []
    for size in split:
        omega = 10000.0 ** (-torch.arange(size, dtype=torch.float64) * 2 / (2 * size))
        tables.append(lambda pos, omega=omega: torch.polar(torch.ones_like(omega), pos * omega))
    factors = []
    for f in range(frames):
        for h in range(rows):
            for w in range(columns):
                factors.append(torch.cat([tables[0](f), tables[1](h), tables[2](w)]))
    return torch.stack(factors)


def _apply_rope(x, factors):
    """x (B, L, heads, head_dim): adjacent pairs are (real, imaginary)."""
    complex_x = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(complex_x * factors[None, :, None, :]).flatten(-2)


def _attention(q, k, v, heads):
    b, lq, d = q.shape
    q, k, v = (t.reshape(b, -1, heads, d // heads).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
    return (weights @ v).transpose(1, 2).reshape(b, lq, d)


def reference_forward(state, config, latents, timestep, context, camera):
    """latents (B, C, F, H, W) target+source; timestep (B,); context (B, L, text_dim); camera (B, Fc, 12)."""
    s = {key: value.double() for key, value in state.items()}
    latents, context, camera = latents.double(), context.double(), camera.double()
    heads, head_dim = config["num_attention_heads"], config["attention_head_dim"]
    dim = heads * head_dim
    pt, ph, pw = config["patch_size"]
    b, _, frames, height, width = latents.shape
    fp, hp, wp = frames // pt, height // ph, width // pw

    # timestep: sinusoid (cos first) -> time_embedding (Linear, SiLU, Linear) -> projection to 6 x dim
    half = config["freq_dim"] // 2
    phase = timestep.double()[:, None] * 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
    sinusoid = torch.cat([torch.cos(phase), torch.sin(phase)], dim=1)
    e = _linear(F.silu(_linear(sinusoid, s, "time_embedding.0")), s, "time_embedding.2")
    e6 = _linear(F.silu(e), s, "time_projection.1").reshape(b, 6, dim)
    ctx = _linear(F.gelu(_linear(context, s, "text_embedding.0"), approximate="tanh"), s, "text_embedding.2")

    x = F.conv3d(latents, s["patch_embedding.weight"], s["patch_embedding.bias"], stride=(pt, ph, pw))
    x = x.flatten(2).transpose(1, 2)  # tokens in (f, h, w) order, w fastest
    factors = _rope_factors(head_dim, fp, hp, wp)

    for i in range(config["num_layers"]):
        p = f"blocks.{i}."
        s1, c1, g1, s2, c2, g2 = (s[p + "modulation"] + e6).chunk(6, dim=1)  # each (B, 1, dim)
        y = _layer_norm(x) * (1 + c1) + s1
        cam = _linear(camera, s, p + "cam_encoder")  # (B, Fc, dim)
        cam = torch.cat([cam] * (fp // cam.shape[1]), dim=1)  # [c0..c_{Fc-1}, c0..] for target and source
        y = y + cam[:, :, None, :].expand(b, fp, hp * wp, dim).reshape(b, -1, dim)
        q = _rms_norm(_linear(y, s, p + "self_attn.q"), s[p + "self_attn.norm_q.weight"])
        k = _rms_norm(_linear(y, s, p + "self_attn.k"), s[p + "self_attn.norm_k.weight"])
        v = _linear(y, s, p + "self_attn.v")
        q = _apply_rope(q.reshape(b, -1, heads, head_dim), factors).reshape(b, -1, dim)
        k = _apply_rope(k.reshape(b, -1, heads, head_dim), factors).reshape(b, -1, dim)
        attended = _linear(_attention(q, k, v, heads), s, p + "self_attn.o")
        x = x + g1 * _linear(attended, s, p + "projector")

        xn = F.layer_norm(x, (dim,), s[p + "norm3.weight"], s[p + "norm3.bias"], eps=EPS)
        q = _rms_norm(_linear(xn, s, p + "cross_attn.q"), s[p + "cross_attn.norm_q.weight"])
        k = _rms_norm(_linear(ctx, s, p + "cross_attn.k"), s[p + "cross_attn.norm_k.weight"])
        v = _linear(ctx, s, p + "cross_attn.v")
        x = x + _linear(_attention(q, k, v, heads), s, p + "cross_attn.o")

        hidden = F.gelu(_linear(_layer_norm(x) * (1 + c2) + s2, s, p + "ffn.0"), approximate="tanh")
        x = x + g2 * _linear(hidden, s, p + "ffn.2")

    shift, scale = (s["head.modulation"] + e[:, None]).chunk(2, dim=1)  # uses e, not e6
    out = _linear(_layer_norm(x) * (1 + scale) + shift, s, "head.head")  # (B, L, pt ph pw C)
    c_out = config["out_channels"]
    out = out.reshape(b, fp, hp, wp, pt, ph, pw, c_out)  # channel fastest
    return out.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, c_out, fp * pt, hp * ph, wp * pw)
