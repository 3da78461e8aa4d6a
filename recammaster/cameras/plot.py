"""Trajectory plots: camera frustums coloured by time, in 3D and seen from above.

The idea follows upstream's ``vis_cam.py`` (spec ``upstream-recammaster.md`` §6, itself from
CameraCtrl). Each trajectory is taken relative to its first camera. It is then drawn in a plot frame
given by (x, y, z)_OpenCV -> (x, z, -y): the first camera sits at the origin looking along +y, with
+z up. Every camera is a pyramid with a 9:16 base. One is drawn per latent frame (video frames
0, 4, 8, ...) plus the last frame.

Two things differ from upstream. Translations are not rescaled, so the axes read in metres and are
equal on all three axes. Several trajectories share one figure, one column per trajectory: a 3D view
on top and a top-down view (right/forward plane) under it. The figure is built on
``matplotlib.figure.Figure`` without pyplot, so plotting touches no global state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection

from recammaster.cameras.conventions import TEMPORAL_COMPRESSION
from recammaster.cameras.trajectory import Trajectory
from recammaster.errors import TrajectoryError
from recammaster.fileio import atomic_output

Array = np.ndarray

# Rows are the plot axes in OpenCV camera-0 coordinates: right = x, forward = z, up = -y (upstream's
# change of basis). The determinant is +1, so the plot frame is right-handed like the camera's.
PLOT_FROM_OPENCV = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

FRUSTUM_ASPECT = 9 / 16  # base height / width, upstream's hw_ratio
FRUSTUM_DEPTH = 0.2  # pyramid depth as a fraction of the path extent
FRUSTUM_HALF_WIDTH = 0.12  # half-width of the pyramid base, same unit
MIN_EXTENT_M = 1.0  # pure pans and tilts do not move: their frustums are sized as for a 1 m path
FACE_ALPHA, EDGE_ALPHA = 0.05, 0.9
COLORMAP = "viridis"
PANEL_COLUMNS = 5  # the ten presets make two rows of five
PANEL_WIDTH_IN = 3.8
VIEW_3D_HEIGHT_IN = 3.4
FLAT_VIEW_HEIGHT_IN = 1.9


def plot_trajectories(
    trajectories: Sequence[Trajectory], path: str | Path, *, overwrite: bool = False, dpi: int = 110
) -> Path:
    """Draw each trajectory's camera frustums into one PNG and return its path.

    Each panel shows one trajectory relative to its first camera: a 3D view and a top-down view, both
    in metres with equal axis scaling, coloured by frame index (shared colour bar "frame"). Raises
    :class:`~recammaster.errors.OutputExistsError` if ``path`` exists and ``overwrite`` is False.
    """
    if isinstance(trajectories, Trajectory):
        trajectories = [trajectories]
    if not trajectories:
        raise TrajectoryError("plot_trajectories needs at least one trajectory")
    columns = min(len(trajectories), PANEL_COLUMNS)
    rows = math.ceil(len(trajectories) / columns)
    norm = Normalize(0, max(max(t.num_frames for t in trajectories) - 1, 1))
    cmap = colormaps[COLORMAP]

    figure = Figure(figsize=(columns * PANEL_WIDTH_IN + 0.9, rows * (VIEW_3D_HEIGHT_IN + FLAT_VIEW_HEIGHT_IN)))
    grid = figure.add_gridspec(
        2 * rows,
        columns + 1,
        width_ratios=[1.0] * columns + [0.06],
        height_ratios=[VIEW_3D_HEIGHT_IN, FLAT_VIEW_HEIGHT_IN] * rows,
        left=0.03,
        right=0.95,
        bottom=0.04,
        top=0.96,
        wspace=0.2,
        hspace=0.3,
    )
    for index, trajectory in enumerate(trajectories):
        row, column = divmod(index, columns)
        panel = _Panel.build(trajectory)
        view_3d = figure.add_subplot(grid[2 * row, column], projection="3d")
        panel.draw_3d(view_3d, cmap, norm)
        below = grid[2 * row + 1, column].subgridspec(1, 2, wspace=0.45)
        panel.draw_projection(figure.add_subplot(below[0]), TOP_VIEW, cmap, norm)
        panel.draw_projection(figure.add_subplot(below[1]), SIDE_VIEW, cmap, norm)
        view_3d.set_title(trajectory.name, fontsize=12, fontweight="bold", pad=0)

    colorbar = figure.colorbar(ScalarMappable(norm, cmap), cax=figure.add_subplot(grid[:, -1]))
    colorbar.set_label("frame")
    with atomic_output(path, overwrite=overwrite) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, facecolor="white")
    return Path(path)


def plot_frame_indices(num_frames: int) -> Array:
    """Frames that get a frustum: one per latent frame (0, 4, 8, ...) plus the last one."""
    indices = np.arange(0, num_frames, TEMPORAL_COMPRESSION)
    return indices if indices[-1] == num_frames - 1 else np.append(indices, num_frames - 1)


def to_plot_frame(trajectory: Trajectory) -> tuple[Array, Array]:
    """Rotations (frames, 3, 3) and positions (frames, 3) relative to the first camera, in the plot frame."""
    relative = trajectory.relative_to_start()
    return PLOT_FROM_OPENCV @ relative.rotations, relative.positions @ PLOT_FROM_OPENCV.T


def frustum_vertices(rotations: Array, positions: Array, size: float) -> Array:
    """(n, 5, 3) pyramids: the apex, then the base corners top-left, top-right, bottom-right, bottom-left.

    ``size`` is the path extent the pyramid is scaled to; the base lies ahead along camera z.
    """
    half_w = FRUSTUM_HALF_WIDTH * size
    half_h = half_w * FRUSTUM_ASPECT
    depth = FRUSTUM_DEPTH * size
    local = np.array(  # camera coordinates, y down
        [
            [0, 0, 0],
            [-half_w, -half_h, depth],
            [half_w, -half_h, depth],
            [half_w, half_h, depth],
            [-half_w, half_h, depth],
        ]
    )
    return np.einsum("nij,kj->nki", rotations, local) + positions[:, None, :]


@dataclass(frozen=True)
class _View:
    """A flat view: which two plot axes it shows and which base corners bound the pyramid's wedge."""

    title: str
    axes: tuple[int, int]
    labels: tuple[str, str]
    base_sides: tuple[tuple[int, int], tuple[int, int]]  # corner indices, see frustum_vertices


TOP_VIEW = _View("top view", (0, 1), ("right (m)", "forward (m)"), ((0, 3), (1, 2)))
SIDE_VIEW = _View("side view", (1, 2), ("forward (m)", "up (m)"), ((0, 1), (2, 3)))


# ---------------------------------------------------------------------------
# One panel: a trajectory's geometry and its two views
# ---------------------------------------------------------------------------


class _Panel:
    """The plotted geometry of one trajectory: its path and the frustums of the chosen frames."""

    def __init__(self, positions: Array, frames: Array, frustums: Array) -> None:
        self.positions = positions  # (frames, 3), plot frame
        self.frames = frames  # (n,) frame indices with a frustum
        self.frustums = frustums  # (n, 5, 3)

    @classmethod
    def build(cls, trajectory: Trajectory) -> _Panel:
        rotations, positions = to_plot_frame(trajectory)
        extent = float(np.ptp(positions, axis=0).max())
        frames = plot_frame_indices(trajectory.num_frames)
        size = max(extent, MIN_EXTENT_M)
        return cls(positions, frames, frustum_vertices(rotations[frames], positions[frames], size))

    def draw_3d(self, ax, cmap, norm: Normalize) -> None:
        colors = cmap(norm(self.frames))
        apex, corners = self.frustums[:, :1], self.frustums[:, 1:]
        sides = [
            np.concatenate([apex, corners[:, [i, (i + 1) % 4]]], axis=1) for i in range(4)
        ]  # four (n, 3, 3) triangles
        faces = [face for n in range(len(self.frames)) for face in (*(s[n] for s in sides), corners[n])]
        # Faint faces and solid edges: a fan of overlapping pyramids stays readable.
        ax.add_collection3d(
            Poly3DCollection(
                faces,
                facecolors=_with_alpha(np.repeat(colors, 5, axis=0), FACE_ALPHA),
                edgecolors=_with_alpha(np.repeat(colors, 5, axis=0), EDGE_ALPHA),
                linewidths=0.7,
            )
        )
        # The top edge of each base marks the camera's "up", so rolls and tilts read at a glance.
        ax.add_collection3d(Line3DCollection(corners[:, :2], colors=colors, linewidths=1.6))
        ax.plot(*self.positions.T, color="0.2", linewidth=1.0)
        ax.scatter(*self.positions[0], color="black", s=12, depthshade=False)

        points = np.concatenate([self.frustums.reshape(-1, 3), self.positions])
        centre, half = _cube_bounds(points)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
        ax.set_box_aspect((1, 1, 1), zoom=1.1)
        ax.view_init(elev=22, azim=-55)
        ax.set_xlabel("right (m)", fontsize=7, labelpad=-8)
        ax.set_ylabel("forward (m)", fontsize=7, labelpad=-8)
        ax.set_zlabel("up (m)", fontsize=7, labelpad=-8)
        ax.tick_params(labelsize=6, pad=-3)

    def draw_projection(self, ax, view: _View, cmap, norm: Normalize) -> None:
        """A flat view along one plot axis: the path coloured by time and each pyramid's wedge."""
        colors = cmap(norm(self.frames))
        flat = self.frustums[..., list(view.axes)]
        # Seen along an axis, a pyramid is the wedge from its apex to the middles of two opposite
        # sides of its base (left/right from above, top/bottom from the side).
        first, second = view.base_sides
        wedges = np.stack(
            [flat[:, 0], flat[:, [1 + i for i in first]].mean(axis=1), flat[:, [1 + i for i in second]].mean(axis=1)],
            axis=1,
        )
        ax.add_collection(
            PolyCollection(
                wedges,
                facecolors=_with_alpha(colors, FACE_ALPHA),
                edgecolors=_with_alpha(colors, EDGE_ALPHA),
                linewidths=0.7,
            )
        )
        path = self.positions[:, list(view.axes)]
        segments = np.stack([path[:-1], path[1:]], axis=1)
        ax.add_collection(LineCollection(segments, colors=cmap(norm(np.arange(len(segments)))), linewidths=2.0))
        ax.plot(*path[0], "o", color="black", markersize=3)

        centre, half = _cube_bounds(np.concatenate([wedges.reshape(-1, 2), path]))
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_aspect("equal", adjustable="box")
        ax.grid(True, linewidth=0.4, alpha=0.5)
        ax.set_xlabel(view.labels[0], fontsize=6, labelpad=1)
        ax.set_ylabel(view.labels[1], fontsize=6, labelpad=1)
        ax.tick_params(labelsize=5, pad=1)
        ax.set_title(view.title, fontsize=7, color="0.35", pad=2)


def _cube_bounds(points: Array, margin: float = 1.1) -> tuple[Array, float]:
    """Centre and half-size of the smallest axis-aligned cube around ``points``, with a margin."""
    low, high = points.min(axis=0), points.max(axis=0)
    return (low + high) / 2, max(float((high - low).max()) / 2 * margin, 1e-3)


def _with_alpha(colors: Array, alpha: float) -> Array:
    colors = np.array(colors)
    colors[:, 3] = alpha
    return colors
