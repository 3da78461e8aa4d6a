"""RotErr and TransErr: exact values on hand-built poses, and COLMAP on a synthetic scene filmed along a known path.

The real reconstruction films held-out scene 1 of seed 1000 (indoors, a checkered floor and striped walls
that give SIFT enough corners) along the arc-left preset: it both turns and moves, so both errors are
tested. 17 frames of 192 x 192 turn about 1.9 degrees per frame, like every 4th frame of the 81-frame
preset; in steps of twice that, COLMAP often flips or drops frames on this scene. Not every synthetic
scene has the texture: on scene 2 (outdoors, a smooth mottled ground under a plain sky) COLMAP registers
only about half of the frames, and such runs count as failed.
"""

import importlib.util
import math

import numpy as np
import pytest

from recammaster.cameras.geometry import make_pose, rotation_y, yaw_pitch_roll
from recammaster.cameras.presets import get_preset
from recammaster.cameras.trajectory import static
from recammaster.data.synth.engine import make_scene, to_render_scene
from recammaster.data.synth.render import render_tensors
from recammaster.data.synth.stream import crop_intrinsics
from recammaster.errors import ReCamMasterError
from recammaster.evaluation.camera_accuracy import (
    CameraAccuracyError,
    camera_accuracy,
    estimate_trajectory,
    rotation_error,
    translation_error,
)

needs_colmap = pytest.mark.skipif(importlib.util.find_spec("pycolmap") is None, reason="pycolmap is not installed")

SEED, SCENE, SIZE, FRAMES = 1000, 1, 192, 17


def arc(num_frames: int = 9) -> np.ndarray:
    return get_preset("arc-left")(num_frames=num_frames).poses


def grey_video(num_frames: int = 5) -> np.ndarray:
    return np.full((num_frames, 64, 64, 3), 128, dtype=np.uint8)


# ---------------------------------------------------------------------------
# The metrics on hand-built poses
# ---------------------------------------------------------------------------


def test_identical_trajectories_give_zero():
    assert rotation_error(arc(), arc()) == 0.0
    assert translation_error(arc(), arc()) == 0.0


def test_rotation_error_is_the_angle_between_relative_rotations_in_degrees():
    reference = arc()
    estimated = reference.copy()
    estimated[3, :3, :3] = estimated[3, :3, :3] @ rotation_y(math.radians(10.0))
    assert rotation_error(estimated, reference) == pytest.approx(10.0, abs=1e-9)
    estimated[5, :3, :3] = estimated[5, :3, :3] @ yaw_pitch_roll(0.0, math.radians(4.0), 0.0)
    assert rotation_error(estimated, reference) == pytest.approx(14.0, abs=1e-9)  # summed over frames


def test_errors_ignore_the_world_frame_and_the_scale_of_the_estimate():
    """COLMAP's world is arbitrary and its scale too: only poses relative to frame 0, normalised, count."""
    reference = arc()
    world = make_pose(yaw_pitch_roll(0.3, -0.2, 0.1), [1.0, -2.0, 5.0])
    estimated = world @ reference
    estimated[:, :3, 3] *= 3.7  # a rigid move scaled about the world origin: a similarity transform
    assert rotation_error(estimated, reference) == pytest.approx(0.0, abs=1e-5)  # arccos near 1: ~1e-8 rad
    assert translation_error(estimated, reference) == pytest.approx(0.0, abs=1e-12)


def test_translation_error_sums_distances_between_normalised_positions():
    reference = make_pose(np.eye(3), [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 0.0, 0.0]])
    estimated = make_pose(np.eye(3), [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [2.0, 0.0, 0.0]])  # twice the size
    # Normalised by the farthest camera (frame 2): frame 1 sits 0.5 off the reference, the others on it.
    assert translation_error(estimated, reference) == pytest.approx(0.5, abs=1e-12)


def test_a_reference_that_only_turns_leaves_any_estimated_motion_at_full_size():
    """Pans and tilts have no size to normalise by: the estimate's wander counts as 1 at its farthest frame."""
    reference = get_preset("pan-right")(num_frames=3).poses
    estimated = reference.copy()
    estimated[2, :3, 3] = [0.0, 0.0, 1e-3]
    assert translation_error(estimated, reference) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("estimated", "message"),
    [
        (np.eye(4)[None].repeat(8, axis=0), "estimated and reference differ in frame count: 8 vs 9"),
        (np.zeros((9, 3, 4)), "estimated must have shape (frames, 4, 4), got (9, 3, 4)"),
        (np.diag([1.0, 1.0, -1.0, 1.0])[None].repeat(9, axis=0),
         "estimated: frame 0: rotation part is a reflection (determinant -1), not a rotation"),
        (np.full((9, 4, 4), np.nan), "estimated: frame 0: matrix holds non-finite values"),
    ],
)  # fmt: skip
def test_bad_poses_are_refused_by_name(estimated, message):
    for error in (rotation_error, translation_error):
        with pytest.raises(CameraAccuracyError) as caught:
            error(estimated, arc())
        assert str(caught.value) == message


# ---------------------------------------------------------------------------
# Input checks of the COLMAP runs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "options", "message"),
    [
        (grey_video().astype(np.float32), {}, "frames must be a (T, H, W, 3) uint8 video, got float32 (5, 64, 64, 3)"),
        (grey_video()[..., 0], {}, "frames must be a (T, H, W, 3) uint8 video, got uint8 (5, 64, 64)"),
        (grey_video(6), {}, "frames and reference_poses differ in frame count: 6 vs 5"),
        (grey_video(), {"sample_every": 0}, "sample_every must be at least 1, got 0"),
        (grey_video(), {"sample_every": 3}, "sample_every=3 keeps 2 frames; COLMAP needs at least 3"),
        (grey_video(), {"runs": 0}, "runs must be at least 1, got 0"),
        (grey_video(), {"focal_px": -100.0}, "focal_px must be a positive number of pixels or None, got -100.0"),
    ],
)
def test_camera_accuracy_refuses_bad_input_by_name(frames, options, message):
    with pytest.raises(CameraAccuracyError) as caught:
        camera_accuracy(frames, static(5).poses, **options)
    assert str(caught.value) == message
    assert isinstance(caught.value, ReCamMasterError)


def test_estimate_trajectory_refuses_too_few_frames_and_a_used_workdir(tmp_path):
    with pytest.raises(CameraAccuracyError, match=r"^COLMAP needs at least 3 frames, got 2$"):
        estimate_trajectory(grey_video(2))
    (tmp_path / "database.db").touch()
    with pytest.raises(CameraAccuracyError) as caught:
        estimate_trajectory(grey_video(), workdir=tmp_path)
    assert str(caught.value) == f"workdir {tmp_path} is not empty; give an empty or new folder"


# ---------------------------------------------------------------------------
# COLMAP on real frames
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filmed_arc() -> tuple[np.ndarray, np.ndarray, float]:
    """Frames of the scene along arc-left placed at its first camera, the preset's poses, the focal length."""
    spec = make_scene(SEED, SCENE, FRAMES)
    request = get_preset("arc-left")(num_frames=FRAMES)
    poses = request.placed_at(spec.trajectories[0].poses[0]).poses
    intrinsics = crop_intrinsics(spec.lens, SIZE, SIZE)
    frames = render_tensors(to_render_scene(spec), poses[None].copy(), intrinsics, SIZE).images[0].numpy()
    return frames, request.poses, float(intrinsics[0, 0])


@needs_colmap
def test_colmap_recovers_the_filmed_arc_and_tells_it_from_the_opposite_one(filmed_arc):
    frames, requested, focal_px = filmed_arc
    accuracy = camera_accuracy(frames, requested, runs=2, focal_px=focal_px, sample_every=1)
    assert (accuracy.runs, accuracy.failed_runs, accuracy.failures, accuracy.num_frames) == (2, 0, [], FRAMES)
    assert accuracy.rot_err_deg < 60.0  # summed over 17 frames: under 4 degrees a frame, of a 30 degree arc
    assert accuracy.trans_err < 3.0
    assert accuracy.rot_err_deg == pytest.approx(np.mean(accuracy.rot_errs_deg))

    opposite = get_preset("arc-right")(num_frames=FRAMES).poses
    for estimate in accuracy.estimates:
        np.testing.assert_allclose(estimate.poses[0], np.eye(4), atol=1e-9)
        assert estimate.focal_px == focal_px  # fixed, not refined
        assert rotation_error(estimate.poses, opposite) > 5 * accuracy.rot_err_deg
        assert translation_error(estimate.poses, opposite) > 3 * accuracy.trans_err


@needs_colmap
def test_colmap_estimates_the_focal_length_when_not_given(filmed_arc, tmp_path):
    frames, requested, focal_px = filmed_arc
    estimate = estimate_trajectory(frames, seed=0, workdir=tmp_path / "run")
    assert (estimate.failed, estimate.registered, estimate.num_frames) == (False, FRAMES, FRAMES)
    assert estimate.focal_px == pytest.approx(focal_px, rel=0.25)
    assert rotation_error(estimate.poses, requested) < 60.0
    assert len(list((tmp_path / "run" / "images").iterdir())) == FRAMES  # the workdir keeps what COLMAP saw


@needs_colmap
@pytest.mark.parametrize(
    "frames",
    [grey_video(), np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)],
    ids=["grey", "noise"],
)
def test_a_video_colmap_cannot_reconstruct_is_counted_as_failed(frames):
    accuracy = camera_accuracy(frames, static(5).poses, runs=2, sample_every=1)
    assert (accuracy.runs, accuracy.failed_runs) == (2, 2)
    assert accuracy.failures == [
        "seed 0: COLMAP built no model from the 5 frames",
        "seed 1: COLMAP built no model from the 5 frames",
    ]
    assert math.isnan(accuracy.rot_err_deg)
    assert math.isnan(accuracy.trans_err)
    assert all(estimate.poses is None for estimate in accuracy.estimates)
