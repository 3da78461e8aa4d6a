"""Camera conventions against upstream's own numbers.

The golden check compares our camera condition for the ten presets with the vectors upstream feeds
the model; the parity checks compare our mirrored-world conversion with upstream's formula (spec
§3.2), re-derived here independently with a general matrix inverse.
"""

import json

import numpy as np
import pytest

from recammaster.cameras import (
    camera_condition,
    latent_frame_indices,
    opencv_to_ue,
    read_camera_extrinsics,
    relative_poses,
    ue_to_opencv,
)
from recammaster.errors import TrajectoryError


def upstream_c2w(ue):
    """Spec §3.2 literally: transpose, reorder columns [1, 2, 0, 3], negate column 1, cm -> m."""
    pose = np.array(ue, dtype=np.float64).T[:, [1, 2, 0, 3]]
    pose[:3, 1] *= -1
    pose[:3, 3] /= 100
    return pose


@pytest.fixture(scope="module")
def official(official_cameras_path):
    return read_camera_extrinsics(official_cameras_path)


def test_golden_camera_condition_for_all_ten_presets(official, golden_embeddings_path):
    golden = json.loads(golden_embeddings_path.read_text())
    assert golden["frames"] == list(range(0, 81, 4))
    for cam_type in range(1, 11):
        condition = camera_condition(ue_to_opencv(official[f"cam{cam_type:02d}"]))
        expected = np.array(golden["cam_types"][str(cam_type)], dtype=np.float32)
        assert condition.shape == (21, 12)
        assert condition.dtype == np.float32
        np.testing.assert_allclose(condition, expected, rtol=0, atol=1e-6)


def test_relative_poses_match_upstream_formula(official):
    for name, ue in official.items():
        reference = upstream_c2w(ue[0])
        upstream = np.stack([np.linalg.inv(reference) @ upstream_c2w(m) for m in ue])
        ours = ue_to_opencv(ue)
        np.testing.assert_allclose(relative_poses(ours, ours[0]), upstream, atol=1e-12, err_msg=name)


def test_training_reference_is_the_source_camera(official):
    """Training conditions on poses relative to the source camera's frame 0 (spec §3.3)."""
    source, target = ue_to_opencv(official["cam01"]), ue_to_opencv(official["cam09"])
    shifted_source = source.copy()
    shifted_source[:, :3, 3] += [1.0, -2.0, 0.5]  # the source starts elsewhere, as in MultiCamVideo
    condition = camera_condition(target, reference=shifted_source[0])
    upstream_source = upstream_c2w(official["cam01"][0])
    upstream_source[:3, 3] += [1.0, 2.0, 0.5]  # upstream's world has the opposite y axis
    expected = [
        (np.linalg.inv(upstream_source) @ upstream_c2w(official["cam09"][k]))[:3].reshape(12) for k in range(0, 81, 4)
    ]
    np.testing.assert_allclose(condition, np.array(expected, dtype=np.float32), atol=1e-6)
    assert not np.allclose(condition[0], np.eye(4)[:3].reshape(12))


def test_our_world_is_right_handed_and_upstream_is_not(official):
    ue = official["cam05"][0]
    assert np.linalg.det(ue_to_opencv(ue)[:3, :3]) == pytest.approx(1.0)
    assert np.linalg.det(upstream_c2w(ue)[:3, :3]) == pytest.approx(-1.0)


def test_ue_identity_camera_looks_along_world_x_with_z_up():
    pose = ue_to_opencv(np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [100, 200, 300, 1]]))
    np.testing.assert_array_equal(pose[:3, 2], [1, 0, 0])  # forward = UE +x
    np.testing.assert_array_equal(pose[:3, 1], [0, 0, -1])  # image down = world -z
    np.testing.assert_array_equal(pose[:3, 3], [1, -2, 3])  # metres, y mirrored


def test_ue_opencv_round_trip_is_exact(official):
    for ue in official.values():
        back = opencv_to_ue(ue_to_opencv(ue))
        np.testing.assert_allclose(back, ue, rtol=1e-15, atol=1e-12)


@pytest.mark.parametrize(("frames", "latents"), [(81, 21), (17, 5), (1, 1), (121, 31)])
def test_latent_frame_indices(frames, latents):
    indices = latent_frame_indices(frames)
    assert len(indices) == latents
    assert indices[-1] == frames - 1
    assert np.all(np.diff(indices) == 4)


@pytest.mark.parametrize("frames", [80, 0, 82])
def test_latent_frame_indices_refuses_other_lengths(frames):
    with pytest.raises(TrajectoryError, match=f"a video of {frames} frames cannot be encoded"):
        latent_frame_indices(frames)


def test_condition_follows_the_frame_count():
    from recammaster.cameras import get_preset

    assert get_preset("pan-right")(num_frames=49).condition().shape == (13, 12)
