"""Trajectories from anything a user points at, and back out to MultiCamVideo JSON.

``load_trajectory`` accepts a preset ('pan-right', '3', 'arc-left:angle=60,radius=3'), a hand-written
YAML/JSON document (:mod:`recammaster.cameras.keyframes`), a MultiCamVideo ``camera_extrinsics.json``
(``FILE#cam03`` picks a camera), or plain OpenCV camera-to-world arrays (``.npy``, or ``.json`` holding a
list of 4x4 or 3x4 matrices or ``{"poses": [...]}``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from recammaster.cameras.conventions import opencv_to_ue, ue_to_opencv
from recammaster.cameras.keyframes import trajectory_from_document
from recammaster.cameras.multicam_json import (
    camera_name,
    read_camera_extrinsics,
    write_camera_extrinsics,
)
from recammaster.cameras.presets import parse_preset_spec
from recammaster.cameras.trajectory import Trajectory
from recammaster.errors import CameraFileError, TrajectoryError

Array = np.ndarray
logger = logging.getLogger(__name__)

# Where the official preset file starts every camera: Unreal Engine identity rotation at
# (3390, 1380, 240) cm. Exported trajectories start here, so they read like the official file.
OFFICIAL_START_POSE = ue_to_opencv(
    np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [3390.0, 1380.0, 240.0, 1.0]])
)
TRAJECTORY_SUFFIXES = (".json", ".yaml", ".yml", ".npy")


def load_trajectory(spec: str | Path, num_frames: int | None = None) -> Trajectory:
    """Resolve a preset name or number, a preset with parameters, or a trajectory file."""
    text = str(spec)
    path_text, _, camera = text.partition("#")
    path = Path(path_text)
    if path.is_file():
        return load_trajectory_file(path, camera=camera or None, num_frames=num_frames)
    if path.suffix.lower() in TRAJECTORY_SUFFIXES or "/" in path_text or path.is_dir():
        raise CameraFileError(path, "trajectory file not found")
    if num_frames is None:
        return parse_preset_spec(text)
    return parse_preset_spec(text, num_frames=num_frames)


def load_trajectory_file(path: str | Path, camera: str | None = None, num_frames: int | None = None) -> Trajectory:
    """Read a trajectory file, choosing the reader by suffix and, for JSON, by content."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise CameraFileError(path, f"not a readable .npy array ({error})") from error
        return trajectory_from_opencv_array(array, path)
    if suffix in (".yaml", ".yml"):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise CameraFileError(path, f"not valid YAML ({error})".replace("\n", " ")) from error
        return trajectory_from_document(document, path, num_frames)
    if suffix != ".json":
        raise CameraFileError(path, f"unknown trajectory file type {suffix!r}; use {TRAJECTORY_SUFFIXES}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CameraFileError(path, f"not valid JSON ({error})") from error
    if isinstance(document, Mapping) and any(str(key).startswith("frame") for key in document):
        return _multicam_camera(path, camera)
    if isinstance(document, list) or (isinstance(document, Mapping) and "poses" in document):
        return trajectory_from_opencv_array(document if isinstance(document, list) else document["poses"], path)
    return trajectory_from_document(document, path, num_frames)


def _multicam_camera(path: Path, camera: str | None) -> Trajectory:
    cameras = read_camera_extrinsics(path)
    if camera is None and len(cameras) == 1:
        camera = next(iter(cameras))
    if camera is not None and camera.isdigit():
        camera = camera_name(int(camera))
    if camera not in cameras:
        choice = "pick one" if camera is None else f"no camera {camera!r}; choose"
        raise CameraFileError(path, f"{choice} of {', '.join(cameras)} with {path}#cam01")
    return Trajectory(ue_to_opencv(cameras[camera]), name=f"{path.parent.parent.name}/{camera}")


def trajectory_from_opencv_array(array: object, path: str | Path | None = None) -> Trajectory:
    """OpenCV camera-to-world matrices, (frames, 4, 4) or (frames, 3, 4), in metres -> Trajectory.

    Arrays converted with upstream's formula live in a left-handed world (every determinant -1);
    those are mirrored (world y negated), which leaves every relative pose unchanged.
    """
    try:
        poses = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise CameraFileError(path, f"not a numeric array of matrices ({error})") from error
    if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)) or len(poses) == 0:
        raise CameraFileError(path, f"expected (frames, 4, 4) or (frames, 3, 4) matrices, got {poses.shape}")
    if poses.shape[1] == 3:
        poses = np.concatenate([poses, np.broadcast_to([[[0.0, 0, 0, 1]]], (len(poses), 1, 4))], axis=1)
    determinants = np.linalg.det(poses[:, :3, :3])
    if np.all(determinants < 0):
        logger.info("%s: left-handed world (upstream convention); mirroring its y axis", path)
        poses[:, 1, :] *= -1.0
    try:
        return Trajectory(poses, name=Path(path).stem if path else "custom")
    except TrajectoryError as error:
        raise CameraFileError(path, str(error).split(": ", 1)[-1]) from error


def write_multicam_json(
    trajectories: Sequence[Trajectory] | Mapping[str, Trajectory],
    path: str | Path,
    *,
    start_pose: Array | None = OFFICIAL_START_POSE,
    overwrite: bool = False,
) -> Path:
    """Export trajectories as a MultiCamVideo ``camera_extrinsics.json`` (cameras cam01, cam02, ...).

    Each trajectory is moved to start at ``start_pose`` (the official files' start by default), or kept
    in its own world with ``start_pose=None``.
    """
    if not isinstance(trajectories, Mapping):
        trajectories = {camera_name(i + 1): t for i, t in enumerate(trajectories)}
    ue = {
        name: opencv_to_ue(t.poses if start_pose is None else t.placed_at(start_pose).poses)
        for name, t in trajectories.items()
    }
    return write_camera_extrinsics(path, ue, overwrite=overwrite)
