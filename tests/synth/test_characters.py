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


def test_walk_share_sets_how_many_characters_walk_and_the_default_mix_is_untouched():
    from recammaster.data.synth.engine import make_scene, scene_generator
    from recammaster.data.synth.scene import sample_characters

    def actions(walk_share):
        return [c.action for index in range(1, 41) for c in make_scene(7, index, 5, walk_share).characters]

    assert set(actions(1.0)) == {"walk"}
    assert set(actions(0.0)) == set(ANIMATIONS) - {"walk"}
    half = actions(0.5)
    assert 0.3 < half.count("walk") / len(half) < 0.7
    default = actions(None)
    assert default.count("walk") / len(default) < 0.3
    # the default draws as before the option existed (these scenes' animations, recorded before it)
    recorded = [["jump"], ["turn"], ["walk", "turn", "walk"], ["wave"], ["jump", "wave"], ["walk", "walk"]]
    assert [[c.action for c in make_scene(7, index, 5).characters] for index in range(1, 7)] == recorded
    assert sample_characters(scene_generator(7, 1)) == sample_characters(scene_generator(7, 1), None)
