"""Matched pixels (SIFT + ratio test + fundamental-matrix RANSAC) on the bundled example clip and its scene.

The example clip is 128 x 128 synthetic footage: at the module's contrast threshold SIFT finds a couple of hundred
keypoints a frame there, enough to tell matching frames (hundreds of inliers) from unrelated ones (none).
"""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import recammaster
from recammaster.data.synth.engine import make_scene, to_render_scene
from recammaster.data.synth.render import render_tensors
from recammaster.data.synth.stream import crop_intrinsics
from recammaster.errors import ReCamMasterError
from recammaster.evaluation.matching import MatchedPixels, count_inliers, matched_pixels
from recammaster.video import read_video

cv2 = pytest.importorskip("cv2")  # an optional dependency: opencv-python-headless

EXAMPLE = Path(recammaster.__file__).parent / "assets" / "example" / "example.mp4"  # cam01 of scene 3 of seed 2024
FRAMES = 9


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return read_video(EXAMPLE, FRAMES)


def warped(video: np.ndarray, angle_deg: float, shift: tuple[float, float]) -> np.ndarray:
    """Each frame turned about its centre and shifted, the uncovered border filled by reflection."""
    height, width = video.shape[1:3]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle_deg, 1.0)
    matrix[:, 2] += shift
    return np.stack([cv2.warpAffine(f, matrix, (width, height), borderMode=cv2.BORDER_REFLECT) for f in video])


def noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_identical_frames_match_every_keypoint(clip):
    scores = matched_pixels(clip, clip)
    assert isinstance(scores, MatchedPixels)
    np.testing.assert_array_equal(scores.frames, np.arange(FRAMES))
    assert np.all(scores.inliers > 150)
    np.testing.assert_array_equal(scores.inliers, scores.matches)  # every match is exact, so every one is an inlier
    assert scores.mean == pytest.approx(scores.inliers.mean())


def test_a_turned_and_shifted_copy_still_matches(clip):
    identical = matched_pixels(clip, clip, every=4)
    scores = matched_pixels(clip, warped(clip, 10.0, (5.0, -3.0)), every=4)
    assert np.all(scores.inliers > 80)
    assert np.all(scores.inliers <= identical.inliers)  # keypoints leave the frame; resampling blurs some away


def test_two_cameras_at_the_same_moment_match_through_parallax():
    """Cameras 1 and 5 of the example's scene at frame 0: a real change of viewpoint, not a 2-D warp."""
    spec = make_scene(2024, 3)
    poses = np.stack([spec.trajectories[0].poses[:1], spec.trajectories[4].poses[:1]])
    views = render_tensors(to_render_scene(spec), poses, crop_intrinsics(spec.lens, 128, 128), 128).images.numpy()
    matches, inliers = count_inliers(views[0, 0], views[1, 0])
    assert 40 < inliers <= matches


def test_unrelated_images_give_no_inliers(clip):
    assert np.all(matched_pixels(noise(0, clip.shape), noise(1, clip.shape), every=4).inliers <= 10)
    assert np.all(matched_pixels(clip, noise(2, clip.shape), every=4).inliers <= 10)


def test_every_kth_frame_scores_the_same_frames_the_same(clip):
    """Each frame's RANSAC is seeded afresh, so a subset gives the same counts as the full run on those frames."""
    other = warped(clip, 5.0, (2.0, 2.0))
    full, subset = matched_pixels(clip, other), matched_pixels(clip, other, every=3)
    np.testing.assert_array_equal(subset.frames, [0, 3, 6])
    np.testing.assert_array_equal(subset.inliers, full.inliers[::3])


def test_the_counts_are_deterministic_across_calls_and_thread_counts(clip):
    other = warped(clip, 12.0, (4.0, 1.0))
    first, second = matched_pixels(clip, other, every=2), matched_pixels(clip, other, every=2)
    np.testing.assert_array_equal(first.inliers, second.inliers)
    np.testing.assert_array_equal(first.matches, second.matches)
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        single = matched_pixels(clip, other, every=2)
    finally:
        cv2.setNumThreads(threads)
    np.testing.assert_array_equal(single.inliers, first.inliers)


def test_frames_of_another_size_are_matched(clip):
    larger = np.stack([cv2.resize(f, (192, 192), interpolation=cv2.INTER_CUBIC) for f in clip[:1]])
    assert matched_pixels(clip[:1], larger).inliers[0] > 50


@pytest.mark.parametrize(
    ("source", "result", "options", "message"),
    [
        (np.zeros((2, 32, 32, 3), np.float32), np.zeros((2, 32, 32, 3), np.uint8), {},
         "source must be a (T, H, W, 3) uint8 video, got float32 (2, 32, 32, 3)"),
        (np.zeros((2, 32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8), {},
         "result must be a (T, H, W, 3) uint8 video, got uint8 (32, 32, 3)"),
        (np.zeros((2, 32, 32, 3), np.uint8), np.zeros((3, 32, 32, 3), np.uint8), {},
         "source and result must have as many frames, at least one: 2 vs 3"),
        (np.zeros((0, 32, 32, 3), np.uint8), np.zeros((0, 32, 32, 3), np.uint8), {},
         "source and result must have as many frames, at least one: 0 vs 0"),
        (np.zeros((2, 32, 32, 3), np.uint8), np.zeros((2, 32, 32, 3), np.uint8), {"every": 0},
         "every must be at least 1, got 0"),
        (np.zeros((2, 32, 32, 3), np.uint8), np.zeros((2, 32, 32, 3), np.uint8), {"ratio": 1.5},
         "ratio must be in (0, 1], got 1.5"),
        (np.zeros((2, 32, 32, 3), np.uint8), np.zeros((2, 32, 32, 3), np.uint8), {"threshold_px": 0},
         "threshold_px must be positive, got 0"),
    ],
)  # fmt: skip
def test_bad_videos_and_options_are_refused(source, result, options, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        matched_pixels(source, result, **options)


def test_a_bad_frame_is_refused_naming_it():
    message = "second must be an (H, W, 3) uint8 frame, got uint8 (32, 32)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        count_inliers(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8))


def test_blank_frames_score_zero_without_error():
    blank = np.full((1, 64, 64, 3), 128, np.uint8)
    scores = matched_pixels(blank, blank)
    assert (scores.matches[0], scores.inliers[0]) == (0, 0)


def test_without_opencv_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if not installed
    message = "matched pixels need OpenCV: pip install opencv-python-headless"
    with pytest.raises(ReCamMasterError, match=f"^{re.escape(message)}$"):
        count_inliers(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8))
