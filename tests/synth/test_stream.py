"""SyntheticPairStream: shapes, value ranges, the camera condition, the frames, reproducibility."""

import numpy as np
import pytest
import torch

from recammaster.data.synth.engine import make_scene, render_scene
from recammaster.data.synth.stream import SyntheticPairStream, crop_intrinsics, draw_pairs

FRAMES, SIZE = 9, 16


def _batches(**options) -> list[dict]:
    settings = {"seed": 4, "size": SIZE, "num_frames": FRAMES, "batch_size": 3, "num_scenes": 2} | options
    return list(SyntheticPairStream(**settings))


def test_batches_have_the_shapes_and_ranges():
    batches = _batches()
    assert sum(len(b["caption"]) for b in batches) == 20  # two scenes, ten pairs each
    first = batches[0]
    for key in ("source_video", "target_video"):
        video = first[key]
        assert video.shape == (3, 3, FRAMES, SIZE, SIZE)
        assert video.dtype == torch.float32
        assert video.min() >= -1.0
        assert video.max() <= 1.0
        assert video.std() > 0.05
    assert first["camera"].shape == (3, (FRAMES - 1) // 4 + 1, 12)
    assert first["camera"].dtype == torch.float32
    assert all(isinstance(c, str) and c.startswith(("An outdoor", "An indoor")) for c in first["caption"])
    assert batches[-1]["source_video"].shape[0] == 20 - 3 * (len(batches) - 1)  # the last batch is the rest


def test_camera_is_the_target_relative_to_the_source_first_frame():
    for batch in _batches():
        for row, (scene, source, target) in enumerate(
            zip(batch["scene"], batch["source_camera"], batch["target_camera"], strict=True)
        ):
            assert source != target
            spec = make_scene(4, scene, FRAMES)
            reference = spec.trajectories[source].poses[0]
            poses = spec.trajectories[target].poses[::4]
            # Independently of recammaster.cameras: world -> source camera, then the target's pose in it.
            rotation, position = reference[:3, :3], reference[:3, 3]
            expected = np.empty((len(poses), 3, 4))
            expected[:, :, :3] = rotation.T @ poses[:, :3, :3]
            expected[:, :, 3] = (poses[:, :3, 3] - position) @ rotation
            np.testing.assert_allclose(batch["camera"][row].numpy(), expected.reshape(len(poses), 12), atol=1e-5)


def test_videos_are_the_scene_cameras_renders():
    batch = _batches(num_scenes=1, batch_size=10)[0]
    spec = make_scene(4, 1, FRAMES)
    images = render_scene(spec, SIZE).images  # (cameras, frames, H, W, 3)
    for row in range(10):
        cameras = {"source_video": batch["source_camera"][row], "target_video": batch["target_camera"][row]}
        for key, camera in cameras.items():
            expected = torch.from_numpy(images[camera]).permute(3, 0, 1, 2).float() / 127.5 - 1.0
            torch.testing.assert_close(batch[key][row], expected, atol=2.5 / 255, rtol=0)
    assert sorted(batch["target_camera"]) == list(range(10))  # every camera is a target once


def test_same_seed_same_batches_and_another_seed_differs():
    first, second = _batches(), _batches()
    for a, b in zip(first, second, strict=True):
        for key in ("source_video", "target_video", "camera"):
            assert torch.equal(a[key], b[key])
        assert a["caption"] == b["caption"]
        assert a["source_camera"] == b["source_camera"]
    other = _batches(seed=5)
    assert not torch.equal(other[0]["camera"], first[0]["camera"])


def test_non_square_frames_are_the_centre_of_a_square_render():
    batch = _batches(height=16, width=32, num_scenes=1, batch_size=10)[0]
    assert batch["target_video"].shape == (10, 3, FRAMES, 16, 32)
    spec = make_scene(4, 1, FRAMES)
    square = render_scene(spec, 32).images[:, :, 8:24]  # the middle 16 rows of a 32 x 32 render
    for row, camera in enumerate(batch["target_camera"]):
        expected = torch.from_numpy(square[camera]).permute(3, 0, 1, 2).float() / 127.5 - 1.0
        torch.testing.assert_close(batch["target_video"][row], expected, atol=2.5 / 255, rtol=0)
    np.testing.assert_allclose(crop_intrinsics(spec.lens, 32, 32), spec.lens.intrinsics(32, 32))


def test_pairs_are_seeded_and_valid():
    assert draw_pairs(0, 1, 10) == draw_pairs(0, 1, 10)
    assert draw_pairs(0, 1, 10) != draw_pairs(0, 2, 10)
    pairs = draw_pairs(3, 7, 4)
    assert len(pairs) == 4
    assert all(s != t and 0 <= s < 10 and 0 <= t < 10 for s, t in pairs)


def test_refuses_bad_arguments():
    with pytest.raises(ValueError, match="both height and width"):
        SyntheticPairStream(height=16)
    with pytest.raises(Exception, match="4k\\+1"):
        SyntheticPairStream(num_frames=10)
