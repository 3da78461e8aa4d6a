"""A tiny MultiCamVideo tree built once per session, and a runner for ``recammaster dataset``.

Two scenes of ten 32x32, 81-frame videos (each camera a different colour with a bar sweeping across)
and camera files holding the ten official presets (ending exactly on their nominal moves), each placed at
its own start around a character at the origin, as the real scenes are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recammaster.cameras import get_preset, write_multicam_json
from recammaster.cameras.geometry import look_at, make_pose
from recammaster.video import write_video

SCENES = ("scene1", "scene2")
LENS = "f18_aperture10"
SIZE = 32
FRAMES = 81
CAMERAS = [f"cam{i:02d}" for i in range(1, 11)]


def start_pose(scene: int, camera: int) -> np.ndarray:
    """Camera ``camera`` (0-based) of ``scene`` stands on a circle around the character, looking at it."""
    angle = 2 * np.pi * camera / 10 + 0.7 * scene
    radius = 3.0 + 0.3 * camera
    position = np.array([radius * np.cos(angle), radius * np.sin(angle), 1.2 + 0.1 * camera])
    return make_pose(look_at(position, np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0])), position)


def scene_trajectories(scene: int) -> dict:
    return {CAMERAS[i]: get_preset(i + 1)(reach=1.0).placed_at(start_pose(scene, i)) for i in range(10)}


def fake_frames(camera: int, frames: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """A flat colour per camera with a white bar moving left to right: tiny to encode, easy to tell apart."""
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    video[:] = np.array([25 * camera, 255 - 20 * camera, (90 * camera) % 256], dtype=np.uint8)
    for index in range(frames):
        column = index * (size - 4) // max(frames - 1, 1)
        video[index, :, column : column + 4] = 255
    return video


def write_scene(folder: Path, scene: int) -> None:
    for index, camera in enumerate(CAMERAS):
        write_video(folder / "videos" / f"{camera}.mp4", fake_frames(index), fps=15)
    write_multicam_json(scene_trajectories(scene), folder / "cameras" / "camera_extrinsics.json", start_pose=None)


@pytest.fixture(scope="session")
def multicam_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/MultiCamVideo-Dataset`` with train/f18_aperture10/scene1 and scene2. Do not modify: copy it."""
    root = tmp_path_factory.mktemp("multicam") / "MultiCamVideo-Dataset"
    for number, name in enumerate(SCENES, start=1):
        write_scene(root / "train" / LENS / name, number)
    return root


@pytest.fixture
def run_dataset(run):
    """``recammaster dataset ...`` through the real command and its error boundary: (status, stdout, stderr)."""
    return lambda *args: run("dataset", *args)
