"""Per-frame image metrics of a predicted video against a target: PSNR and SSIM.

Both take uint8 videos (T, H, W, 3) and return one float64 value per frame, so that a caller can
average over frames, scenes or presets as it needs and still plot a curve over time.

- PSNR: ``10 log10(255^2 / MSE)``, the MSE over all pixels and the three channels of a frame, in
  [0, 255]; identical frames give ``inf``.
- SSIM (Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from error visibility to
  structural similarity", IEEE TIP 2004, eq. 13): local statistics under an 11x11 Gaussian window of
  sigma 1.5, ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, population (not sample) variances,
  computed on each RGB channel separately over the positions where the window fits inside the frame
  ("valid", as the authors' MATLAB ``ssim_index`` filters), then averaged over those positions and the
  three channels. This is ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)``; torchmetrics' SSIM
  also averages the positions within 5 pixels of the border, over a reflect-padded frame, and so gives
  other (usually lower) values. :func:`ssim_map` gives the per-position values before that average, for
  metrics over part of a frame (:mod:`recammaster.evaluation.regions`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

Array = np.ndarray

MAX_VALUE = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check_pair(prediction: Array, target: Array) -> tuple[Array, Array]:
    prediction, target = np.asarray(prediction), np.asarray(target)
    for name, video in (("prediction", prediction), ("target", target)):
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"{name} must be a (T, H, W, 3) uint8 video, got {video.dtype} {video.shape}")
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target differ in shape: {prediction.shape} vs {target.shape}")
    return prediction, target


def mse(prediction: Array, target: Array) -> Array:
    """Mean squared error per frame, over pixels and channels, on the [0, 255] scale: (T,) float64."""
    prediction, target = _check_pair(prediction, target)
    difference = prediction.astype(np.float64) - target.astype(np.float64)
    return np.mean(difference**2, axis=(1, 2, 3))


def psnr(prediction: Array, target: Array) -> Array:
    """Peak signal-to-noise ratio per frame in dB, (T,) float64; ``inf`` where the frames are identical."""
    error = mse(prediction, target)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(MAX_VALUE**2 / error)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The normalised 1-D Gaussian whose outer product with itself is SSIM's 2-D window, (size,) float64."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def _local_mean(images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Gaussian-weighted mean around each valid position of (N, 1, H, W) images, as two 1-D passes."""
    size = len(window)
    images = F.conv2d(images, window.reshape(1, 1, size, 1))
    return F.conv2d(images, window.reshape(1, 1, 1, size))


def _ssim_planes(prediction: Array, target: Array) -> torch.Tensor:
    """SSIM at every valid window position of every channel: (T, 3, H - 10, W - 10) float64 (for an 11 window)."""
    prediction, target = _check_pair(prediction, target)
    frames, height, width = prediction.shape[:3]
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {height}x{width}")
    window = gaussian_window()

    def planes(video: Array) -> torch.Tensor:  # (T, H, W, 3) -> (T * 3, 1, H, W), one plane per channel
        return torch.from_numpy(video).to(torch.float64).permute(0, 3, 1, 2).reshape(-1, 1, height, width)

    x, y = planes(prediction), planes(target)
    mean_x, mean_y = _local_mean(x, window), _local_mean(y, window)
    variance_x = _local_mean(x * x, window) - mean_x**2
    variance_y = _local_mean(y * y, window) - mean_y**2
    covariance = _local_mean(x * y, window) - mean_x * mean_y
    c1, c2 = (SSIM_K1 * MAX_VALUE) ** 2, (SSIM_K2 * MAX_VALUE) ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * covariance + c2)
    denominator = (mean_x**2 + mean_y**2 + c1) * (variance_x + variance_y + c2)
    local = numerator / denominator  # (T * 3, 1, H - 10, W - 10)
    return local.reshape(frames, 3, *local.shape[2:])


def ssim_map(prediction: Array, target: Array) -> Array:
    """SSIM at each valid window position and channel, (T, H - 10, W - 10, 3) float64, for masked averages.

    Position ``(i, j)`` is the window centred on pixel ``(i + 5, j + 5)``: the map covers the pixels at least
    five from the border, and :func:`ssim` is its mean.
    """
    return _ssim_planes(prediction, target).permute(0, 2, 3, 1).numpy()


def ssim(prediction: Array, target: Array) -> Array:
    """Structural similarity per frame, mean over the RGB channels and valid window positions: (T,) float64."""
    return _ssim_planes(prediction, target).mean(dim=(2, 3)).mean(dim=1).numpy()
