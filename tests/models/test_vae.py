"""The Wan2.1 VAE: loading official-layout weights into diffusers' ``AutoencoderKLWan``, checked against an
independent whole-sequence reference (``reference_wan_vae.py``, from spec §8), plus the latent convention.

A tiny VAE (base width 8, the real 4-stage layout and 16 latent channels) with random weights in the official key
layout is saved as a ``.pth`` and loaded with :func:`load_wan_vae`. All comparisons run on CPU; the model in
float32, the reference in float64.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from safetensors.torch import load_file, save_file

from recammaster.errors import ReCamMasterError, WeightsError
from recammaster.models.vae import (
    WAN_VAE_CONFIG,
    decode_latents,
    denormalize_latents,
    encode_video,
    latent_coverage,
    load_wan_vae,
    normalize_latents,
    official_key,
    spatial_factor,
    to_official_state_dict,
)
from recammaster.models.whole_clip_vae import decode_whole_clip, encode_whole_clip

from . import reference_wan_vae as ref

# Spec upstream-recammaster.md §8.3, typed in again rather than imported.
SPEC_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
             0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]  # fmt: skip
SPEC_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
            3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]  # fmt: skip

TINY = ref.RefConfig(base_dim=8)
TINY_OVERRIDES = {"base_dim": 8}


def assert_matches(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Relative 1e-5 agreement, absolute floor 1e-5 of the largest expected value; returns the max error."""
    expected = expected.to(actual.dtype)
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale)
    return (actual - expected).abs().max().item() / scale


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return ref.random_state_dict(TINY, seed=0)


@pytest.fixture(scope="module")
def tiny_pth(tiny_state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vae") / "Wan2.1_VAE.pth"
    torch.save(tiny_state, path)
    return path


@pytest.fixture(scope="module")
def tiny_vae(tiny_pth: Path) -> AutoencoderKLWan:
    return load_wan_vae(tiny_pth, config=TINY_OVERRIDES)


@pytest.fixture(scope="module")
def video() -> torch.Tensor:
    """Two 9-frame clips of 32x48 pixels in [-1, 1]; non-square so that a height/width swap shows."""
    return torch.rand(2, 3, 9, 32, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1


# ---------------------------------------------------------------------------------------------------------------------
# Key layout
# ---------------------------------------------------------------------------------------------------------------------


def test_latent_coverage_averages_over_the_vaes_frame_groups_and_cells() -> None:
    """Frame 0 alone, then frames 1-4; 2x2 cells: a pixel of frame 0 is a quarter of its cell, a pixel shown in two
    of frames 1-4 an eighth."""
    mask = torch.zeros(2, 5, 4, 6, dtype=torch.bool)
    mask[0, 0, 0, 0] = True
    mask[0, 1:3, 3, 5] = True
    mask[1, 1:, 2:4, 2:4] = True
    expected = torch.zeros(2, 2, 2, 3)
    expected[0, 0, 0, 0] = 0.25
    expected[0, 1, 1, 2] = 0.125
    expected[1, 1, 1, 1] = 1.0
    assert torch.equal(latent_coverage(mask, 2), expected)


def test_full_size_layout_matches_spec_and_diffusers() -> None:
    """Reference layout at full size = spec §8.5 counts; the converter maps it onto AutoencoderKLWan exactly and
    ``official_key`` inverts the converter."""
    shapes = ref.official_shapes(ref.RefConfig())
    assert len(shapes) == 194
    assert sum(math.prod(shape) for shape in shapes.values()) == 126_892_531
    assert shapes["decoder.upsamples.3.time_conv.weight"] == (768, 384, 3, 1, 1)
    assert shapes["decoder.upsamples.4.shortcut.weight"] == (384, 192, 1, 1, 1)
    assert shapes["decoder.upsamples.11.resample.1.weight"] == (96, 192, 3, 3)
    assert shapes["encoder.downsamples.8.time_conv.weight"] == (384, 384, 3, 1, 1)
    assert shapes["encoder.middle.1.to_qkv.weight"] == (1152, 384, 1, 1)

    with torch.device("meta"):
        model = AutoencoderKLWan(**WAN_VAE_CONFIG)
    model_shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    renamed = convert_wan_vae_to_diffusers({key: key for key in shapes})  # values: the official names
    assert set(renamed) == set(model_shapes)
    assert {key: shapes[name] for key, name in renamed.items()} == model_shapes
    assert {key: official_key(key) for key in renamed} == renamed


# ---------------------------------------------------------------------------------------------------------------------
# Numerics against the reference
# ---------------------------------------------------------------------------------------------------------------------


def test_encode_matches_reference(tiny_vae: AutoencoderKLWan, tiny_state: dict, video: torch.Tensor) -> None:
    """Posterior mean of AutoencoderKLWan (chunked, float32) vs the reference encoder mean (whole sequence, float64)
    on (2, 3, 9, 32, 48); then encode_video vs the reference mean normalised with the spec constants."""
    expected = ref.encode(tiny_state, video.double(), TINY)
    assert expected.shape == (2, 16, 3, 4, 6)
    with torch.no_grad():
        mu = tiny_vae.encode(video).latent_dist.mean
    assert_matches(mu, expected)

    mean = torch.tensor(SPEC_MEAN, dtype=torch.float64).view(1, 16, 1, 1, 1)
    std = torch.tensor(SPEC_STD, dtype=torch.float64).view(1, 16, 1, 1, 1)
    assert_matches(encode_video(tiny_vae, video), (expected - mean) / std)


def test_decode_matches_reference(tiny_vae: AutoencoderKLWan, tiny_state: dict) -> None:
    """decode_latents (AutoencoderKLWan, frame by frame, float32) vs the reference decoder (whole sequence, float64)
    on normalised latents (2, 16, 3, 4, 6) denormalised with the spec constants; output clamped to [-1, 1]."""
    z = torch.randn(2, 16, 3, 4, 6, generator=torch.Generator().manual_seed(2))
    mean = torch.tensor(SPEC_MEAN, dtype=torch.float64).view(1, 16, 1, 1, 1)
    std = torch.tensor(SPEC_STD, dtype=torch.float64).view(1, 16, 1, 1, 1)
    unclamped = ref.decode(tiny_state, z.double() * std + mean, TINY, clamp=False)
    clamped_share = (unclamped.abs() > 1).double().mean().item()
    assert 0.001 < clamped_share < 0.2  # the clamp acts, but on few pixels

    video = decode_latents(tiny_vae, z)
    assert video.shape == (2, 3, 9, 32, 48)
    assert_matches(video, unclamped.clamp(-1, 1))


@pytest.mark.parametrize(("frames", "latent_frames"), [(1, 1), (5, 2), (9, 3)])
def test_frame_counts(tiny_vae: AutoencoderKLWan, frames: int, latent_frames: int) -> None:
    """4k+1 frames -> 1+k latent frames -> 4k+1 frames (first latent frame: 1 frame, every other: 4)."""
    video = torch.rand(1, 3, frames, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    latents = encode_video(tiny_vae, video)
    assert latents.shape == (1, 16, latent_frames, 2, 2)
    assert decode_latents(tiny_vae, latents).shape == (1, 3, frames, 16, 16)


def test_causal(tiny_vae: AutoencoderKLWan) -> None:
    """Changing frames 5-8 leaves latent frames 0-1 as they were; changing latent frame 2 leaves frames 0-4."""
    video = torch.rand(1, 3, 9, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    changed = video.clone()
    changed[:, :, 5:] = -changed[:, :, 5:]
    latents, latents_changed = encode_video(tiny_vae, video), encode_video(tiny_vae, changed)
    torch.testing.assert_close(latents_changed[:, :, :2], latents[:, :, :2], rtol=0, atol=1e-6)
    assert not torch.allclose(latents_changed[:, :, 2], latents[:, :, 2])

    latents_changed = latents.clone()
    latents_changed[:, :, 2] += 1.0
    frames, frames_changed = decode_latents(tiny_vae, latents), decode_latents(tiny_vae, latents_changed)
    torch.testing.assert_close(frames_changed[:, :, :5], frames[:, :, :5], rtol=0, atol=1e-6)
    assert not torch.allclose(frames_changed[:, :, 5:], frames[:, :, 5:])


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------


def _assert_same_weights(vae: AutoencoderKLWan, reference: AutoencoderKLWan) -> None:
    expected = reference.state_dict()
    actual = vae.state_dict()
    assert actual.keys() == expected.keys()
    for key, value in actual.items():
        assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize(
    ("wrapper", "prefix", "suffix"),
    [(False, "model.", ".pth"), (True, "", ".pt"), (True, "model.", ".ckpt"), (False, "", ".safetensors")],
)
def test_file_variants(
    tiny_state: dict, tiny_vae: AutoencoderKLWan, tmp_path: Path, wrapper: bool, prefix: str, suffix: str
) -> None:
    """The ``model_state`` wrapper, DiffSynth's ``model.`` prefix and every file suffix give the same weights."""
    state = {prefix + key: value for key, value in tiny_state.items()}
    path = tmp_path / f"vae{suffix}"
    if suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save({"model_state": state} if wrapper else state, path)
    _assert_same_weights(load_wan_vae(path, config=TINY_OVERRIDES), tiny_vae)


def test_diffusers_layouts_and_export(tiny_state: dict, tiny_vae: AutoencoderKLWan, tmp_path: Path) -> None:
    """A diffusers folder and a diffusers-layout single file load too; export gives the official dict back."""
    exported = to_official_state_dict(tiny_vae)
    assert exported.keys() == tiny_state.keys()
    assert all(torch.equal(exported[key], tiny_state[key]) for key in tiny_state)

    tiny_vae.save_pretrained(tmp_path / "folder")
    _assert_same_weights(load_wan_vae(tmp_path / "folder"), tiny_vae)
    save_file(tiny_vae.state_dict(), tmp_path / "diffusers.safetensors")
    _assert_same_weights(load_wan_vae(tmp_path / "diffusers.safetensors", config=TINY_OVERRIDES), tiny_vae)


def test_torch_dtype(tiny_pth: Path) -> None:
    vae = load_wan_vae(tiny_pth, config=TINY_OVERRIDES, torch_dtype=torch.bfloat16)
    assert vae.dtype == torch.bfloat16
    assert not vae.training


def test_missing_key(tiny_state: dict, tmp_path: Path) -> None:
    path = tmp_path / "vae.pth"
    torch.save({key: value for key, value in tiny_state.items() if key != "encoder.conv1.weight"}, path)
    with pytest.raises(WeightsError) as raised:
        load_wan_vae(path, config=TINY_OVERRIDES)
    assert str(raised.value) == f"{path}: weights do not fit the model; missing: encoder.conv1.weight"
    assert isinstance(raised.value, ReCamMasterError)


def test_unknown_keys(tiny_state: dict, tmp_path: Path) -> None:
    path = tmp_path / "vae.pth"
    extra = {f"decoder.extra.{index}.weight": torch.zeros(1) for index in range(7)}
    torch.save({**tiny_state, **extra}, path)
    with pytest.raises(WeightsError) as raised:
        load_wan_vae(path, config=TINY_OVERRIDES)
    assert str(raised.value) == (
        f"{path}: weights do not fit the model; unknown: decoder.extra.0.weight, decoder.extra.1.weight, "
        "decoder.extra.2.weight, decoder.extra.3.weight, decoder.extra.4.weight, ... (7 in all)"
    )


def test_wrong_shapes(tiny_pth: Path) -> None:
    """Weights of base width 8 into a base-width-4 config: the keys are named as the file names them."""
    pattern = r"; wrong shape: encoder\.conv1\.weight \(8, 3, 3, 3, 3\) \(expected \(4, 3, 3, 3, 3\)\), "
    with pytest.raises(WeightsError, match=pattern):
        load_wan_vae(tiny_pth, config={"base_dim": 4})


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"vae\.pth: weights file not found$"):
        load_wan_vae(tmp_path / "vae.pth")
    (tmp_path / "vae.txt").write_bytes(b"")
    with pytest.raises(WeightsError, match=r"vae\.txt: unknown weights format '\.txt'"):
        load_wan_vae(tmp_path / "vae.txt")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"broken\.pth: not a readable PyTorch weights file"):
        load_wan_vae(tmp_path / "broken.pth")
    (tmp_path / "folder").mkdir()
    with pytest.raises(WeightsError, match=r"folder without config\.json"):
        load_wan_vae(tmp_path / "folder")


def test_folder_is_strict(tiny_vae: AutoencoderKLWan, tmp_path: Path) -> None:
    """A diffusers folder missing a tensor raises (``from_pretrained`` would leave it on the meta device)."""
    tiny_vae.save_pretrained(tmp_path)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    del state["encoder.conv_in.weight"]
    save_file(state, weights)
    with pytest.raises(WeightsError) as raised:
        load_wan_vae(tmp_path)
    assert str(raised.value) == f"{weights}: weights do not fit the model; missing: encoder.conv_in.weight"


# ---------------------------------------------------------------------------------------------------------------------
# Latent convention and input checks
# ---------------------------------------------------------------------------------------------------------------------


def test_normalization(tiny_vae: AutoencoderKLWan) -> None:
    """The spec §8.3 constants; mean -> 0, mean + std -> 1 per channel; denormalize inverts normalize."""
    assert WAN_VAE_CONFIG["latents_mean"] == SPEC_MEAN
    assert WAN_VAE_CONFIG["latents_std"] == SPEC_STD
    assert tiny_vae.config.latents_mean == SPEC_MEAN
    assert tiny_vae.config.latents_std == SPEC_STD

    mean = torch.tensor(SPEC_MEAN).view(1, 16, 1, 1, 1).expand(2, 16, 3, 2, 2)
    std = torch.tensor(SPEC_STD).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(normalize_latents(mean, tiny_vae), torch.zeros_like(mean))
    torch.testing.assert_close(normalize_latents(mean + std, tiny_vae), torch.ones_like(mean))

    z = torch.randn(2, 16, 3, 2, 2, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(normalize_latents(denormalize_latents(z, tiny_vae), tiny_vae), z)
    torch.testing.assert_close(denormalize_latents(z, tiny_vae), z * std + mean)


def test_bad_shapes(tiny_vae: AutoencoderKLWan) -> None:
    with pytest.raises(ValueError, match=r"^video shape \(1, 3, 8, 32, 32\): the number of frames must be 4k\+1 "):
        encode_video(tiny_vae, torch.zeros(1, 3, 8, 32, 32))
    with pytest.raises(
        ValueError, match=r"^video shape \(1, 3, 9, 20, 32\): height and width must be multiples of 8, got 20x32$"
    ):
        encode_video(tiny_vae, torch.zeros(1, 3, 9, 20, 32))
    with pytest.raises(ValueError, match=r"^video must have shape \(B, 3, F, H, W\), got \(3, 9, 32, 32\)$"):
        encode_video(tiny_vae, torch.zeros(3, 9, 32, 32))
    with pytest.raises(ValueError, match=r"^latents must have shape \(B, 16, F, H, W\), got \(1, 4, 3, 4, 4\)$"):
        decode_latents(tiny_vae, torch.zeros(1, 4, 3, 4, 4))


# ---------------------------------------------------------------------------------------------------------------------
# Other layouts: more latent channels, 4x spatial compression
# ---------------------------------------------------------------------------------------------------------------------

FOUR_X = {"dim_mult": [1, 2, 4], "temperal_downsample": [True, True], "scale_factor_spatial": 4}


def test_spatial_factor_follows_the_stages() -> None:
    assert spatial_factor(WAN_VAE_CONFIG) == 8
    assert spatial_factor({**WAN_VAE_CONFIG, **FOUR_X}) == 4
    assert spatial_factor(AutoencoderKLWan(base_dim=4, **FOUR_X).config) == 4


@pytest.mark.parametrize(
    ("overrides", "latent_shape"),
    [({**FOUR_X, "z_dim": 16}, (2, 16, 3, 8, 12)), ({"z_dim": 32}, (2, 32, 3, 4, 6))],
    ids=["4x-spatial", "32-channels"],
)
def test_other_layouts_encode_and_decode(video: torch.Tensor, overrides: dict, latent_shape: tuple) -> None:
    """Three ``dim_mult`` stages: latents 4x smaller in height and width (frames still 4k+1 -> 1+k); ``z_dim`` 32:
    32 channels. Decoding gives the video's shape back."""
    channels = overrides["z_dim"]
    torch.manual_seed(0)
    vae = AutoencoderKLWan(**{**WAN_VAE_CONFIG, "base_dim": 8, **overrides,
                              "latents_mean": [0.0] * channels, "latents_std": [1.0] * channels}).eval()  # fmt: skip
    latents = encode_video(vae, video)  # (2, 3, 9, 32, 48)
    assert latents.shape == latent_shape
    assert decode_latents(vae, latents).shape == video.shape


def test_four_x_spatial_vae_takes_sides_of_multiples_of_4() -> None:
    """20x12 frames fit a 4x VAE (latents 5x3) but not Wan2.1's 8x one; 18x12 fits neither, naming the 4."""
    torch.manual_seed(0)
    vae = AutoencoderKLWan(**{**WAN_VAE_CONFIG, "base_dim": 4, **FOUR_X}).eval()
    latents = encode_video(vae, torch.zeros(1, 3, 5, 20, 12))
    assert latents.shape == (1, 16, 2, 5, 3)
    assert decode_latents(vae, latents).shape == (1, 3, 5, 20, 12)
    with pytest.raises(
        ValueError, match=r"^video shape \(1, 3, 5, 18, 12\): height and width must be multiples of 4, got 18x12$"
    ):
        encode_video(vae, torch.zeros(1, 3, 5, 18, 12))
    with pytest.raises(ValueError, match=r"height and width must be multiples of 8, got 20x12$"):
        encode_video(AutoencoderKLWan(**{**WAN_VAE_CONFIG, "base_dim": 4}), torch.zeros(1, 3, 5, 20, 12))


# ---------------------------------------------------------------------------------------------------------------------
# Whole clips at once
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, FOUR_X], ids=["8x", "4x"])
def test_whole_clips_give_the_chunked_vaes_results(overrides: dict) -> None:
    """Encoding and decoding a 17-frame clip at once equals diffusers' chunk-by-chunk causal cache (float64, so that
    only rounding could differ), gradients included."""
    torch.manual_seed(0)
    vae = AutoencoderKLWan(**{**WAN_VAE_CONFIG, "base_dim": 4, "num_res_blocks": 1, **overrides}).double().eval()
    video = torch.rand(2, 3, 17, 16, 16, dtype=torch.float64) * 2 - 1
    chunked, whole = vae.encode(video).latent_dist, encode_whole_clip(vae, video)
    torch.testing.assert_close(whole.mean, chunked.mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(whole.logvar, chunked.logvar, rtol=0, atol=1e-12)
    latents = torch.randn_like(chunked.mean, requires_grad=True)
    chunked_video = vae.decode(latents).sample
    (chunked_gradient,) = torch.autograd.grad(chunked_video.square().sum(), latents)
    whole_video = decode_whole_clip(vae, latents)
    (whole_gradient,) = torch.autograd.grad(whole_video.square().sum(), latents)
    torch.testing.assert_close(whole_video, chunked_video, rtol=0, atol=1e-12)
    torch.testing.assert_close(whole_gradient, chunked_gradient, rtol=1e-10, atol=1e-12)
