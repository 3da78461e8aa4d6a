"""The Wan2.1 video VAE: loading ``Wan2.1_VAE.pth`` into diffusers' ``AutoencoderKLWan``, and the latent convention.

ReCamMaster uses the Wan2.1 VAE unchanged (spec ``upstream-recammaster.md`` §8): a causal 3-D convolutional VAE
that maps a video of 4k+1 frames in [-1, 1] to 1+k latent frames of 16 channels, 8x smaller in height and width.
diffusers' ``AutoencoderKLWan`` runs the same network with the same chunk-by-chunk causal cache as upstream, so we
build that class and only add what upstream does around it:

- loading the official checkpoint (a plain state dict, possibly wrapped in ``model_state`` and prefixed with
  ``model.`` by DiffSynth) through diffusers' ``convert_wan_vae_to_diffusers``, with strict checks that name the
  offending keys in the file's own layout;
- the deterministic encode (posterior mean, as upstream) and the per-channel latent normalisation (§8.3);
- input shape checks, raised before any work is done.

Spatial tiling (§8.4) is not applied here; at 480p the whole frame fits on one GPU.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

from recammaster.errors import WeightsError
from recammaster.models.checkpoints import check_keys, read_state_dict
from recammaster.models.whole_clip_vae import decode_whole_clip, encode_whole_clip

# ---------------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------------

# Per-channel statistics of Wan2.1 latents (spec §8.3): z = (mu - mean) / std.
WAN_LATENTS_MEAN: tuple[float, ...] = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN_LATENTS_STD: tuple[float, ...] = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip

# ``AutoencoderKLWan`` keyword arguments of the Wan2.1 VAE (126.9 M parameters).
WAN_VAE_CONFIG: dict[str, Any] = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],  # sic: diffusers' spelling; stages 1 and 2 halve the frames
    "dropout": 0.0,
    "latents_mean": list(WAN_LATENTS_MEAN),
    "latents_std": list(WAN_LATENTS_STD),
}

TEMPORAL_FACTOR = 4  # 4k+1 frames <-> 1+k latent frames

# Key beginnings that only diffusers' layout has; anything else is read as the official layout.
_DIFFUSERS_MARKERS = ("quant_conv.", "post_quant_conv.", "encoder.down_blocks.", "decoder.up_blocks.")
# Weight files of a diffusers folder, in the order tried.
_DIFFUSERS_WEIGHT_NAMES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model.bin",
)


# ---------------------------------------------------------------------------------------------------------------------
# Key layouts
# ---------------------------------------------------------------------------------------------------------------------


def _decoder_entry(stage: str, offset: int) -> int:
    """Index in the flat official ``decoder.upsamples`` list of an entry of diffusers' up block ``stage``.

    Each Wan2.1 decoder stage holds 3 residual blocks and one resampler (the last stage has none), so stage i
    starts at 4i; the converter hard-codes the same numbers.
    """
    return 4 * int(stage) + offset


# diffusers -> official names, applied in order, each to the result of the previous one. Residual blocks go first:
# in diffusers' names ``norm1/conv1/norm2/conv2`` occur only inside residual blocks, in the official ones
# ``conv1`` is also the encoder/decoder input conv.
_DIFFUSERS_TO_OFFICIAL: tuple[tuple[str, str | Callable[[re.Match[str]], str]], ...] = (
    (r"\.norm1\.gamma$", ".residual.0.gamma"),
    (r"\.conv1\.(weight|bias)$", r".residual.2.\1"),
    (r"\.norm2\.gamma$", ".residual.3.gamma"),
    (r"\.conv2\.(weight|bias)$", r".residual.6.\1"),
    (r"\.conv_shortcut\.", ".shortcut."),
    (r"^quant_conv\.", "conv1."),
    (r"^post_quant_conv\.", "conv2."),
    (r"^(encoder|decoder)\.conv_in\.", r"\1.conv1."),
    (r"^(encoder|decoder)\.norm_out\.", r"\1.head.0."),
    (r"^(encoder|decoder)\.conv_out\.", r"\1.head.2."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.0\.", r"\1.middle.0."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.", r"\1.middle.1."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.1\.", r"\1.middle.2."),
    (r"^encoder\.down_blocks\.", "encoder.downsamples."),
    (r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
     lambda m: f"decoder.upsamples.{_decoder_entry(m[1], int(m[2]))}."),
    (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.upsamples.{_decoder_entry(m[1], 3)}."),
)  # fmt: skip


def official_key(diffusers_key: str) -> str:
    """The official ``Wan2.1_VAE.pth`` name of an ``AutoencoderKLWan`` state-dict key (inverse of the converter)."""
    key = diffusers_key
    for pattern, replacement in _DIFFUSERS_TO_OFFICIAL:
        key = re.sub(pattern, replacement, key)
    return key


def to_official_state_dict(vae: AutoencoderKLWan) -> dict[str, torch.Tensor]:
    """The VAE's weights under the official key names, e.g. to write a ``Wan2.1_VAE.pth`` back."""
    _check_official_layout(vae.config)
    return {official_key(key): value for key, value in vae.state_dict().items()}


def _check_official_layout(config: Mapping[str, Any]) -> None:
    """Refuse configs whose modules the official key layout (and diffusers' converter) do not describe."""
    if (
        config["num_res_blocks"] != 2
        or len(config["dim_mult"]) != 4
        or list(config.get("attn_scales", [])) != []
        or config.get("is_residual", False)
        or config.get("patch_size") is not None
    ):
        raise ValueError(
            "the official Wan2.1 VAE key layout needs num_res_blocks=2, four dim_mult stages, no attn_scales, "
            f"is_residual=False and no patch_size; got {dict(config)}"
        )


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------


def load_wan_vae(
    path: str | Path,
    *,
    torch_dtype: torch.dtype = torch.float32,
    config: Mapping[str, Any] | None = None,
) -> AutoencoderKLWan:
    """Load the Wan2.1 VAE from ``Wan2.1_VAE.pth`` (``.pt``, ``.ckpt``, ``.safetensors``) or from a diffusers folder.

    Single files may hold the official key layout, which diffusers' ``convert_wan_vae_to_diffusers`` renames, or
    diffusers' own; a ``model_state`` wrapper and DiffSynth's ``model.`` prefix are removed. Loading is strict:
    missing, unknown or wrongly shaped tensors raise :class:`WeightsError` naming the file and the keys as the file
    names them. ``config`` entries override :data:`WAN_VAE_CONFIG` (tests use it for tiny VAEs); a diffusers folder
    (``save_pretrained`` output) brings its own ``config.json`` instead. The model is returned in eval mode.
    """
    path = Path(path)
    if path.is_dir():
        if config is not None:
            raise ValueError(f"{path}: a diffusers folder brings its own config.json; do not pass config")
        full_config, weights = _read_folder(path)
    else:
        full_config, weights = {**WAN_VAE_CONFIG, **(config or {})}, path
    state = read_state_dict(weights)

    # Built on the meta device: no time is spent on a random init that the checkpoint replaces.
    with torch.device("meta"):
        vae = AutoencoderKLWan(**full_config)
    expected = {key: param.shape for key, param in vae.state_dict().items()}

    if any(key.startswith(_DIFFUSERS_MARKERS) for key in state):
        check_keys(str(weights), expected, state)
    else:
        _check_official_layout(vae.config)
        check_keys(str(weights), {official_key(key): shape for key, shape in expected.items()}, state)
        state = convert_wan_vae_to_diffusers(state)

    state = {key: value.to(torch_dtype) if value.is_floating_point() else value for key, value in state.items()}
    vae.load_state_dict(state, strict=True, assign=True)
    return vae.eval()


def _read_folder(folder: Path) -> tuple[dict[str, Any], Path]:
    """Config and weights file of a diffusers ``AutoencoderKLWan`` folder.

    Read by hand rather than with ``from_pretrained``, which leaves missing tensors on the meta device with only a
    log message.
    """
    if not (folder / "config.json").is_file():
        raise WeightsError(f"{folder}: folder without config.json; expected a diffusers AutoencoderKLWan folder")
    config = {key: value for key, value in AutoencoderKLWan.load_config(folder).items() if not key.startswith("_")}
    for name in _DIFFUSERS_WEIGHT_NAMES:
        if (folder / name).is_file():
            return config, folder / name
    raise WeightsError(f"{folder}: no weights file; expected one of {', '.join(_DIFFUSERS_WEIGHT_NAMES)}")


# ---------------------------------------------------------------------------------------------------------------------
# Latent convention
# ---------------------------------------------------------------------------------------------------------------------


def _latent_statistics(vae: AutoencoderKLWan, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``1/std`` shaped (1, C, 1, 1, 1) in ``like``'s dtype.

    Upstream stores ``1/std`` in the working dtype and multiplies by it (and divides by it to decode); we do the
    same so that bf16 latents round as upstream's do.
    """
    channels = like.shape[1]
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32)
    if like.ndim != 5 or channels != mean.numel():
        raise ValueError(f"latents must have shape (B, {mean.numel()}, F, H, W), got {tuple(like.shape)}")
    view = (1, channels, 1, 1, 1)
    return (
        mean.to(device=like.device, dtype=like.dtype).view(view),
        (1.0 / std).to(device=like.device, dtype=like.dtype).view(view),
    )


def normalize_latents(mu: torch.Tensor, vae: AutoencoderKLWan) -> torch.Tensor:
    """Encoder mean -> the normalised latents the DiT sees: ``(mu - mean) / std`` per channel (spec §8.3)."""
    mean, inv_std = _latent_statistics(vae, mu)
    return (mu - mean) * inv_std


def denormalize_latents(z: torch.Tensor, vae: AutoencoderKLWan) -> torch.Tensor:
    """Inverse of :func:`normalize_latents`: ``z * std + mean`` per channel."""
    mean, inv_std = _latent_statistics(vae, z)
    return z / inv_std + mean


def latent_coverage(mask: torch.Tensor, spatial: int) -> torch.Tensor:
    """The share of each latent pixel's pixels that ``mask`` (..., 4k+1, H, W) marks: (..., 1+k, H/s, W/s) float32,
    over frame 0 alone and then four frames at a time (the causal VAE's frame groups) and ``spatial`` squared
    pixels, so that a weight per pixel region becomes a weight per latent value."""
    values = mask.float()
    frames, height, width = values.shape[-3:]
    groups = torch.cat(
        [
            values[..., :1, :, :],
            values[..., 1:, :, :].unflatten(-3, ((frames - 1) // TEMPORAL_FACTOR, TEMPORAL_FACTOR)).mean(-3),
        ],
        -3,
    )
    cells = groups.unflatten(-1, (width // spatial, spatial)).unflatten(-3, (height // spatial, spatial))
    return cells.mean(dim=(-3, -1))  # (..., F, H/s, s, W/s, s) -> (..., F, H/s, W/s)


def spatial_factor(config: Mapping[str, Any]) -> int:
    """How many pixels of height and width one latent pixel spans: 8 for Wan2.1, 4 with three ``dim_mult`` stages.

    Every stage but the last halves height and width, so the factor follows the config; a VAE trained with fewer
    stages keeps small objects sharper, and its latents are larger.
    """
    return 2 ** (len(config["dim_mult"]) - 1)


def check_video_shape(shape: Iterable[int], multiple: int) -> None:
    """Raise ``ValueError`` unless ``shape`` is (B, 3, 4k+1, H, W) with H and W multiples of ``multiple`` (the
    VAE's :func:`spatial_factor`)."""
    shape = tuple(shape)
    if len(shape) != 5 or shape[1] != 3 or min(shape) < 1:
        raise ValueError(f"video must have shape (B, 3, F, H, W), got {shape}")
    _, _, frames, height, width = shape
    if frames % TEMPORAL_FACTOR != 1:
        raise ValueError(f"video shape {shape}: the number of frames must be 4k+1 (1, 5, 9, ..., 81), got {frames}")
    if height % multiple or width % multiple:
        raise ValueError(f"video shape {shape}: height and width must be multiples of {multiple}, got {height}x{width}")


@torch.no_grad()  # the VAE is frozen in ReCamMaster; no graph keeps the activations of 81 frames alive
def encode_video(vae: AutoencoderKLWan, video: torch.Tensor, whole_clip: bool = False) -> torch.Tensor:
    """Video (B, 3, 4k+1, H, W) in [-1, 1] -> normalised latents (B, C, 1+k, H/s, W/s), s the VAE's
    :func:`spatial_factor` (C 16 and s 8 for Wan2.1).

    Deterministic, as upstream: the posterior mean, not a sample. The video takes the VAE's dtype but stays on
    its device: under CPU or group offloading the VAE's weights sit on the CPU until its forward runs.
    ``whole_clip``: all frames at once (:mod:`recammaster.models.whole_clip_vae`; not under offloading).
    """
    check_video_shape(video.shape, spatial_factor(vae.config))
    video = video.to(dtype=vae.dtype)
    posterior = encode_whole_clip(vae, video) if whole_clip else vae.encode(video).latent_dist
    return normalize_latents(posterior.mean, vae)  # (B, 3, F, H, W) -> (B, C, 1+(F-1)/4, H/s, W/s)


@torch.no_grad()
def decode_latents(vae: AutoencoderKLWan, z: torch.Tensor, whole_clip: bool = False) -> torch.Tensor:
    """Normalised latents (B, C, 1+k, h, w) -> video (B, 3, 4k+1, sh, sw) clamped to [-1, 1], on z's device (s the
    VAE's :func:`spatial_factor`); ``whole_clip``: all frames at once, as :func:`encode_video`."""
    z = z.to(dtype=vae.dtype)
    mu = denormalize_latents(z, vae)
    return decode_whole_clip(vae, mu) if whole_clip else vae.decode(mu).sample  # clamped, as upstream
