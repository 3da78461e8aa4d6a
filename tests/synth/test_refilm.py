"""Re-filming requests of a synthetic scene: more cameras starting where the scene's cameras start."""

import numpy as np

from recammaster.data.synth.engine import make_scene
from recammaster.data.synth.scene import ROOM_MARGIN_M, refilm_trajectories


def test_each_camera_gets_its_refilmings_from_its_first_pose_with_the_scene_lens():
    spec = make_scene(4, 2, 17)
    trajectories = refilm_trajectories(spec, np.random.default_rng(0), 2)
    assert len(trajectories) == 20
    for index, trajectory in enumerate(trajectories):
        camera = spec.cameras[index // 2]
        np.testing.assert_array_equal(trajectory.poses[0], camera.trajectory.poses[0])
        assert trajectory.lens == spec.lens
        assert trajectory.num_frames == 17
    moving = [t for t in trajectories if np.abs(t.poses[-1] - t.poses[0]).max() > 1e-3]
    assert len(moving) >= 14  # static is one kind in ten; a few more may stay still where nothing fits
    again = refilm_trajectories(spec, np.random.default_rng(0), 2)
    assert all(np.array_equal(a.poses, b.poses) for a, b in zip(trajectories, again, strict=True))


def test_indoors_every_refilming_stays_inside_the_room():
    indoor = [spec for spec in (make_scene(0, index, 17) for index in range(1, 12)) if spec.environment == "indoor"]
    assert len(indoor) >= 2
    for spec in indoor:
        walls = {(plane.axis, plane.position) for plane in spec.planes[1:]}
        for trajectory in refilm_trajectories(spec, np.random.default_rng(1), 3):
            for axis, position in walls:
                coordinate = trajectory.positions[:, axis]
                if position > 0:
                    assert coordinate.max() <= position - ROOM_MARGIN_M
                else:
                    assert coordinate.min() >= position + ROOM_MARGIN_M


def test_still_refilmings_stand_at_the_first_pose_and_none_are_drawn_by_default():
    spec = make_scene(4, 2, 17)
    still = refilm_trajectories(spec, np.random.default_rng(0), 2, still_share=1.0)
    assert [t.name for t in still] == ["static"] * 20
    for index, trajectory in enumerate(still):
        start = spec.cameras[index // 2].trajectory.poses[0]
        np.testing.assert_array_equal(trajectory.poses, np.broadcast_to(start, (17, 4, 4)))
        assert trajectory.lens == spec.lens
    default = refilm_trajectories(spec, np.random.default_rng(0), 2)
    off = refilm_trajectories(spec, np.random.default_rng(0), 2, still_share=0.0)  # draws nothing more
    assert all(np.array_equal(a.poses, b.poses) for a, b in zip(default, off, strict=True))
    names = [
        t.name
        for scene in range(1, 6)
        for t in refilm_trajectories(make_scene(4, scene, 17), np.random.default_rng(scene), 4, still_share=0.5)
    ]
    assert 60 <= names.count("static") <= 140  # of 200, about half (and a few where no motion fits)
