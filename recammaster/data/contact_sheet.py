"""A scene at a glance: a few frames of each of its ten cameras, and where those cameras go.

The top of the sheet is a grid, one column per camera (labelled cam01..cam10), one row per chosen frame
(0, 40, 80 by default). Under it, the ten camera paths are drawn in the scene's shared world, seen from
above and from the side, in metres around their common centre: unlike
:func:`recammaster.cameras.plot.plot_trajectories`, which draws each path relative to its own first
camera, this shows how the cameras stand to each other. Each path starts at a dot with a tick along the
viewing direction and ends with another tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from recammaster.cameras.conventions import ue_to_opencv
from recammaster.cameras.multicam_json import read_camera_extrinsics
from recammaster.data.multicam import CAMERA_NAMES, Scene
from recammaster.errors import OutputExistsError
from recammaster.fileio import atomic_output
from recammaster.video import read_video

Array = np.ndarray

DEFAULT_SHEET_FRAMES = (0, 40, 80)
THUMB_IN = 1.6  # side of one thumbnail, inches
MAP_HEIGHT_IN = 4.0
CAMERA_COLORMAP = "tab10"
HEADING_FRACTION = 0.06  # viewing-direction tick length relative to the map's extent


def scene_frames(scene: Scene, frames: Sequence[int]) -> dict[str, Array]:
    """camera -> (len(frames), H, W, 3) uint8 for every camera of the scene; errors name the video."""
    if not frames or min(frames) < 0:
        raise ValueError(f"frames must be a non-empty list of indices >= 0, got {list(frames)}")
    wanted = np.asarray(frames)
    pictures = {}
    for camera in CAMERA_NAMES:
        video = read_video(scene.video_path(camera), int(wanted.max()) + 1)
        pictures[camera] = video[wanted]
    return pictures


def _draw_paths(axis, positions: dict[str, Array], headings: dict[str, Array], dims: tuple[int, int]) -> None:
    colors = colormaps[CAMERA_COLORMAP]
    everything = np.concatenate(list(positions.values()))
    centre = (everything.min(axis=0) + everything.max(axis=0)) / 2
    extent = max(float(np.ptp(everything[:, list(dims)], axis=0).max()), 1.0)
    tick = HEADING_FRACTION * extent
    for index, (camera, points) in enumerate(positions.items()):
        color = colors(index % 10)
        flat = (points - centre)[:, list(dims)]
        view = headings[camera][:, list(dims)]
        axis.plot(flat[:, 0], flat[:, 1], color=color, linewidth=1.5, label=camera)
        axis.scatter(flat[:1, 0], flat[:1, 1], color=color, s=18, zorder=3)
        for end in (0, -1):
            axis.plot(
                [flat[end, 0], flat[end, 0] + tick * view[end, 0]],
                [flat[end, 1], flat[end, 1] + tick * view[end, 1]],
                color=color,
                linewidth=1.0,
                alpha=0.8,
            )
        axis.annotate(camera, flat[0], textcoords="offset points", xytext=(3, 3), fontsize=7, color=color)
    axis.set_aspect("equal", adjustable="datalim")
    axis.grid(alpha=0.3)


def write_contact_sheet(
    scene: Scene | str | Path,
    path: str | Path,
    *,
    frames: Sequence[int] = DEFAULT_SHEET_FRAMES,
    overwrite: bool = False,
    dpi: int = 100,
) -> Path:
    """Draw the contact sheet of ``scene`` (a :class:`Scene` or its folder) into a PNG at ``path``.

    Raises :class:`~recammaster.errors.OutputExistsError` if ``path`` exists and ``overwrite`` is False
    (checked before any video is read), :class:`~recammaster.video.VideoError` or
    :class:`~recammaster.errors.CameraFileError` naming the file that cannot be read.
    """
    scene = scene if isinstance(scene, Scene) else Scene(Path(scene))
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    pictures = scene_frames(scene, frames)
    cameras = read_camera_extrinsics(scene.extrinsics_path)
    poses = {name: ue_to_opencv(matrices) for name, matrices in cameras.items()}
    positions = {name: p[:, :3, 3] for name, p in poses.items()}
    headings = {name: p[:, :3, 2] for name, p in poses.items()}  # optical axis in world coordinates

    rows, columns = len(frames), len(CAMERA_NAMES)
    figure = Figure(figsize=(columns * THUMB_IN + 0.6, rows * THUMB_IN + MAP_HEIGHT_IN + 0.8))
    grid = figure.add_gridspec(
        rows + 1,
        columns,
        height_ratios=[THUMB_IN] * rows + [MAP_HEIGHT_IN],
        left=0.04,
        right=0.98,
        bottom=0.05,
        top=0.93,
        hspace=0.15,
        wspace=0.05,
    )
    figure.suptitle(f"{scene.id}  ({scene.path})", fontsize=10)
    for column, camera in enumerate(CAMERA_NAMES):
        for row, frame in enumerate(frames):
            axis = figure.add_subplot(grid[row, column])
            axis.imshow(pictures[camera][row])
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(camera, fontsize=9)
            if column == 0:
                axis.set_ylabel(f"frame {frame}", fontsize=8)
    # World after ue_to_opencv: x = UE forward, y = UE left, z = up (right-handed, metres).
    top = figure.add_subplot(grid[rows, : columns // 2])
    _draw_paths(top, positions, headings, (0, 1))
    top.set_title("from above", fontsize=9)
    top.set_xlabel("x (m)")
    top.set_ylabel("y (m)")
    side = figure.add_subplot(grid[rows, columns // 2 :])
    _draw_paths(side, positions, headings, (0, 2))
    side.set_title("from the side", fontsize=9)
    side.set_xlabel("x (m)")
    side.set_ylabel("height (m, from the centre of all cameras)")
    side.legend(fontsize=7, ncol=2, loc="best")
    with atomic_output(path, overwrite=overwrite) as temporary:
        figure.savefig(temporary, dpi=dpi)
    return path
