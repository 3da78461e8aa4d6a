"""MultiCamVideo camera_extrinsics.json: exact reading and writing, round trips, and error messages."""

import json

import numpy as np
import pytest

from recammaster.cameras import (
    opencv_to_ue,
    read_camera_extrinsics,
    ue_to_opencv,
    write_camera_extrinsics,
)
from recammaster.cameras.geometry import make_pose, quaternion_to_matrix
from recammaster.cameras.multicam_json import dumps_camera_extrinsics, format_number, parse_matrix
from recammaster.errors import CameraFileError, OutputExistsError


def test_reads_the_official_file(official_cameras_path):
    cameras = read_camera_extrinsics(official_cameras_path)
    assert list(cameras) == [f"cam{i:02d}" for i in range(1, 11)]
    assert all(m.shape == (81, 4, 4) for m in cameras.values())
    np.testing.assert_array_equal(cameras["cam01"][0][3], [3390, 1380, 240, 1])
    assert cameras["cam09"][80][3].tolist() == [3443.26, 1181.24, 240, 1]


def test_rewriting_the_official_file_is_byte_identical(official_cameras_path):
    original = official_cameras_path.read_text()
    assert dumps_camera_extrinsics(read_camera_extrinsics(official_cameras_path)) == original


def test_json_to_opencv_to_json_is_byte_identical(official_cameras_path):
    cameras = read_camera_extrinsics(official_cameras_path)
    via_opencv = {name: opencv_to_ue(ue_to_opencv(m)) for name, m in cameras.items()}
    assert dumps_camera_extrinsics(via_opencv) == official_cameras_path.read_text()


def _random_opencv_poses(rng, frames):
    rotations = np.stack([quaternion_to_matrix(q) for q in rng.normal(size=(frames, 4))])
    return make_pose(rotations, rng.uniform(-50, 50, size=(frames, 3)))


def test_opencv_to_json_to_opencv_is_exact_to_float32(tmp_path):
    rng = np.random.default_rng(0)
    poses = {f"cam{i:02d}": _random_opencv_poses(rng, 9).astype(np.float32) for i in (1, 2)}
    path = write_camera_extrinsics(tmp_path / "c.json", {k: opencv_to_ue(v) for k, v in poses.items()})
    back = {k: ue_to_opencv(v) for k, v in read_camera_extrinsics(path).items()}
    for name, original in poses.items():
        np.testing.assert_array_equal(back[name].astype(np.float32), original)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (3390.0, "3390"),
        (0.867575, "0.867575"),
        (1.0 / 3.0, "0.33333333"),
        (7.73577e-34, "7.73577e-34"),
        (0.1, "0.1"),
        (-1e-05, "-1e-05"),
        (123456.5, "123456.5"),
    ],
)
def test_format_number_is_shortest_float32_text(value, text):
    assert format_number(value) == text
    assert np.float32(float(text)) == np.float32(value)
    assert np.float32(float(text) / 100) == np.float32(value / 100)


def test_parse_matrix_accepts_rows_of_three():
    matrix = parse_matrix("[1 0 0] [0 1 0] [0 0 1] [5 6 7]")
    np.testing.assert_array_equal(matrix[:, 3], [0, 0, 0, 0])
    np.testing.assert_array_equal(matrix[3, :3], [5, 6, 7])


def test_write_refuses_to_overwrite(tmp_path, official_cameras_path):
    cameras = read_camera_extrinsics(official_cameras_path)
    path = tmp_path / "c.json"
    path.write_text("keep me")
    with pytest.raises(OutputExistsError, match="exists already; pass --overwrite"):
        write_camera_extrinsics(path, cameras)
    assert path.read_text() == "keep me"
    write_camera_extrinsics(path, cameras, overwrite=True)
    assert path.read_text() == official_cameras_path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # no temporary files left behind


IDENTITY = "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1] "


def _write(tmp_path, document):
    path = tmp_path / "camera_extrinsics.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"frame0": ', "not valid JSON (Expecting value: line 1 column 12 (char 11))"),
        ([1, 2], 'expected an object {"frame0": {"cam01": "[...] ...", ...}, ...}'),
        (
            {"frame0": {"cam01": IDENTITY}, "frame2": {"cam01": IDENTITY}},
            "missing 1 frame(s): frame1",
        ),
        (
            {"frame0": {"cam01": IDENTITY}, "scene": {}},
            "unexpected key 'scene'; keys must be frame0, frame1, ...",
        ),
        (
            {"frame0": {"cam01": IDENTITY, "cam02": IDENTITY}, "frame1": {"cam01": IDENTITY}},
            "frame 1, camera cam02: camera missing from this frame",
        ),
        (
            {"frame0": {"cam01": IDENTITY}, "frame1": {"cam01": "[1 0 0 0] [0 1 0 0]"}},
            "frame 1, camera cam01: expected four bracketed rows like '[1 0 0 0]', got '[1 0 0 0] [0 1 0 0]'",
        ),
        (
            {"frame0": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [a 0 0 1]"}},
            "frame 0, camera cam01: non-numeric entry in '[1 0 0 0] [0 1 0 0] [0 0 1 0] [a 0 0 1]'",
        ),
        (
            {"frame0": {"cam01": "[2 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}},
            "frame 0, camera cam01: rotation part is not orthonormal (|R R^T - I| = 3)",
        ),
        (
            {"frame0": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 -1 0] [0 0 0 1]"}},
            "frame 0, camera cam01: rotation part is a reflection (determinant -1), not a rotation",
        ),
        (
            {"frame0": {"cam01": "[1 0 0 5] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}},
            "frame 0, camera cam01: last column must be 0 0 0 1 (row-vector layout)",
        ),
        ({"frame0": {"cam01": 5}}, "frame 0, camera cam01: expected a matrix string, got int"),
    ],
)
def test_bad_files_name_file_frame_and_camera(tmp_path, document, message):
    path = _write(tmp_path, document)
    with pytest.raises(CameraFileError) as caught:
        read_camera_extrinsics(path)
    separator = ", " if message.startswith("frame ") else ": "
    assert str(caught.value) == f"{path}{separator}{message}"


def test_missing_file(tmp_path):
    with pytest.raises(CameraFileError, match=r"camera_extrinsics\.json: file not found"):
        read_camera_extrinsics(tmp_path / "camera_extrinsics.json")
