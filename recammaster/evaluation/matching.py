"""Matched pixels between the source video and its re-rendering at the same time: SIFT, ratio test, RANSAC inliers.

The ReCamMaster paper (ICCV 2025, Table 1, "Mat. Pix.") measures how well a re-rendering keeps the source's
content by the number of pixels that GIM (a learned dense matcher) matches with confidence above a threshold
between the source frame and the generated frame of the same time. This module stands in for it with classic,
dependency-light parts: for each frame t, SIFT keypoints (Lowe, IJCV 2004) of source[t] and result[t], Lowe's
ratio test on their two nearest descriptors, and the inliers of a RANSAC fundamental matrix. The count is of
keypoint matches, not of dense pixels, and its detector and thresholds differ from GIM's, so the numbers are
comparable among themselves (models, presets, settings measured here), never with the paper's.

Why a fundamental matrix and not a homography: source[t] and result[t] show the same scene at the same moment
(characters in the same pose) from two camera centres, so every correct match obeys the epipolar constraint,
whatever the depth of its point. A homography holds only for a plane or a camera that just turns, and would
reject correct matches on everything off its dominant plane, the parallax a re-rendering is about. Where the
views are related by a homography (pure rotation, a flat scene, a shifted or rotated copy) a fundamental matrix
still fits every match, so those cases are counted too.

Determinism: keypoints are put in a canonical order (OpenCV's parallel detector may list them in any order),
matching is exhaustive (no randomised search trees), and OpenCV's RNG is reseeded (``cv2.setRNGSeed``, the
calling thread's generator) before each frame's RANSAC, so a frame's count depends only on its two images, not
on the frames scored before it. Thresholds are in pixels of the frames as given: compare videos of one size.

OpenCV (``opencv-python-headless``) is imported on first use; nothing else in the package needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from recammaster.errors import ReCamMasterError

if TYPE_CHECKING:
    import cv2

Array = np.ndarray

RATIO = 0.75  # Lowe's ratio test: keep a match whose best distance is under 0.75 x the second best
THRESHOLD_PX = 1.0  # RANSAC: largest distance of a point from its epipolar line, in pixels, for an inlier
CONFIDENCE = 0.999  # RANSAC stops once it is this sure to have drawn an all-inlier sample
MAX_ITERS = 2000  # RANSAC samples at most; with several hundred matches 0.999 is reached far sooner
# OpenCV's FM_RANSAC runs RANSAC only from 15 matches and switches to least median of squares (no pixel
# threshold) below, so a frame with fewer ratio-test matches scores 0. A model fits its 7-match minimal sample
# exactly, so counts of about ten or fewer are chance level.
MIN_MATCHES = 15
RNG_SEED = 0
# SIFT's default 0.04 is tuned for photographs; the flat shading of synthetic frames and small (128 px)
# renders then give a dozen keypoints a frame, too few for a stable count. 0.01 gives a few hundred.
CONTRAST_THRESHOLD = 0.01


@dataclass(frozen=True)
class MatchedPixels:
    """Per scored frame: its index, the ratio-test matches and the RANSAC inliers (the score)."""

    frames: Array  # (K,) int64 frame indices: 0, every, 2 * every, ...
    matches: Array  # (K,) int64 tentative matches after the ratio test
    inliers: Array  # (K,) int64

    @property
    def mean(self) -> float:
        """Mean inliers over the scored frames: the video's number."""
        return float(self.inliers.mean())


def _opencv() -> ModuleType:
    """OpenCV, imported on first use: it is needed here only, and is an optional dependency."""
    try:
        import cv2
    except ImportError as error:
        raise ReCamMasterError("matched pixels need OpenCV: pip install opencv-python-headless") from error
    return cv2


def _check(name: str, array: Array, ndim: int) -> Array:
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != ndim or array.shape[-1] != 3:
        kind = "a (T, H, W, 3) uint8 video" if ndim == 4 else "an (H, W, 3) uint8 frame"
        raise ValueError(f"{name} must be {kind}, got {array.dtype} {array.shape}")
    return array


def _features(detector: cv2.SIFT, frame: Array) -> tuple[Array, Array]:
    """Keypoint positions (N, 2) float32 and descriptors (N, 128) float32, in a canonical order."""
    cv2 = _opencv()
    keypoints, descriptors = detector.detectAndCompute(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), None)
    if not keypoints:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    table = np.array([(*k.pt, k.size, k.angle, k.response, k.octave) for k in keypoints])
    order = np.lexsort(table.T[::-1])  # by x, then y, size, angle ...
    return table[order, :2].astype(np.float32), descriptors[order]


def _ratio_matches(first: Array, second: Array, ratio: float) -> Array:
    """Index pairs (M, 2) of first -> second descriptors that pass the ratio test."""
    if len(first) == 0 or len(second) < 2:
        return np.zeros((0, 2), np.int64)
    cv2 = _opencv()
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(first, second, k=2)
    kept = [(best.queryIdx, best.trainIdx) for best, runner_up in pairs if best.distance < ratio * runner_up.distance]
    return np.array(kept, np.int64).reshape(-1, 2)


def count_inliers(
    first: Array,
    second: Array,
    *,
    ratio: float = RATIO,
    threshold_px: float = THRESHOLD_PX,
    contrast_threshold: float = CONTRAST_THRESHOLD,
    seed: int = RNG_SEED,
) -> tuple[int, int]:
    """(ratio-test matches, RANSAC fundamental-matrix inliers) between two (H, W, 3) uint8 RGB frames."""
    first, second = _check("first", first, 3), _check("second", second, 3)
    cv2 = _opencv()
    detector = cv2.SIFT_create(contrastThreshold=contrast_threshold)
    points_a, descriptors_a = _features(detector, first)
    points_b, descriptors_b = _features(detector, second)
    pairs = _ratio_matches(descriptors_a, descriptors_b, ratio)
    if len(pairs) < MIN_MATCHES:
        return len(pairs), 0
    cv2.setRNGSeed(seed)
    matrix, inlier_mask = cv2.findFundamentalMat(
        points_a[pairs[:, 0]], points_b[pairs[:, 1]], cv2.FM_RANSAC, threshold_px, CONFIDENCE, MAX_ITERS
    )
    if matrix is None or inlier_mask is None:  # RANSAC found no model (e.g. all points on a line)
        return len(pairs), 0
    return len(pairs), int(inlier_mask.sum())


def matched_pixels(
    source: Array,
    result: Array,
    *,
    every: int = 1,
    ratio: float = RATIO,
    threshold_px: float = THRESHOLD_PX,
    contrast_threshold: float = CONTRAST_THRESHOLD,
    seed: int = RNG_SEED,
) -> MatchedPixels:
    """Inliers between ``source[t]`` and ``result[t]`` for t = 0, every, 2 * every, ... of two uint8 videos.

    The frames may differ in size (a result at another resolution); they must be as many. ``every`` > 1 scores
    a subset for speed: neighbouring frames are nearly alike, so every 4th frame (the latent frames) keeps the
    mean close at a quarter of the cost.
    """
    source, result = _check("source", source, 4), _check("result", result, 4)
    if len(source) != len(result) or not len(source):
        raise ValueError(f"source and result must have as many frames, at least one: {len(source)} vs {len(result)}")
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if threshold_px <= 0:
        raise ValueError(f"threshold_px must be positive, got {threshold_px}")
    frames = np.arange(0, len(source), every)
    counts = [
        count_inliers(source[t], result[t], ratio=ratio, threshold_px=threshold_px,
                      contrast_threshold=contrast_threshold, seed=seed)
        for t in frames
    ]  # fmt: skip
    matches, inliers = np.array(counts, np.int64).reshape(-1, 2).T
    return MatchedPixels(frames=frames, matches=matches, inliers=inliers)
