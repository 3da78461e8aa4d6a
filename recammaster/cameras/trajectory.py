"""The ``Trajectory``: one camera's poses over a clip, and the ways trajectories combine.

Poses are OpenCV camera-to-world matrices in metres (see :mod:`recammaster.cameras.geometry`) in a
right-handed world. Generators build trajectories that start at the identity, i.e. in the coordinates
of their own first camera (x right, y down, z forward); files bring their own world. Only poses
relative to a reference frame reach the model (:func:`recammaster.cameras.conventions.camera_condition`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recammaster.cameras.conventions import camera_condition, relative_poses
from recammaster.cameras.geometry import make_pose, rotation_problems
from recammaster.cameras.lens import Lens
from recammaster.errors import TrajectoryError

Array = np.ndarray


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A camera path: ``poses`` (frames, 4, 4) OpenCV camera-to-world in metres, plus a name and lens."""

    poses: Array
    name: str = "custom"
    lens: Lens | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        poses = np.array(self.poses, dtype=np.float64)
        if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
            raise TrajectoryError(f"{self.name}: poses must have shape (frames, 4, 4), got {poses.shape}")
        bad_rows = ~np.all(np.abs(poses[:, 3] - [0.0, 0.0, 0.0, 1.0]) <= 1e-6, axis=1)
        for index, problem in enumerate(rotation_problems(poses[:, :3, :3])):
            if problem:
                raise TrajectoryError(f"{self.name}: frame {index}: {problem}")
            if bad_rows[index] or not np.all(np.isfinite(poses[index])):
                raise TrajectoryError(f"{self.name}: frame {index}: last row must be 0 0 0 1 and all values finite")
        poses.setflags(write=False)
        object.__setattr__(self, "poses", poses)

    @property
    def num_frames(self) -> int:
        return len(self.poses)

    @property
    def positions(self) -> Array:
        """Camera centres, (frames, 3) metres."""
        return self.poses[:, :3, 3]

    @property
    def rotations(self) -> Array:
        """Camera-to-world rotations, (frames, 3, 3)."""
        return self.poses[:, :3, :3]

    def relative_to_start(self) -> Trajectory:
        """The same path in the coordinates of its own first camera (first pose = identity)."""
        return self.with_poses(relative_poses(self.poses, self.poses[0]))

    def placed_at(self, start_pose: Array) -> Trajectory:
        """The path moved rigidly so that its first camera sits at ``start_pose``."""
        return self.with_poses(np.asarray(start_pose, dtype=np.float64) @ self.relative_to_start().poses)

    def with_poses(self, poses: Array, name: str | None = None) -> Trajectory:
        return Trajectory(poses, name=name or self.name, lens=self.lens, metadata=dict(self.metadata))

    def condition(self, reference: Array | None = None) -> Array:
        """The model's (latent frames, 12) camera input; see :func:`camera_condition`."""
        return camera_condition(self.poses, reference)

    def path_length(self) -> float:
        """Distance the camera centre travels, in metres."""
        return float(np.linalg.norm(np.diff(self.positions, axis=0), axis=1).sum())


def static(num_frames: int = 81) -> Trajectory:
    """A camera that does not move: re-rendering along it stabilises a shaky source video."""
    return Trajectory(np.broadcast_to(np.eye(4), (num_frames, 4, 4)), name="static")


def from_motion(rotations: Array, positions: Array, name: str) -> Trajectory:
    """A trajectory from per-frame rotations (frames, 3, 3) and positions (frames, 3)."""
    return Trajectory(make_pose(rotations, positions), name=name)


def combine(parts: Sequence[Trajectory], name: str | None = None) -> Trajectory:
    """Several motions at once: displacements add up and rotations compose, in the first camera's frame.

    Each part is taken relative to its own start, so ``combine([pan, pedestal])`` pans while it rises.
    """
    if not parts:
        raise TrajectoryError("combine needs at least one trajectory")
    lengths = {part.num_frames for part in parts}
    if len(lengths) != 1:
        raise TrajectoryError(f"combined trajectories need equal lengths, got {sorted(lengths)}")
    relative = [part.relative_to_start() for part in parts]
    rotation = relative[0].rotations
    for part in relative[1:]:
        rotation = rotation @ part.rotations
    position = sum(part.positions for part in relative)
    return from_motion(rotation, position, name or " + ".join(part.name for part in parts))


def sequence(parts: Sequence[Trajectory], name: str | None = None) -> Trajectory:
    """Motions one after another: each part starts where the previous one ended.

    Consecutive parts share their junction frame, so the result has sum(frames) - (parts - 1) frames.
    """
    if not parts:
        raise TrajectoryError("sequence needs at least one trajectory")
    poses = [parts[0].relative_to_start().poses]
    for part in parts[1:]:
        end = poses[-1][-1]
        poses.append((end @ part.relative_to_start().poses)[1:])
    return Trajectory(np.concatenate(poses), name=name or " then ".join(part.name for part in parts))
