"""Characters: every animation moves the joints, walkers travel, nobody sinks into the ground."""

import numpy as np
import pytest

from recammaster.data.synth.characters import ANIMATIONS, CharacterSpec, frame_times, pose_character


def _character(action: str) -> CharacterSpec:
    return CharacterSpec("woman", 1.7, 1.0, "tan", "red", "blue", action, (0.5, -0.3), 0.4, 1.0, 1.0,
                         walk_radius=1.4 if action == "walk" else 0.0)  # fmt: skip


def test_there_are_at_least_six_animations():
    assert {"walk", "wave", "dance", "jump", "cheer", "turn"} <= set(ANIMATIONS)


@pytest.mark.parametrize("action", sorted(ANIMATIONS))
def test_animation_moves_the_joints_and_stays_above_ground(action):
    body = pose_character(_character(action), frame_times(81))
    joints = np.concatenate([body.starts, body.ends], axis=1)  # (frames, 18, 3)
    assert np.abs(joints - joints[:1]).max() > 0.1
    lowest = np.minimum(body.starts[..., 2], body.ends[..., 2]) - body.radii
    assert lowest.min() >= -1e-9
    assert (body.head[:, 2] - body.head_radius).min() > 1.0  # the head stays up
    assert np.all(np.isfinite(joints))


def test_walk_moves_the_root_and_others_stay_in_place():
    walker = pose_character(_character("walk"), frame_times(81))
    pelvis = walker.starts[:, 0, :2]
    assert np.linalg.norm(pelvis[-1] - pelvis[0]) > 1.0
    for action in ("wave", "cheer", "turn"):
        pelvis = pose_character(_character(action), frame_times(81)).starts[:, 0, :2]
        assert np.allclose(pelvis, (0.5, -0.3))


def test_jump_leaves_the_ground():
    body = pose_character(_character("jump"), frame_times(81))
    lowest = (np.minimum(body.starts[..., 2], body.ends[..., 2]) - body.radii).min(axis=1)
    assert lowest.max() > 0.2
