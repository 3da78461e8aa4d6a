"""The MultiCamVideo camera sampler: every sample obeys its rule, measured on the poses themselves.

Stored parameters are only compared with what the poses show; each rule is checked from positions
and rotations (world z up, OpenCV camera axes: x right, y down, z forward).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recammaster.cameras import sampling
from recammaster.cameras.geometry import rotation_angle
from recammaster.cameras.lens import MULTICAM_LENSES
from recammaster.cameras.speed import SpeedCurve
from recammaster.errors import TrajectoryError

# The seed README's rules ("Camera" section of MultiCamVideo), written out here rather than read from
# the module, so a wrong constant there fails.
README_RADII_M = (3.0, 5.0, 7.0, 10.0)
README_MIN_START_DISTANCE_M = 0.5
README_MAX_START_PITCH_DEG = 45.0
README_PAN_DEG = (5.0, 45.0)
README_TILT_DEG = (5.0, 30.0)
README_ARC_DEG = (15.0, 75.0)
README_POINT_COUNTS = (1, 2, 3)
README_CAMERAS_PER_SCENE = 10

FRAMES = 17  # short clips keep the suite fast; speed and random-path tests use more
TIGHT = 1e-9
SEEDS = st.integers(0, 2**32 - 1)
KINDS = st.sampled_from(list(sampling.KIND_PROBABILITIES))
RADII = st.sampled_from([None, *README_RADII_M, 1.2])
CHARACTERS = st.tuples(st.floats(-20, 20, allow_nan=False), st.floats(-20, 20, allow_nan=False), st.floats(0, 2))
EXAMPLES = settings(max_examples=60, deadline=None)

# Expected camera axis and sign of each translation direction, written out independently of the
# module's table.
TRANSLATION_AXES = {
    "right": (0, 1.0),
    "left": (0, -1.0),
    "down": (1, 1.0),
    "up": (1, -1.0),
    "forward": (2, 1.0),
    "backward": (2, -1.0),
}


def draw(seed: int, kind: str | None = None, **options) -> sampling.SampledCamera:
    options.setdefault("num_frames", FRAMES)
    return sampling.sample_camera(seed, kind=kind, **options)


def degrees_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between vectors, accurate near zero too (arccos of a cosine is not)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] == 2:
        a, b = np.append(a, 0.0), np.append(b, 0.0)
    sine = np.linalg.norm(np.cross(a, b), axis=-1)
    return np.degrees(np.arctan2(sine, np.sum(a * b, axis=-1)))


def aim_error_deg(camera: sampling.SampledCamera) -> np.ndarray:
    """Per frame, the angle between the viewing axis and the direction to the character."""
    trajectory = camera.trajectory
    return degrees_between(trajectory.rotations[:, :, 2], camera.character - trajectory.positions)


def step_lengths(camera: sampling.SampledCamera) -> np.ndarray:
    return np.linalg.norm(np.diff(camera.trajectory.positions, axis=0), axis=1)


def step_angles(camera: sampling.SampledCamera) -> np.ndarray:
    rotations = camera.trajectory.rotations
    return rotation_angle(np.swapaxes(rotations[:-1], -1, -2) @ rotations[1:])


def total_rotation_deg(camera: sampling.SampledCamera) -> float:
    rotations = camera.trajectory.rotations
    return float(np.degrees(rotation_angle(rotations[0].T @ rotations[-1])))


def start_distance(camera: sampling.SampledCamera) -> float:
    return float(np.linalg.norm(camera.trajectory.positions[0] - camera.character))


# ---------------------------------------------------------------------------
# Start position
# ---------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, kind=KINDS, radius=RADII, character=CHARACTERS)
def test_start_lies_in_the_hemisphere_and_aims_at_the_character(seed, kind, radius, character):
    camera = draw(seed, kind, radius=radius, character=character)
    position = camera.trajectory.positions[0]
    forward = camera.trajectory.rotations[0][:, 2]

    distance = start_distance(camera)
    assert README_MIN_START_DISTANCE_M - TIGHT <= distance <= camera.radius + TIGHT
    assert distance == pytest.approx(camera.start_distance, abs=TIGHT)
    assert camera.radius == (radius if radius is not None else camera.radius)
    assert camera.radius in (*README_RADII_M, 1.2)
    assert position[2] >= character[2] - TIGHT  # upper hemisphere
    pitch = np.degrees(np.arcsin(forward[2]))
    assert abs(pitch) <= README_MAX_START_PITCH_DEG + 1e-7
    assert aim_error_deg(camera)[0] < 1e-6
    assert abs(camera.trajectory.rotations[0][2, 0]) < TIGHT  # no roll: the right axis is level


@EXAMPLES
@given(seed=SEEDS, kind=KINDS, character=CHARACTERS)
def test_every_frame_is_a_valid_pose_above_ground_and_clear_of_the_character(seed, kind, character):
    camera = draw(seed, kind, character=character)
    trajectory = camera.trajectory
    assert trajectory.num_frames == FRAMES
    assert trajectory.positions[:, 2].min() >= sampling.MIN_CAMERA_HEIGHT_M - TIGHT
    clearance = np.linalg.norm(trajectory.positions - camera.character, axis=1)
    assert clearance.min() >= sampling.MIN_CLEARANCE_M - TIGHT
    rotations = trajectory.rotations
    gram = np.swapaxes(rotations, -1, -2) @ rotations
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(3), gram.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)
    assert trajectory.lens is camera.lens
    assert camera.lens in MULTICAM_LENSES


# ---------------------------------------------------------------------------
# Motions
# ---------------------------------------------------------------------------


@EXAMPLES
@given(seed=SEEDS, direction=st.sampled_from([None, "left", "right"]))
def test_pan_turns_about_the_vertical_in_place(seed, direction):
    camera = draw(seed, "pan", direction=direction)
    rotations, positions = camera.trajectory.rotations, camera.trajectory.positions
    angle = total_rotation_deg(camera)
    assert README_PAN_DEG[0] - 1e-7 <= angle <= README_PAN_DEG[1] + 1e-7
    assert angle == pytest.approx(camera.angle_deg, abs=1e-7)
    turn = rotations[-1] @ rotations[0].T  # world-frame rotation: its axis must be world up
    np.testing.assert_allclose(turn @ [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], atol=TIGHT)
    turned_right = rotations[-1][:, 2] @ rotations[0][:, 0] > 0
    assert camera.direction in ("left", "right")
    assert turned_right == (camera.direction == "right")
    assert direction is None or camera.direction == direction
    np.testing.assert_array_equal(positions, np.broadcast_to(positions[0], positions.shape))


@EXAMPLES
@given(seed=SEEDS, direction=st.sampled_from([None, "up", "down"]))
def test_tilt_turns_about_the_camera_x_axis_in_place(seed, direction):
    camera = draw(seed, "tilt", direction=direction)
    rotations, positions = camera.trajectory.rotations, camera.trajectory.positions
    angle = total_rotation_deg(camera)
    assert README_TILT_DEG[0] - 1e-7 <= angle <= README_TILT_DEG[1] + 1e-7
    assert angle == pytest.approx(camera.angle_deg, abs=1e-7)
    turn = rotations[0].T @ rotations[-1]  # camera-frame rotation: its axis must be camera x
    np.testing.assert_allclose(turn[:, 0], [1.0, 0.0, 0.0], atol=TIGHT)
    looked_up = rotations[-1][:, 2] @ -rotations[0][:, 1] > 0
    assert looked_up == (camera.direction == "up")
    np.testing.assert_allclose(rotations[:, 2, 0], 0.0, atol=TIGHT)  # horizon stays level
    np.testing.assert_array_equal(positions, np.broadcast_to(positions[0], positions.shape))


@EXAMPLES
@given(seed=SEEDS, direction=st.sampled_from([None, *TRANSLATION_AXES]))
def test_translation_moves_along_one_camera_axis_without_turning(seed, direction):
    camera = draw(seed, "translation", direction=direction)
    rotations, positions = camera.trajectory.rotations, camera.trajectory.positions
    np.testing.assert_array_equal(rotations, np.broadcast_to(rotations[0], rotations.shape))

    displacement = positions[-1] - positions[0]
    distance = start_distance(camera)
    travel = np.linalg.norm(displacement)
    assert distance / 4 - TIGHT <= travel <= distance + TIGHT
    assert travel == pytest.approx(camera.distance, abs=TIGHT)
    local = rotations[0].T @ displacement  # displacement in the start camera's axes
    axis, sign = TRANSLATION_AXES[camera.direction]
    assert local[axis] == pytest.approx(sign * travel, abs=TIGHT)
    np.testing.assert_allclose(np.delete(local, axis), 0.0, atol=TIGHT)
    # Every frame lies on the segment from the first to the last position.
    offsets = positions - positions[0]
    np.testing.assert_allclose(np.cross(offsets, displacement), 0.0, atol=TIGHT)
    if camera.direction == "up":
        assert positions[-1, 2] > positions[0, 2]  # the camera's -y leans towards world up
    if camera.direction == "forward":
        assert np.linalg.norm(positions[-1] - camera.character) < distance


@EXAMPLES
@given(seed=SEEDS, direction=st.sampled_from([None, "left", "right"]), character=CHARACTERS)
def test_arc_circles_the_character_keeping_aim_and_distance(seed, direction, character):
    camera = draw(seed, "arc", direction=direction, character=character)
    positions = camera.trajectory.positions
    offsets = positions - camera.character
    radii = np.linalg.norm(offsets, axis=1)
    np.testing.assert_allclose(radii, radii[0], rtol=1e-12)
    np.testing.assert_allclose(positions[:, 2], positions[0, 2], atol=TIGHT)
    sweep = degrees_between(offsets[0, :2], offsets[-1, :2])
    assert README_ARC_DEG[0] - 1e-7 <= sweep <= README_ARC_DEG[1] + 1e-7
    assert sweep == pytest.approx(camera.angle_deg, abs=1e-6)
    assert total_rotation_deg(camera) == pytest.approx(sweep, abs=1e-6)
    assert aim_error_deg(camera).max() < 1e-6
    first_step = positions[1] - positions[0]
    moved_right = first_step @ camera.trajectory.rotations[0][:, 0] > 0
    assert moved_right == (camera.direction == "right")


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS)
def test_random_path_has_the_drawn_length_and_passes_its_points(seed):
    camera = draw(seed, "random", num_frames=81)
    positions = camera.trajectory.positions
    distance = start_distance(camera)
    length = camera.trajectory.path_length()
    # Frame-to-frame chords run slightly inside the smooth curve, so the measured length can fall
    # a little short of the drawn one, never beyond it.
    assert distance / 4 * 0.99 <= length <= distance + TIGHT
    assert length == pytest.approx(camera.distance, rel=0.01)
    assert length <= camera.distance + TIGHT

    assert camera.direction is None
    assert len(camera.points) in README_POINT_COUNTS
    largest_step = step_lengths(camera).max()
    for point in camera.points:
        assert np.linalg.norm(positions - point, axis=1).min() <= 0.6 * largest_step
    np.testing.assert_allclose(positions[-1], camera.points[-1], atol=1e-9)
    assert aim_error_deg(camera).max() < 1e-6


@EXAMPLES
@given(seed=SEEDS)
def test_static_camera_never_moves(seed):
    camera = draw(seed, "static")
    poses = camera.trajectory.poses
    np.testing.assert_array_equal(poses, np.broadcast_to(poses[0], poses.shape))
    assert camera.speed == SpeedCurve()
    assert camera.direction is None


# ---------------------------------------------------------------------------
# Speed
# ---------------------------------------------------------------------------


def step_sizes(camera: sampling.SampledCamera) -> np.ndarray:
    """How far each frame moves the camera: turn angles where it turns, distances where it slides.

    Arc steps are turns too: their chords 2 r sin(step / 2) are not proportional to the progress.
    """
    return step_angles(camera) if camera.kind in ("pan", "tilt", "arc") else step_lengths(camera)


@settings(max_examples=80, deadline=None)
@given(seed=SEEDS, kind=st.sampled_from(["pan", "tilt", "translation", "arc", "random"]))
def test_steps_follow_the_speed_curve(seed, kind):
    frames = 81 if kind == "random" else 33
    camera = draw(seed, kind, num_frames=frames)
    steps = step_sizes(camera)
    # Chords of the smoothed random path differ from its arc length by a small fraction.
    rtol = 1e-2 if kind == "random" else 1e-6
    if camera.speed.kind == "linear":
        np.testing.assert_allclose(steps, steps.mean(), rtol=rtol)
        return
    a = camera.speed.a
    assert camera.speed.kind == "exponential"
    assert sampling.EXPONENTIAL_A_RANGE[0] <= abs(a) <= sampling.EXPONENTIAL_A_RANGE[1]
    changes = np.diff(steps)
    assert np.all(changes < 0) if a > 0 else np.all(changes > 0)  # a > 0 starts fast
    # Steps of (1 - exp(-a u)) / (1 - exp(-a)) shrink by exp(-a / (frames - 1)) each frame.
    expected_ratio = np.exp(a * (frames - 2) / (frames - 1))
    assert steps[0] / steps[-1] == pytest.approx(expected_ratio, rel=3 * rtol)


def test_a_fixed_speed_curve_is_kept():
    camera = draw(3, "translation", speed="exponential(2)", num_frames=33)
    assert camera.speed == SpeedCurve("exponential", 2.0)
    steps = step_lengths(camera)
    assert steps[0] / steps[-1] == pytest.approx(np.exp(2.0 * 31 / 32), rel=1e-9)


def test_draws_follow_the_documented_mix():
    rng = np.random.default_rng(2024)
    cameras = [sampling.sample_camera(rng, num_frames=5) for _ in range(1500)]
    kinds = [camera.kind for camera in cameras]
    for kind, probability in sampling.KIND_PROBABILITIES.items():
        assert kinds.count(kind) / len(cameras) == pytest.approx(probability, abs=0.035)
        for direction in sampling.DIRECTIONS[kind]:
            assert any(c.kind == kind and c.direction == direction for c in cameras)
    point_counts = {len(camera.points) for camera in cameras if camera.kind == "random"}
    assert point_counts == set(README_POINT_COUNTS)
    moving = [camera for camera in cameras if camera.kind != "static"]
    curves = [camera.speed for camera in moving if camera.speed.kind == "exponential"]
    assert len(curves) / len(moving) == pytest.approx(0.5, abs=0.04)  # README: 50% variable
    assert {curve.kind for curve in (camera.speed for camera in moving)} == {"linear", "exponential"}
    assert 0.4 < np.mean([curve.a > 0 for curve in curves]) < 0.6
    for lens in MULTICAM_LENSES:
        assert [camera.lens for camera in cameras].count(lens) / len(cameras) == pytest.approx(0.25, abs=0.04)


# ---------------------------------------------------------------------------
# Scenes and reproducibility
# ---------------------------------------------------------------------------


def scene_bytes(cameras: tuple[sampling.SampledCamera, ...]) -> list[bytes]:
    return [camera.trajectory.poses.tobytes() + camera.points.tobytes() for camera in cameras]


def test_a_scene_has_ten_cameras_around_one_character_and_radius():
    cameras = sampling.sample_scene_cameras(7, character=(1.0, -2.0, 0.9), num_frames=9)
    assert len(cameras) == README_CAMERAS_PER_SCENE
    assert len({camera.radius for camera in cameras}) == 1
    assert cameras[0].radius in README_RADII_M
    for camera in cameras:
        np.testing.assert_array_equal(camera.character, [1.0, -2.0, 0.9])
        assert camera.trajectory.num_frames == 9
        assert start_distance(camera) <= camera.radius + TIGHT
    assert len(sampling.sample_scene_cameras(7, 3, radius=5.0)) == 3
    assert {c.radius for c in sampling.sample_scene_cameras(7, 4, radius=5.0)} == {5.0}
    assert sampling.sample_scene_cameras(7)[0].trajectory.num_frames == 81


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_same_seed_gives_identical_arrays_and_other_seeds_differ(seed):
    first = sampling.sample_scene_cameras(seed, num_frames=9)
    again = sampling.sample_scene_cameras(np.random.default_rng(seed), num_frames=9)
    assert scene_bytes(first) == scene_bytes(again)
    assert [(c.kind, c.direction, c.lens, str(c.speed)) for c in first] == [
        (c.kind, c.direction, c.lens, str(c.speed)) for c in again
    ]
    other = sampling.sample_scene_cameras(seed + 1, num_frames=9)
    assert scene_bytes(first) != scene_bytes(other)


def test_global_numpy_seed_has_no_effect():
    np.random.seed(0)
    first = sampling.sample_scene_cameras(11, num_frames=5)
    np.random.seed(1)
    second = sampling.sample_scene_cameras(11, num_frames=5)
    assert scene_bytes(first) == scene_bytes(second)


def test_a_passed_generator_advances():
    rng = np.random.default_rng(5)
    first = sampling.sample_camera(rng, num_frames=5)
    second = sampling.sample_camera(rng, num_frames=5)
    assert first.trajectory.poses.tobytes() != second.trajectory.poses.tobytes()


def test_sampled_values_are_read_only():
    camera = draw(0, "random")
    with pytest.raises(ValueError, match="read-only"):
        camera.points[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        camera.character[0] = 1.0


# ---------------------------------------------------------------------------
# Smoothing and errors
# ---------------------------------------------------------------------------


def test_catmull_rom_passes_through_its_points_and_two_points_make_a_segment():
    points = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 2.0, 0.0], [3.0, 2.0, 1.0]])
    curve = sampling.catmull_rom(points, samples_per_segment=20)
    assert curve.shape == (61, 3)
    np.testing.assert_allclose(curve[::20], points, atol=1e-12)
    segment = sampling.catmull_rom(points[:2], samples_per_segment=20)
    np.testing.assert_allclose(segment[:, 1:], 0.0, atol=1e-12)
    assert np.all(np.diff(segment[:, 0]) > 0)


def test_walk_spaces_points_by_arc_length():
    curve = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 3.0, 0.0]])
    walked = sampling.walk(curve, np.array([0.0, 0.25, 0.5, 1.0]))
    np.testing.assert_allclose(walked, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 3, 0]], atol=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"kind": "dolly"},
            "unknown trajectory kind 'dolly'; choose one of: pan, tilt, translation, arc, random, static",
        ),
        ({"kind": "pan", "direction": "up"}, "direction 'up' does not fit kind 'pan'; allowed: left, right"),
        ({"direction": "up"}, "direction 'up' does not fit kind None; allowed: none until kind is given"),
        ({"radius": 0.5}, "radius must exceed 0.5 m, got 0.5"),
        ({"num_frames": 1}, "num_frames must be at least 2, got 1"),
        ({"character": (0.0, 0.0)}, "character must be a finite point (x, y, z), got [0.0, 0.0]"),
        (
            {"character": (0.0, 0.0, -9.0), "radius": 3.0},
            "no start camera reaches min_height=0.2 m from a character at z=-9.0 m",
        ),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(options, message):
    with pytest.raises(TrajectoryError) as caught:
        sampling.sample_camera(0, **options)
    assert str(caught.value) == message


def test_bad_seed_and_camera_count_are_refused():
    with pytest.raises(TrajectoryError) as caught:
        sampling.sample_camera(None)
    assert str(caught.value) == "seed must be an int or a numpy.random.Generator, got NoneType"
    with pytest.raises(TrajectoryError) as caught:
        sampling.sample_scene_cameras(0, 0)
    assert str(caught.value) == "num_cameras must be at least 1, got 0"


# ---------------------------------------------------------------------------
# A fixed start (re-filming requests)
# ---------------------------------------------------------------------------


@EXAMPLES
@given(seed=SEEDS, kind=KINDS)
def test_a_fixed_start_is_the_first_pose_and_the_motion_follows_its_rule(seed, kind):
    start = draw(seed + 1, "pan").trajectory.poses[0]  # a MultiCamVideo start, aiming at the origin
    camera = draw(seed, kind, start=start)
    np.testing.assert_array_equal(camera.trajectory.poses[0], start)
    assert camera.kind == kind
    assert camera.start_distance == pytest.approx(np.linalg.norm(start[:3, 3]), abs=TIGHT)
    if kind == "static":
        np.testing.assert_array_equal(camera.trajectory.poses[-1], start)
    else:
        assert np.abs(camera.trajectory.poses[-1] - start).max() > 1e-3


def test_a_start_no_motion_can_leave_is_refused_naming_it():
    start = np.eye(4)
    start[:3, 3] = (0.0, 0.0, 0.6)  # 0.6 m above a character at the origin, looking along +z (straight up)
    with pytest.raises(TrajectoryError, match=r"no translation camera fits a start at \[0.0, 0.0, 0.6\]"):
        draw(0, "translation", direction="backward", start=start, min_height=0.59)
