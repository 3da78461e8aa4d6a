"""The ten presets: parity with the official preset file, parameters, and the extras users ask for."""

import numpy as np
import pytest

from recammaster.cameras import (
    OFFICIAL_PRESET_NAMES,
    PRESETS,
    get_preset,
    parse_preset_spec,
    read_camera_extrinsics,
    relative_poses,
    ue_to_opencv,
)
from recammaster.cameras.geometry import rotation_angle
from recammaster.errors import TrajectoryError

NAMES = [
    "pan-right",
    "pan-left",
    "tilt-up",
    "tilt-down",
    "zoom-in",
    "zoom-out",
    "translate-up",
    "translate-down",
    "arc-left",
    "arc-right",
]


def test_official_names_and_numbers():
    assert list(OFFICIAL_PRESET_NAMES) == NAMES
    for number, name in enumerate(NAMES, start=1):
        assert get_preset(number) is get_preset(str(number)) is get_preset(name) is PRESETS[name]
        assert get_preset(number).number == number


@pytest.mark.parametrize("number", range(1, 11))
def test_defaults_reproduce_the_official_file(number, official_cameras_path):
    official = ue_to_opencv(read_camera_extrinsics(official_cameras_path)[f"cam{number:02d}"])
    expected = relative_poses(official, official[0])
    ours = get_preset(number)()
    assert ours.num_frames == 81
    rotation_error = np.abs(ours.rotations - expected[:, :3, :3]).max(axis=(1, 2))
    translation_error = np.abs(ours.positions - expected[:, :3, 3]).max(axis=1)
    assert rotation_error.max() < 1e-4
    assert translation_error.max() < 1e-4  # metres; the file rounds positions to 0.01 cm


def _yaw_deg(rotation):
    return np.degrees(np.arctan2(rotation[0, 2], rotation[2, 2]))


def test_pan_right_45_degrees_ending_on_the_nominal_value():
    trajectory = parse_preset_spec("pan-right:angle=45,reach=1")
    assert _yaw_deg(trajectory.rotations[-1]) == pytest.approx(45.0, abs=1e-9)
    assert np.allclose(trajectory.positions, 0)


def test_pan_left_turns_the_other_way():
    assert _yaw_deg(get_preset("pan-left")(angle=45, reach=1).rotations[-1]) == pytest.approx(-45.0)


def test_arc_left_60_degrees_at_3_metres():
    trajectory = get_preset("arc-left")(angle=60, radius=3, reach=1)
    centre = np.array([0.0, 0.0, 3.0])
    end = trajectory.positions[-1]
    np.testing.assert_allclose(end, [-3 * np.sin(np.pi / 3), 0, 3 - 3 * np.cos(np.pi / 3)], atol=1e-12)
    assert np.linalg.norm(end - centre) == pytest.approx(3.0)
    for pose in trajectory.poses:  # aims at the arc centre on every frame
        to_centre = (centre - pose[:3, 3]) / np.linalg.norm(centre - pose[:3, 3])
        np.testing.assert_allclose(pose[:3, 2], to_centre, atol=1e-12)
    assert _yaw_deg(trajectory.rotations[-1]) == pytest.approx(60.0)


def test_translate_up_rises_and_aims_at_the_point_ahead():
    trajectory = get_preset("translate-up")(reach=1)
    np.testing.assert_allclose(trajectory.positions[-1], [0, -1, 0], atol=1e-12)  # up is -y
    target = np.array([0.0, 0.0, 4.0])
    direction = (target - trajectory.positions[-1]) / np.linalg.norm(target - trajectory.positions[-1])
    np.testing.assert_allclose(trajectory.rotations[-1][:, 2], direction, atol=1e-12)
    flat = get_preset("translate-up")(aim_distance=None)
    assert np.allclose(flat.rotations, np.eye(3))


def test_other_frame_counts():
    trajectory = get_preset("zoom-in")(num_frames=17, reach=1)
    assert trajectory.num_frames == 17
    np.testing.assert_allclose(trajectory.positions[:, 2], np.linspace(0, 2, 17), atol=1e-12)
    assert parse_preset_spec("tilt-up:frames=49").condition().shape == (13, 12)


def test_exponential_speed_starts_fast_and_linear_is_even():
    fast = get_preset("zoom-in")(speed="exponential(3)", reach=1).positions[:, 2]
    steps = np.diff(fast)
    assert np.all(np.diff(steps) < 0)
    assert fast[-1] == pytest.approx(2.0)
    slow = get_preset("zoom-in")(speed="exponential(-3)", reach=1).positions[:, 2]
    assert np.all(np.diff(np.diff(slow)) > 0)
    even = np.diff(get_preset("zoom-in")(reach=1).positions[:, 2])
    np.testing.assert_allclose(even, 2 / 80)
    # the MultiCamVideo formula, L_i = L_start + (L_end - L_start)(1 - exp(-a i/f)) / (1 - exp(-a))
    u = np.arange(81) / 80
    np.testing.assert_allclose(fast, 2 * (1 - np.exp(-3 * u)) / (1 - np.exp(-3)), atol=1e-12)


def test_static_and_orbit():
    np.testing.assert_array_equal(get_preset("static")(num_frames=9).poses, np.broadcast_to(np.eye(4), (9, 4, 4)))
    orbit = get_preset("orbit-left")(angle=360, radius=2.5)
    centre = np.array([0.0, 0.0, 2.5])
    np.testing.assert_allclose(np.linalg.norm(orbit.positions - centre, axis=1), 2.5, atol=1e-12)
    np.testing.assert_allclose(orbit.poses[-1], orbit.poses[0], atol=1e-12)  # full circle closes
    assert rotation_angle(orbit.rotations[40]) == pytest.approx(np.pi, abs=np.pi / 80)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("zoom", "unknown trajectory preset 'zoom'; choose a number 1-10 or one of: pan-right,"),
        ("11", "unknown trajectory preset '11'"),
        ("pan-right:angle", "'pan-right:angle': expected key=value, got 'angle'"),
        (
            "pan-right:radius=3",
            "pan-right: unknown parameter(s) radius; it takes angle, num_frames, speed, reach",
        ),
        ("pan-right:angle=wide", "pan-right: angle must be a number, got 'wide'"),
        ("pan-right:frames=1", "pan-right: num_frames must be a whole number >= 2, got 1"),
        (
            "pan-right:speed=fast",
            "unknown speed curve 'fast'; use 'linear', 'ease' or 'exponential(A)'",
        ),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(TrajectoryError) as caught:
        parse_preset_spec(spec)
    assert str(caught.value).startswith(message)
