"""The Wan VAE run on whole clips at once: the same function as its chunk-by-chunk causal cache, in a few large
operations instead of one pass per four frames.

diffusers' ``AutoencoderKLWan`` (like upstream) encodes frame 0 alone and then four frames at a time, and decodes
one latent frame at a time, carrying each causal convolution's last two input frames from chunk to chunk. Every
causal convolution so sees exactly what one zero-padded causal convolution over the whole clip sees, and the norms,
attention and spatial resampling work frame by frame. Only the temporal resampling depends on the chunks, and it
follows a fixed rule that holds on the whole clip too:

- ``downsample3d`` keeps frame 0 as it is and applies its stride-2 convolution to every window of three frames
  starting at an even frame: ``cat(x[0], time_conv(x))``;
- ``upsample3d`` keeps frame 0 as one frame and doubles every later one with its causal convolution, which never
  sees frame 0 (the first chunk after it starts from zeros): ``cat(x[0], double(time_conv(x[1:])))``.

The results equal the chunked ones to float rounding (tests/models/test_vae.py), and a training step of the
embedded VAE on 81 frames is 3-4x faster on two CPU cores (benchmarks/vae_whole_clip.py, benchmarks/RESULTS.md).
VAE training uses it, and so does rendering with a model whose render defaults ask for it (``whole_clip_vae``: the
embedded model, whose VAE then takes half the time on two CPU cores). Other models render with diffusers' chunks:
their memory does not grow with the clip (at the official 480p one whole-clip activation alone takes 6 GB), and
their results are the same bits whatever the number of CPU threads, which keeps a video rendered by one process
equal to one rendered by several; the whole clip's larger convolutions round differently with 1 and 2 threads.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanResample
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution


def resample_whole_clip(resample: WanResample, x: torch.Tensor) -> torch.Tensor:
    """``WanResample`` on all frames of (B, C, T, H, W) at once, as its chunked forward gives them."""
    batch, channels, frames, height, width = x.shape
    if resample.mode == "upsample3d" and frames > 1:  # time first: frame 0 stays one frame, each later one two
        doubled = resample.time_conv(x[:, :, 1:]).reshape(batch, 2, channels, frames - 1, height, width)
        doubled = torch.stack((doubled[:, 0], doubled[:, 1]), 3).flatten(2, 3)  # frame 1 twice, frame 2 twice, ...
        x = torch.cat([x[:, :, :1], doubled], dim=2)
    frames = x.shape[2]
    x = resample.resample(x.transpose(1, 2).flatten(0, 1))  # frame by frame: (B T, C, H, W)
    x = x.unflatten(0, (batch, frames)).transpose(1, 2)
    if resample.mode == "downsample3d" and frames > 1:  # then time: frame 0, and stride-2 windows of three
        x = torch.cat([x[:, :, :1], resample.time_conv(x)], dim=2)
    return x


def encode_whole_clip(vae: AutoencoderKLWan, video: torch.Tensor) -> DiagonalGaussianDistribution:
    """The posterior ``vae.encode(video).latent_dist`` gives, computed on the whole clip at once."""
    encoder = vae.encoder
    x = encoder.conv_in(video)
    for layer in encoder.down_blocks:
        x = resample_whole_clip(layer, x) if isinstance(layer, WanResample) else layer(x)
    x = encoder.mid_block(x)
    x = encoder.conv_out(encoder.nonlinearity(encoder.norm_out(x)))
    return DiagonalGaussianDistribution(vae.quant_conv(x))


def decode_whole_clip(vae: AutoencoderKLWan, latents: torch.Tensor) -> torch.Tensor:
    """The video ``vae.decode(latents).sample`` gives (clamped to [-1, 1]), computed on the whole clip at once."""
    decoder = vae.decoder
    x = decoder.mid_block(decoder.conv_in(vae.post_quant_conv(latents)))
    for block in decoder.up_blocks:
        for resnet in block.resnets:
            x = resnet(x)
        if block.upsamplers is not None:
            x = resample_whole_clip(block.upsamplers[0], x)
    x = decoder.conv_out(decoder.nonlinearity(decoder.norm_out(x)))
    return x.clamp(-1.0, 1.0)
