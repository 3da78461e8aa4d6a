"""PSNR and SSIM against a direct numpy computation of the textbook formulas, and values known in closed form."""

import math
import re

import numpy as np
import pytest

from recammaster.evaluation.metrics import psnr, ssim, ssim_map


def reference_psnr(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    errors = [np.mean((p.astype(np.float64) - t) ** 2) for p, t in zip(prediction, target, strict=True)]
    return np.array([20 * math.log10(255) - 10 * math.log10(e) if e else math.inf for e in errors])


def reference_ssim_map(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Wang et al. 2004 with a full 11x11 Gaussian window (sigma 1.5) at every position where it fits: (T, h, w, 3)."""
    offsets = np.arange(11) - 5.0
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    maps = []
    for frame_x, frame_y in zip(prediction, target, strict=True):
        channels = []
        for channel in range(3):
            x = np.lib.stride_tricks.sliding_window_view(frame_x[..., channel].astype(np.float64), (11, 11))
            y = np.lib.stride_tricks.sliding_window_view(frame_y[..., channel].astype(np.float64), (11, 11))
            mx, my = (x * window).sum(axis=(-2, -1)), (y * window).sum(axis=(-2, -1))
            vx = (((x - mx[..., None, None]) ** 2) * window).sum(axis=(-2, -1))
            vy = (((y - my[..., None, None]) ** 2) * window).sum(axis=(-2, -1))
            cxy = ((x - mx[..., None, None]) * (y - my[..., None, None]) * window).sum(axis=(-2, -1))
            channels.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
        maps.append(np.stack(channels, axis=-1))
    return np.stack(maps)


def reference_ssim(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    return reference_ssim_map(prediction, target).mean(axis=(1, 2, 3))


@pytest.fixture(scope="module")
def videos() -> tuple[np.ndarray, np.ndarray]:
    """A textured 3-frame video and a noisy, slightly shifted copy, 24 x 30 pixels."""
    generator = np.random.default_rng(0)
    t, y, x = np.meshgrid(np.arange(3), np.arange(24), np.arange(30), indexing="ij")
    target = np.stack([(x * 7 + t * 11) % 256, (y * 9 + x * 3) % 256, 128 + 100 * np.sin(x / 3 + y / 4 + t)], axis=-1)
    target = target.astype(np.uint8)
    noisy = np.roll(target, 1, axis=2).astype(np.int16) + generator.integers(-20, 21, target.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8), target


def test_psnr_matches_the_reference(videos):
    prediction, target = videos
    np.testing.assert_allclose(psnr(prediction, target), reference_psnr(prediction, target), rtol=1e-12)


def test_ssim_matches_the_reference(videos):
    prediction, target = videos
    values = ssim(prediction, target)
    assert values.shape == (3,)
    assert np.all((values > 0.05) & (values < 0.95))  # a real difference, not a trivial case
    np.testing.assert_allclose(values, reference_ssim(prediction, target), rtol=1e-10)


def test_ssim_map_is_the_reference_map_and_ssim_its_mean(videos):
    """Position (i, j) of the map is the window centred on pixel (i + 5, j + 5)."""
    prediction, target = videos
    local = ssim_map(prediction, target)
    assert local.shape == (3, 14, 20, 3)
    np.testing.assert_allclose(local, reference_ssim_map(prediction, target), rtol=1e-10)
    np.testing.assert_allclose(local.mean(axis=(1, 2, 3)), ssim(prediction, target), rtol=1e-13)


def test_ssim_is_torchmetrics_ssim_map_without_its_padded_border(videos):
    """torchmetrics averages its map over a reflect-padded frame; inside the border the maps agree."""
    functional = pytest.importorskip("torchmetrics.functional.image")
    import torch

    prediction, target = videos

    def planes(video):
        return torch.from_numpy(video).permute(0, 3, 1, 2).to(torch.float64)

    _, full = functional.structural_similarity_index_measure(
        planes(prediction), planes(target), gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=255.0,
        reduction="none", return_full_image=True,
    )  # fmt: skip
    np.testing.assert_allclose(ssim(prediction, target), full[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)).numpy(), rtol=1e-9)


def test_identical_videos_give_infinite_psnr_and_ssim_one(videos):
    _, target = videos
    assert np.all(np.isinf(psnr(target, target)))
    np.testing.assert_array_equal(ssim(target, target), 1.0)


@pytest.mark.parametrize("offset", [1, 5, 40])
def test_a_constant_offset_of_d_gives_20_log10_255_over_d(offset):
    target = np.random.default_rng(offset).integers(0, 200, (2, 16, 16, 3)).astype(np.uint8)
    np.testing.assert_allclose(psnr(target + np.uint8(offset), target), 20 * math.log10(255 / offset), rtol=1e-12)


def test_ssim_of_two_flat_frames_is_the_luminance_term():
    """Without structure only the means differ: SSIM = (2ab + C1) / (a^2 + b^2 + C1)."""
    a, b, c1 = 100.0, 130.0, (0.01 * 255) ** 2
    first, second = np.full((1, 16, 16, 3), a, np.uint8), np.full((1, 16, 16, 3), b, np.uint8)
    np.testing.assert_allclose(ssim(first, second), (2 * a * b + c1) / (a**2 + b**2 + c1), rtol=1e-12)


@pytest.mark.parametrize(
    ("shape", "dtype", "target_shape", "message"),
    [
        (
            (2, 16, 16, 3),
            np.uint8,
            (2, 16, 18, 3),
            "prediction and target differ in shape: (2, 16, 16, 3) vs (2, 16, 18, 3)",
        ),
        ((16, 16, 3), np.uint8, (16, 16, 3), "prediction must be a (T, H, W, 3) uint8 video, got uint8 (16, 16, 3)"),
        (
            (2, 16, 16, 3),
            np.float32,
            (2, 16, 16, 3),
            "prediction must be a (T, H, W, 3) uint8 video, got float32 (2, 16, 16, 3)",
        ),
        ((2, 8, 16, 3), np.uint8, (2, 8, 16, 3), "SSIM needs frames of at least 11x11 pixels, got 8x16"),
    ],
)
def test_bad_videos_are_refused_naming_the_argument(shape, dtype, target_shape, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ssim(np.zeros(shape, dtype), np.zeros(target_shape, np.uint8))
