"""Custom trajectories: keyframe documents, compositions, imported arrays, and MultiCamVideo export."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from recammaster.cameras import (
    Trajectory,
    combine,
    get_preset,
    load_trajectory,
    read_camera_extrinsics,
    relative_poses,
    sequence,
    trajectory_from_document,
    write_multicam_json,
)
from recammaster.cameras.files import OFFICIAL_START_POSE
from recammaster.cameras.geometry import yaw_pitch_roll
from recammaster.errors import CameraFileError


def _write(path, document):
    path.write_text(yaml.safe_dump(document) if path.suffix != ".json" else json.dumps(document))
    return path


def test_linear_keyframes_hit_their_poses(tmp_path):
    path = _write(
        tmp_path / "path.yaml",
        {
            "num_frames": 17,
            "keyframes": [
                {"frame": 0, "position": [0, 0, 0]},
                {"frame": 8, "position": [1, 0, 0], "yaw": 30},
                {"frame": 16, "position": [1, -1, 2], "yaw": 30, "pitch": 10, "roll": 5},
            ],
        },
    )
    trajectory = load_trajectory(path)
    assert trajectory.num_frames == 17
    np.testing.assert_allclose(trajectory.positions[[0, 8, 16]], [[0, 0, 0], [1, 0, 0], [1, -1, 2]], atol=1e-12)
    np.testing.assert_allclose(trajectory.positions[4], [0.5, 0, 0], atol=1e-12)
    np.testing.assert_allclose(trajectory.rotations[8], yaw_pitch_roll(np.radians(30), 0, 0), atol=1e-12)
    expected = yaw_pitch_roll(*np.radians([30, 10, 5]))
    np.testing.assert_allclose(trajectory.rotations[16], expected, atol=1e-12)


def test_look_at_keyframes_keep_the_subject_centred():
    target = [0.0, 0.0, 4.0]
    trajectory = trajectory_from_document(
        {
            "interpolation": "smooth",
            "speed": "ease",
            "keyframes": [
                {"position": [0, 0, 0], "look_at": target},
                {"position": [-2, -0.5, 1], "look_at": target},
                {"position": [-3, -1, 4], "look_at": target},
            ],
        }
    )
    for pose in trajectory.poses:
        direction = (np.array(target) - pose[:3, 3]) / np.linalg.norm(np.array(target) - pose[:3, 3])
        np.testing.assert_allclose(pose[:3, 2], direction, atol=1e-9)
        assert pose[:3, 0] @ [0, -1, 0] == pytest.approx(0, abs=1e-9)  # no roll: right axis stays level
    np.testing.assert_allclose(trajectory.positions[40], [-2, -0.5, 1], atol=1e-12)  # middle keyframe
    steps = np.linalg.norm(np.diff(trajectory.positions, axis=0), axis=1)
    assert steps[0] < steps[20]
    assert steps[-1] < steps[60]


def test_sequence_document_continues_from_the_previous_end():
    trajectory = trajectory_from_document(
        {
            "num_frames": 81,
            "sequence": [
                {"preset": "pan-right", "angle": 90, "reach": 1, "frames": 41},
                {"preset": "zoom-in", "reach": 1},
            ],
        }
    )
    assert trajectory.num_frames == 81
    np.testing.assert_allclose(trajectory.positions[40], 0, atol=1e-12)
    np.testing.assert_allclose(trajectory.positions[-1], [2, 0, 0], atol=1e-12)  # dolly along the new view
    manual = sequence(
        [
            get_preset("pan-right")(angle=90, reach=1, num_frames=41),
            get_preset("zoom-in")(reach=1, num_frames=41),
        ]
    )
    np.testing.assert_allclose(trajectory.poses, manual.poses, atol=1e-12)


def test_together_adds_displacements_and_composes_rotations():
    trajectory = trajectory_from_document({"together": ["pan-right:reach=1", "truck-right"]})
    pan, truck = get_preset("pan-right")(reach=1), get_preset("truck-right")()
    np.testing.assert_allclose(trajectory.rotations, pan.rotations, atol=1e-12)
    np.testing.assert_allclose(trajectory.positions, truck.positions, atol=1e-12)
    assert combine([pan, truck]).name == "pan-right + truck-right"


def test_opencv_arrays_npy_and_json(tmp_path):
    poses = get_preset("arc-left")().placed_at(OFFICIAL_START_POSE).poses
    np.save(tmp_path / "poses.npy", poses[:, :3, :])  # (frames, 3, 4) is accepted too
    (tmp_path / "poses.json").write_text(json.dumps({"poses": poses.tolist()}))
    for name in ("poses.npy", "poses.json"):
        np.testing.assert_allclose(load_trajectory(tmp_path / name).poses, poses, atol=1e-12)


def test_left_handed_arrays_are_mirrored_without_changing_relative_poses(tmp_path):
    poses = get_preset("arc-right")().placed_at(OFFICIAL_START_POSE).poses.copy()
    poses[:, 1, :] *= -1  # the upstream convention: left-handed world, determinant -1
    np.save(tmp_path / "upstream.npy", poses)
    loaded = load_trajectory(tmp_path / "upstream.npy")
    assert np.linalg.det(loaded.rotations[0]) == pytest.approx(1.0)
    np.testing.assert_allclose(
        relative_poses(loaded.poses, loaded.poses[0]), np.linalg.inv(poses[0]) @ poses, atol=1e-12
    )


def test_export_then_load_round_trip(tmp_path, official_cameras_path):
    presets = [get_preset(n)() for n in range(1, 11)]
    path = write_multicam_json(presets, tmp_path / "camera_extrinsics.json")
    exported = read_camera_extrinsics(path)
    official = read_camera_extrinsics(official_cameras_path)
    for name in official:  # official start pose, official positions to the file's 0.01 cm
        np.testing.assert_allclose(exported[name], official[name], atol=0.006)
    for number, preset in enumerate(presets, start=1):
        loaded = load_trajectory(f"{path}#cam{number:02d}")
        # float32 positions 34 m from the origin resolve about 2e-6 m
        np.testing.assert_allclose(loaded.relative_to_start().poses, preset.poses, atol=5e-6)
    assert load_trajectory(f"{path}#3").num_frames == 81


def test_export_keep_world(tmp_path):
    trajectory = Trajectory(get_preset("zoom-in")().poses + np.pad(np.ones((81, 3, 1)), ((0, 0), (0, 1), (3, 0))))
    path = write_multicam_json([trajectory], tmp_path / "c.json", start_pose=None)
    np.testing.assert_allclose(load_trajectory(path).poses, trajectory.poses, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.yaml", "keyframes: [", "not valid YAML"),
        (
            "a.yaml",
            "keyframes: [{position: [0, 0]}]",
            "keyframes[0].position: expected three numbers [x, y, z], got [0, 0]",
        ),
        (
            "a.yaml",
            "keyframes: [{position: [0, 0, 0], speed: 2}]",
            "keyframes[0]: unknown field(s) speed",
        ),
        (
            "a.yaml",
            "keyframes: [{look_at: [0, 0, 1], yaw: 3}]",
            "keyframes[0]: give either look_at or yaw/pitch, not both",
        ),
        (
            "a.yaml",
            "keyframes: [{look_at: [0, 0, 0]}]",
            "keyframes[0].look_at: look-at target coincides with the camera position",
        ),
        (
            "a.yaml",
            "keyframes: [{frame: 5}, {frame: 2}]",
            "keyframes: keyframe frames must increase strictly, got [5.0, 2.0]",
        ),
        (
            "a.yaml",
            "keyframes: [{frame: 0}, {frame: 90}]",
            "keyframes: keyframe frames must lie in 0..80, got [0.0, 90.0]",
        ),
        (
            "a.yaml",
            "keyframes: [{frame: 0}, {}]",
            "keyframes: give 'frame' for every keyframe or for none",
        ),
        (
            "a.yaml",
            "preset: pan-right\nangle: wide",
            "preset: pan-right: angle must be a number, got 'wide'",
        ),
        (
            "a.yaml",
            "sequence: [pan-right, {preset: zoom-in, frames: 90}]",
            "sequence: parts' frames do not fit in 81 frames",
        ),
        (
            "a.yaml",
            "orbit: 3",
            "give exactly one of keyframes, preset, sequence, together (found none)",
        ),
        ("a.json", "[[1, 2]]", "expected (frames, 4, 4) or (frames, 3, 4) matrices, got (1, 2)"),
        (
            "a.json",
            '{"poses": [[[2,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]]}',
            "frame 0: rotation part is not orthonormal",
        ),
        ("a.txt", "", "unknown trajectory file type '.txt'"),
    ],
)
def test_bad_trajectory_files_name_the_file_and_field(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CameraFileError) as caught:
        load_trajectory(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_missing_files_and_cameras(tmp_path, official_cameras_path):
    with pytest.raises(CameraFileError, match=r"nope\.yaml: trajectory file not found"):
        load_trajectory(tmp_path / "nope.yaml")
    with pytest.raises(CameraFileError, match=r"pick one of cam01, cam02, .*, cam10 with .*#cam01"):
        load_trajectory(official_cameras_path)
    with pytest.raises(CameraFileError, match="no camera 'cam11'; choose of cam01"):
        load_trajectory(f"{official_cameras_path}#cam11")


EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "trajectories").iterdir())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_examples_load_and_condition_the_model(path):
    trajectory = load_trajectory(path)
    assert trajectory.num_frames == 81
    assert trajectory.condition().shape == (21, 12)
    assert trajectory.path_length() > 0.5
