"""PSNR and SSIM on two parts of a synthetic target view: what the source video shows, and what it never showed.

A re-rendering along a new camera must copy what the source saw (a geometry and consistency task) and invent
what it did not (a generation task); one whole-frame number mixes both. The synthetic engine knows the geometry:
:func:`recammaster.data.synth.render.render_tensors` gives each view's depth (metres along the camera z axis,
inf for sky). So for frame t, a pixel of the target view is

- **visible** when the scene point it shows is seen by the source camera at the same frame t (same moment, so
  the characters stand still between the two views), and
- **revealed** otherwise: outside the source frame, behind the source camera, or hidden behind something.

:func:`visible_mask` decides this per pixel. Its point is treated in homogeneous coordinates with the inverse
depth as the fourth one: the target pixel centre's ray ``K^-1 (u, v, 1)`` (z = 1) with ``w = 1 / depth`` moves
into the source camera as ``q = R ray + t w``, lands at ``K q`` and has source inverse depth ``w / q_z``.

- Inside the source frame: ``q_z > 0`` and the projection inside ``[0, W) x [0, H)``.
- Occlusion: the projection falls in the source pixel whose centre ray the renderer cast, which holds the
  inverse depth ``s`` of what the source sees there. The point is visible when its inverse depth agrees with
  ``s`` within ``tolerance`` (relative) plus the change of ``s`` from the pixel centre to the projection,
  estimated as offset x step along each axis (the step: the larger change of ``s`` to the two neighbours).
  Inverse depth is linear in the pixel position on any plane, so on a slanted floor or wall, however grazing,
  this is the true change and nothing is mistaken for occlusion. Across a depth edge the step is the jump and
  the offset under half a pixel, so a hidden point, which differs by the whole jump, stays hidden. Masks can be
  a pixel off along depth edges, no more.
- Sky (infinite depth) is a point at infinity: ``w = 0``, so only the rotation moves its direction (no
  parallax). It is visible when that direction lies inside the source frame on a pixel where the source sees
  sky too (inverse depth 0, by the same rule); where the source sees a surface in that direction, the sky
  behind it is hidden.

Both views must come from the same render without supersampling (a supersampled render takes its depth from
one subpixel, a quarter pixel off the centre the ray above assumes), with one intrinsics matrix for both.

:func:`masked_psnr` is PSNR over the masked pixels (all three channels). :func:`masked_ssim` is the mean of the
project's SSIM map (:func:`recammaster.evaluation.metrics.ssim_map`: 11x11 Gaussian window, valid positions
only) over the positions whose window *centre* pixel is in the mask, so a thin region still counts, and the
pixels within five of the border (centre of no valid window) never do. A frame whose region is empty has no
value: NaN (not 0, which would read as a perfect or a worst score). :func:`region_scores` gives both metrics on
both regions and the fraction of the frame each region covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recammaster.evaluation.metrics import MAX_VALUE, SSIM_WINDOW, _check_pair, ssim_map

Array = np.ndarray

DEPTH_TOLERANCE = 0.01  # relative: 1 cm at 1 m, 10 cm at 10 m; covers float32 depth and curved surfaces


# ---------------------------------------------------------------------------
# Visibility from depth
# ---------------------------------------------------------------------------


def _check_views(target_depth: Array, source_depth: Array, target_poses: Array, source_poses: Array,
                 intrinsics: Array) -> tuple[Array, ...]:  # fmt: skip
    target_depth, source_depth = np.asarray(target_depth), np.asarray(source_depth)
    target_poses, source_poses = np.asarray(target_poses, np.float64), np.asarray(source_poses, np.float64)
    intrinsics = np.asarray(intrinsics, np.float64)
    for name, depth in (("target_depth", target_depth), ("source_depth", source_depth)):
        if depth.ndim != 3 or not np.issubdtype(depth.dtype, np.floating):
            raise ValueError(f"{name} must be (T, H, W) floating-point depth, got {depth.dtype} {depth.shape}")
        if not np.all(depth > 0):
            raise ValueError(f"{name} must be positive metres along the camera z axis (inf for sky), found "
                             f"{np.sum(~(depth > 0))} zero, negative or NaN values")  # fmt: skip
    if target_depth.shape != source_depth.shape:
        raise ValueError(f"target_depth and source_depth differ in shape: {target_depth.shape} vs {source_depth.shape}")
    frames = len(target_depth)
    for name, poses in (("target_poses", target_poses), ("source_poses", source_poses)):
        if poses.shape != (frames, 4, 4):
            raise ValueError(f"{name} must be ({frames}, 4, 4) camera-to-world poses, one per frame, got {poses.shape}")
    if intrinsics.shape != (3, 3):
        raise ValueError(f"intrinsics must be a 3x3 pinhole matrix, got shape {intrinsics.shape}")
    return target_depth, source_depth, target_poses, source_poses, intrinsics


def _steps(inverse_depth: Array, axis: int) -> Array:
    """Per pixel, the larger change of inverse depth to its two neighbours along ``axis`` (one at the border)."""
    step = np.abs(np.diff(inverse_depth, axis=axis))
    before, after = [(0, 0), (0, 0)], [(0, 0), (0, 0)]
    before[axis], after[axis] = (1, 0), (0, 1)
    return np.maximum(np.pad(step, before), np.pad(step, after))


def visible_mask(
    target_depth: Array,
    source_depth: Array,
    target_poses: Array,
    source_poses: Array,
    intrinsics: Array,
    *,
    tolerance: float = DEPTH_TOLERANCE,
) -> Array:
    """Which target pixels the source camera sees at the same frame: (T, H, W) bool; the rest are revealed.

    Depths are (T, H, W) metres along each camera's z axis, inf for sky, as the renderer gives them; poses are
    (T, 4, 4) OpenCV camera-to-world matrices in metres (x right, y down, z forward); ``intrinsics`` is the 3x3
    pinhole matrix of both views. ``tolerance`` is the relative depth difference still called agreement.
    """
    target_depth, source_depth, target_poses, source_poses, intrinsics = _check_views(
        target_depth, source_depth, target_poses, source_poses, intrinsics
    )
    if tolerance < 0:
        raise ValueError(f"tolerance must be 0 or more, got {tolerance}")
    frames, height, width = target_depth.shape
    rows, columns = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")  # pixel centres
    pixels = np.stack([columns, rows, np.ones_like(rows)], axis=-1)  # (H, W, 3)
    rays = pixels @ np.linalg.inv(intrinsics).T  # camera-frame rays with z = 1
    visible = np.empty((frames, height, width), dtype=bool)
    for t in range(frames):
        with np.errstate(divide="ignore"):  # inf depth -> inverse depth 0
            target_inverse = 1.0 / target_depth[t].astype(np.float64)
            source_inverse = 1.0 / source_depth[t].astype(np.float64)
        relative = np.linalg.inv(source_poses[t]) @ target_poses[t]  # target camera -> source camera
        q = rays @ relative[:3, :3].T + target_inverse[..., None] * relative[:3, 3]  # homogeneous, scale 1 / w
        ahead = q[..., 2] > 0
        depth_z = np.where(ahead, q[..., 2], 1.0)
        projected = q @ intrinsics.T / depth_z[..., None]  # (H, W, 3): u, v, 1 in the source image
        u, v = projected[..., 0], projected[..., 1]
        inside = ahead & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        # The source pixel that contains the projection: the one whose centre ray the renderer cast there.
        column = np.clip(np.floor(np.where(inside, u, 0)), 0, width - 1).astype(np.int64)
        row = np.clip(np.floor(np.where(inside, v, 0)), 0, height - 1).astype(np.int64)
        point_inverse = target_inverse / depth_z  # w / q_z: the point's inverse depth in the source camera
        seen_inverse = source_inverse[row, column]
        # What a plane through the pixel centre can change between the centre and the projection.
        offset_u, offset_v = np.abs(u - column - 0.5), np.abs(v - row - 0.5)  # each at most 1/2 inside the frame
        change = offset_u * _steps(source_inverse, 1)[row, column] + offset_v * _steps(source_inverse, 0)[row, column]
        slack = tolerance * point_inverse + change
        visible[t] = inside & (np.abs(point_inverse - seen_inverse) <= slack)
    return visible


# ---------------------------------------------------------------------------
# Metrics over a mask
# ---------------------------------------------------------------------------


def _check_mask(prediction: Array, mask: Array) -> Array:
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise ValueError(f"mask must be a boolean (T, H, W) array, got {mask.dtype}")
    if mask.shape != np.shape(prediction)[:3]:
        raise ValueError(f"mask must have the videos' (T, H, W) shape {np.shape(prediction)[:3]}, got {mask.shape}")
    return mask


def masked_psnr(prediction: Array, target: Array, mask: Array) -> Array:
    """PSNR per frame over the pixels where ``mask`` (T, H, W) is true: (T,) dB, NaN where the mask is empty.

    With an all-true mask this is :func:`recammaster.evaluation.metrics.psnr`; identical pixels give inf.
    """
    prediction, target = _check_pair(prediction, target)
    mask = _check_mask(prediction, mask)
    difference = prediction.astype(np.float64) - target.astype(np.float64)
    squared = np.where(mask[..., None], difference**2, 0.0).sum(axis=(1, 2, 3))
    count = 3.0 * mask.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        error = squared / count  # NaN for 0 / 0
        return 10.0 * np.log10(MAX_VALUE**2 / error)


def masked_ssim(prediction: Array, target: Array, mask: Array) -> Array:
    """Mean SSIM per frame over the window positions centred on a masked pixel: (T,), NaN where there are none.

    With an all-true mask this is :func:`recammaster.evaluation.metrics.ssim`.
    """
    prediction, target = _check_pair(prediction, target)
    mask = _check_mask(prediction, mask)
    local = ssim_map(prediction, target)  # (T, H - 10, W - 10, 3)
    margin = SSIM_WINDOW // 2
    centres = mask[:, margin : mask.shape[1] - margin, margin : mask.shape[2] - margin]
    total = np.where(centres[..., None], local, 0.0).sum(axis=(1, 2, 3))
    with np.errstate(invalid="ignore"):
        return total / (3.0 * centres.sum(axis=(1, 2)))


@dataclass(frozen=True)
class RegionScores:
    """Per frame: PSNR and SSIM on the pixels the source shows and on those it does not, and their share.

    For a video number average with ``np.nanmean``: a frame whose region is empty has no value, not a bad one.
    """

    visible_fraction: Array  # (T,) share of the frame's pixels visible in the source
    psnr_visible: Array  # (T,) dB; NaN: no pixel of the frame is visible
    psnr_revealed: Array  # (T,) dB; NaN: nothing is revealed (e.g. the source camera itself)
    ssim_visible: Array  # (T,); NaN: no valid window position is centred on a visible pixel
    ssim_revealed: Array  # (T,); NaN: none is centred on a revealed pixel

    @property
    def revealed_fraction(self) -> Array:
        return 1.0 - self.visible_fraction


def region_scores(prediction: Array, target: Array, visible: Array) -> RegionScores:
    """PSNR and SSIM of ``prediction`` against the ground truth ``target`` on the visible and revealed pixels.

    ``visible`` is a (T, H, W) bool mask, usually :func:`visible_mask` of the target's and the source's depth.
    """
    visible = _check_mask(prediction, visible)
    return RegionScores(
        visible_fraction=visible.mean(axis=(1, 2)),
        psnr_visible=masked_psnr(prediction, target, visible),
        psnr_revealed=masked_psnr(prediction, target, ~visible),
        ssim_visible=masked_ssim(prediction, target, visible),
        ssim_revealed=masked_ssim(prediction, target, ~visible),
    )
