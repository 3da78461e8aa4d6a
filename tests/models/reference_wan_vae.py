"""An independent reference of the Wan2.1 VAE, written from spec ``upstream-recammaster.md`` §8 alone.

Plain torch functions over a state dict in the official ``Wan2.1_VAE.pth`` key layout (§8.5), for any base width
so that tests can run tiny VAEs. Where upstream (and diffusers) run the network chunk by chunk with a 2-frame
cache per causal conv, this reference runs the *whole sequence at once* with the equivalent rules of §8.2:

- every causal conv pads 2*p_t zero frames at the front of the whole sequence;
- each temporal downsampling level gives ``[x_0] ++ conv_stride2(x_0 .. x_{T-1})`` (no padding);
- each ``upsample3d`` level gives ``[f_0] ++ interleave2(causal_time_conv(f_1 .. f_{N-1}))`` with 2 zero frames of
  front padding, i.e. frame 0 is never used as temporal context.

Two formulations agreeing is what makes a comparison with diffusers' ``AutoencoderKLWan`` meaningful. Spatial
2-D convs are written as 3-D convs with a 1-frame kernel, nearest 2x upsampling as ``repeat_interleave`` and the
attention by hand, again to avoid sharing code paths with the model under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class RefConfig:
    """Sizes of a Wan2.1-layout VAE; the defaults are the released 127 M model."""

    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = field(default=(False, True, True))


# ---------------------------------------------------------------------------------------------------------------------
# Layout: the flat official module lists, from the config
# ---------------------------------------------------------------------------------------------------------------------


def encoder_layout(cfg: RefConfig) -> list[tuple[str, int, int]]:
    """``encoder.downsamples`` entries as (kind, in_channels, out_channels); kind is res/down2d/down3d."""
    dims = [cfg.base_dim * m for m in (1, *cfg.dim_mult)]
    layout, channels = [], dims[0]
    for stage, out in enumerate(dims[1:]):
        for _ in range(cfg.num_res_blocks):
            layout.append(("res", channels, out))
            channels = out
        if stage < len(cfg.dim_mult) - 1:
            layout.append(("down3d" if cfg.temporal_downsample[stage] else "down2d", channels, channels))
    return layout


def decoder_layout(cfg: RefConfig) -> list[tuple[str, int, int]]:
    """``decoder.upsamples`` entries as (kind, in_channels, out_channels); kind is res/up2d/up3d.

    Each stage has num_res_blocks+1 residual blocks; every resampler but the last halves the channels.
    """
    mults = (cfg.dim_mult[-1], *cfg.dim_mult[::-1])
    dims = [cfg.base_dim * m for m in mults]
    temporal_upsample = cfg.temporal_downsample[::-1]
    layout, channels = [], dims[0]
    for stage, out in enumerate(dims[1:]):
        for _ in range(cfg.num_res_blocks + 1):
            layout.append(("res", channels, out))
            channels = out
        if stage < len(cfg.dim_mult) - 1:
            layout.append(("up3d" if temporal_upsample[stage] else "up2d", channels, channels // 2))
            channels //= 2
    return layout


def official_shapes(cfg: RefConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of the official state dict for ``cfg``."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, out: int, inp: int, *kernel: int) -> None:
        shapes[f"{name}.weight"] = (out, inp, *kernel)
        shapes[f"{name}.bias"] = (out,)

    def residual(name: str, inp: int, out: int) -> None:
        shapes[f"{name}.residual.0.gamma"] = (inp, 1, 1, 1)
        conv(f"{name}.residual.2", out, inp, 3, 3, 3)
        shapes[f"{name}.residual.3.gamma"] = (out, 1, 1, 1)
        conv(f"{name}.residual.6", out, out, 3, 3, 3)
        if inp != out:
            conv(f"{name}.shortcut", out, inp, 1, 1, 1)

    def middle(name: str, dim: int) -> None:
        residual(f"{name}.0", dim, dim)
        shapes[f"{name}.1.norm.gamma"] = (dim, 1, 1)
        conv(f"{name}.1.to_qkv", 3 * dim, dim, 1, 1)
        conv(f"{name}.1.proj", dim, dim, 1, 1)
        residual(f"{name}.2", dim, dim)

    top = cfg.base_dim * cfg.dim_mult[-1]
    conv("conv1", 2 * cfg.z_dim, 2 * cfg.z_dim, 1, 1, 1)
    conv("conv2", cfg.z_dim, cfg.z_dim, 1, 1, 1)

    conv("encoder.conv1", cfg.base_dim, 3, 3, 3, 3)
    for index, (kind, inp, out) in enumerate(encoder_layout(cfg)):
        name = f"encoder.downsamples.{index}"
        if kind == "res":
            residual(name, inp, out)
        else:
            conv(f"{name}.resample.1", out, inp, 3, 3)
            if kind == "down3d":
                conv(f"{name}.time_conv", out, out, 3, 1, 1)
    middle("encoder.middle", top)
    shapes["encoder.head.0.gamma"] = (top, 1, 1, 1)
    conv("encoder.head.2", 2 * cfg.z_dim, top, 3, 3, 3)

    conv("decoder.conv1", top, cfg.z_dim, 3, 3, 3)
    middle("decoder.middle", top)
    for index, (kind, inp, out) in enumerate(decoder_layout(cfg)):
        name = f"decoder.upsamples.{index}"
        if kind == "res":
            residual(name, inp, out)
        else:
            conv(f"{name}.resample.1", out, inp, 3, 3)
            if kind == "up3d":
                conv(f"{name}.time_conv", 2 * inp, inp, 3, 1, 1)
    last = cfg.base_dim * cfg.dim_mult[0]
    shapes["decoder.head.0.gamma"] = (last, 1, 1, 1)
    conv("decoder.head.2", 3, last, 3, 3, 3)
    return shapes


def random_state_dict(cfg: RefConfig, seed: int = 0) -> StateDict:
    """Random weights in the official layout: conv weights ~ N(0, 1/fan_in), biases ~ N(0, 0.02), gammas ~ 1 +- 0.1.

    The decoder's last conv is scaled down so that decoded pixels mostly stay inside [-1, 1]: the final clamp then
    acts on a few percent of them, enough to be exercised, too few to hide differences.
    """
    generator = torch.Generator().manual_seed(seed)
    state: StateDict = {}
    for name, shape in official_shapes(cfg).items():
        noise = torch.randn(shape, generator=generator)
        if name.endswith(".gamma"):
            state[name] = 1.0 + 0.1 * noise
        elif name.endswith(".bias"):
            state[name] = 0.02 * noise
        else:
            state[name] = noise / math.sqrt(math.prod(shape[1:]))
    state["decoder.head.2.weight"] *= 0.75
    return state


# ---------------------------------------------------------------------------------------------------------------------
# Layers (x is (B, C, T, H, W) throughout)
# ---------------------------------------------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """L2-normalise over channels, times sqrt(C) and gamma (no bias)."""
    return F.normalize(x, dim=1) * math.sqrt(x.shape[1]) * gamma


def causal_conv(x: torch.Tensor, sd: StateDict, name: str, padding: int) -> torch.Tensor:
    """3-D conv with 2*padding zero frames in front of the whole sequence and symmetric spatial padding."""
    x = F.pad(x, (padding, padding, padding, padding, 2 * padding, 0))
    return F.conv3d(x, sd[f"{name}.weight"], sd[f"{name}.bias"])


def frame_conv(x: torch.Tensor, sd: StateDict, name: str, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """A 2-D conv applied to every frame, written as a 3-D conv with a one-frame kernel."""
    weight = sd[f"{name}.weight"].unsqueeze(2)
    return F.conv3d(x, weight, sd[f"{name}.bias"], stride=(1, stride, stride), padding=(0, padding, padding))


def residual_block(x: torch.Tensor, sd: StateDict, name: str) -> torch.Tensor:
    shortcut = causal_conv(x, sd, f"{name}.shortcut", 0) if f"{name}.shortcut.weight" in sd else x
    h = F.silu(rms_norm(x, sd[f"{name}.residual.0.gamma"]))
    h = causal_conv(h, sd, f"{name}.residual.2", 1)
    h = F.silu(rms_norm(h, sd[f"{name}.residual.3.gamma"]))
    h = causal_conv(h, sd, f"{name}.residual.6", 1)
    return h + shortcut


def attention_block(x: torch.Tensor, sd: StateDict, name: str) -> torch.Tensor:
    """Single-head self-attention over the H*W positions of each frame separately."""
    channels = x.shape[1]
    h = rms_norm(x, sd[f"{name}.norm.gamma"].unsqueeze(1))  # (C,1,1) gamma of a per-frame norm
    qkv = frame_conv(h, sd, f"{name}.to_qkv")  # (B, 3C, T, H, W)
    q, k, v = (part.flatten(3) for part in qkv.split(channels, dim=1))  # 3 x (B, C, T, HW)
    weights = torch.einsum("bctq,bctk->btqk", q, k).div(math.sqrt(channels)).softmax(dim=-1)
    h = torch.einsum("btqk,bctk->bctq", weights, v).reshape(x.shape)
    return frame_conv(h, sd, f"{name}.proj") + x


def middle_block(x: torch.Tensor, sd: StateDict, name: str) -> torch.Tensor:
    x = residual_block(x, sd, f"{name}.0")
    x = attention_block(x, sd, f"{name}.1")
    return residual_block(x, sd, f"{name}.2")


def downsample(x: torch.Tensor, sd: StateDict, name: str, temporal: bool) -> torch.Tensor:
    """Zero-pad right/bottom by one, stride-2 3x3 conv per frame; then, if temporal, ``[x_0] ++ conv_stride2``."""
    x = frame_conv(F.pad(x, (0, 1, 0, 1)), sd, f"{name}.resample.1", stride=2)
    if not temporal:
        return x
    if x.shape[2] < 3:  # one frame: nothing to convolve, the frame passes through
        return x[:, :, :1]
    strided = F.conv3d(x, sd[f"{name}.time_conv.weight"], sd[f"{name}.time_conv.bias"], stride=(2, 1, 1))
    return torch.cat([x[:, :, :1], strided], dim=2)


def upsample(x: torch.Tensor, sd: StateDict, name: str, temporal: bool) -> torch.Tensor:
    """If temporal, ``[f_0] ++ interleave2(causal_time_conv(f_1..))``; then nearest 2x and a 3x3 conv per frame."""
    if temporal and x.shape[2] > 1:
        channels = x.shape[1]
        # kernel (3, 1, 1): 2 zero frames in front, no spatial padding
        doubled = F.conv3d(
            F.pad(x[:, :, 1:], (0, 0, 0, 0, 2, 0)), sd[f"{name}.time_conv.weight"], sd[f"{name}.time_conv.bias"]
        )
        even, odd = doubled[:, :channels], doubled[:, channels:]  # (B, C, N-1, H, W) each
        interleaved = torch.stack([even, odd], dim=3).flatten(2, 3)  # frame t -> 2t, 2t+1
        x = torch.cat([x[:, :, :1], interleaved], dim=2)
    x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
    return frame_conv(x, sd, f"{name}.resample.1", padding=1)


# ---------------------------------------------------------------------------------------------------------------------
# Encoder and decoder
# ---------------------------------------------------------------------------------------------------------------------


def encode(sd: StateDict, video: torch.Tensor, cfg: RefConfig) -> torch.Tensor:
    """Video (B, 3, 4k+1, H, W) -> encoder mean mu (B, z, 1+k, H/8, W/8), not normalised."""
    sd = {key: value.to(video.dtype) for key, value in sd.items()}
    x = causal_conv(video, sd, "encoder.conv1", 1)
    for index, (kind, _, _) in enumerate(encoder_layout(cfg)):
        name = f"encoder.downsamples.{index}"
        x = residual_block(x, sd, name) if kind == "res" else downsample(x, sd, name, temporal=kind == "down3d")
    x = middle_block(x, sd, "encoder.middle")
    x = F.silu(rms_norm(x, sd["encoder.head.0.gamma"]))
    x = causal_conv(x, sd, "encoder.head.2", 1)
    x = causal_conv(x, sd, "conv1", 0)
    return x[:, : cfg.z_dim]


def decode(sd: StateDict, mu: torch.Tensor, cfg: RefConfig, clamp: bool = True) -> torch.Tensor:
    """Encoder-space latents (B, z, 1+k, h, w), not normalised -> video (B, 3, 4k+1, 8h, 8w)."""
    sd = {key: value.to(mu.dtype) for key, value in sd.items()}
    x = causal_conv(mu, sd, "conv2", 0)
    x = causal_conv(x, sd, "decoder.conv1", 1)
    x = middle_block(x, sd, "decoder.middle")
    for index, (kind, _, _) in enumerate(decoder_layout(cfg)):
        name = f"decoder.upsamples.{index}"
        x = residual_block(x, sd, name) if kind == "res" else upsample(x, sd, name, temporal=kind == "up3d")
    x = F.silu(rms_norm(x, sd["decoder.head.0.gamma"]))
    x = causal_conv(x, sd, "decoder.head.2", 1)
    return x.clamp(-1.0, 1.0) if clamp else x
