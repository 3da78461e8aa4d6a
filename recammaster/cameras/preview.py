"""Trajectory previews: what a camera path sees of a small fixed scene, as frames or an animated GIF.

The scene is placed in the trajectory's first-camera frame (OpenCV axes: x right, y down, z forward;
metres). The first camera stands 1.6 m above a checkerboard ground (y = +1.6) and looks level at a
red box 4 m ahead. That is the point the presets' arcs and orbits turn around (radius 4 m). A blue
sphere stands left of the box, a yellow pillar right of it and a green box far behind it. Pans, tilts,
dollies, pedestals, arcs and orbits therefore each move the picture in their own way.

Rendering is a vectorised numpy ray caster with one ray per pixel (or 2x2 with ``supersample``). Ray
and ground plane, ray and sphere, and the slab method for axis-aligned boxes give the hits; the
nearest hit wins. Shading is Lambert under a fixed sun with hard shadows, distance fog on the ground
and a sky gradient: the textbook ray caster, nothing more, and no code from upstream (which has no
preview).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from recammaster.cameras.lens import Lens
from recammaster.cameras.trajectory import Trajectory
from recammaster.fileio import atomic_output

Array = np.ndarray

DEFAULT_FOV_DEG = 60.0  # horizontal field of view when neither a lens nor a fov is given
CAMERA_HEIGHT_M = 1.6
FRAMES_PER_BATCH = 16  # frames ray-cast together: big enough to amortise numpy overhead, small in memory
_EPSILON = 1e-6

# ---------------------------------------------------------------------------
# The reference scene (first-camera OpenCV frame: x right, y down, z forward)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """An axis-aligned box from corner ``low`` to corner ``high``."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Sphere:
    centre: tuple[float, float, float]
    radius: float
    color: tuple[float, float, float]


GROUND_Y = CAMERA_HEIGHT_M
RED_BOX = Box((-0.4, GROUND_Y - 1.9, 3.6), (0.4, GROUND_Y, 4.4), (0.85, 0.12, 0.10))
BLUE_SPHERE = Sphere((-1.6, GROUND_Y - 0.5, 4.0), 0.5, (0.15, 0.35, 0.90))
YELLOW_PILLAR = Box((1.4, GROUND_Y - 2.8, 3.85), (1.7, GROUND_Y, 4.15), (0.95, 0.80, 0.10))
GREEN_BOX = Box((-2.5, GROUND_Y - 2.5, 10.0), (0.0, GROUND_Y, 12.0), (0.20, 0.65, 0.25))
SCENE: tuple[Box | Sphere, ...] = (RED_BOX, BLUE_SPHERE, YELLOW_PILLAR, GREEN_BOX)

GROUND_COLORS = (np.array([0.62, 0.60, 0.55]), np.array([0.40, 0.39, 0.36]))  # 1 m checker squares
SKY_HORIZON = np.array([0.80, 0.87, 0.95])
SKY_ZENITH = np.array([0.25, 0.45, 0.80])
CHECKER_FADE_M = (0.2, 0.6)  # pixel footprints on the ground between which the checker fades out
FOG_DISTANCE_M = 30.0  # the ground fades into the horizon colour, which also hides checker aliasing
SUN_DIRECTION = np.array([-0.4, -0.8, -0.9]) / np.linalg.norm([-0.4, -0.8, -0.9])  # towards the sun
AMBIENT = 0.35


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def render_preview(
    trajectory: Trajectory,
    *,
    width: int = 160,
    height: int = 90,
    fov_deg: float | None = None,
    lens: Lens | None = None,
    stride: int = 1,
    supersample: bool = False,
) -> Array:
    """Render frames 0, stride, 2*stride, ... of ``trajectory``: (frames, height, width, 3) uint8.

    The horizontal field of view comes from ``lens``, else ``fov_deg``, else the trajectory's own
    lens, else 60 degrees. ``supersample`` casts 2x2 rays per pixel and averages them.
    """
    if width < 1 or height < 1:
        raise ValueError(f"preview size must be positive, got width={width}, height={height}")
    if stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    focal_px = _focal_length_px(width, fov_deg, lens or (trajectory.lens if fov_deg is None else None))
    factor = 2 if supersample else 1
    directions = _camera_rays(width * factor, height * factor, focal_px * factor)  # (P, 3)

    poses = trajectory.relative_to_start().poses[::stride]
    frames = np.empty((len(poses), height * factor, width * factor, 3))
    for start in range(0, len(poses), FRAMES_PER_BATCH):
        batch = poses[start : start + FRAMES_PER_BATCH]
        world_directions = np.einsum("fij,pj->fpi", batch[:, :3, :3], directions)  # (F, P, 3)
        origins = np.broadcast_to(batch[:, None, :3, 3], world_directions.shape)
        colors = shade(origins.reshape(-1, 3), world_directions.reshape(-1, 3), 1.0 / (focal_px * factor))
        frames[start : start + len(batch)] = colors.reshape(len(batch), height * factor, width * factor, 3)
    if supersample:
        frames = frames.reshape(len(poses), height, 2, width, 2, 3).mean(axis=(2, 4))
    return (np.clip(frames, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def write_preview_gif(
    trajectory: Trajectory,
    path: str | Path,
    *,
    overwrite: bool = False,
    fps: float = 15.0,
    width: int = 160,
    height: int = 90,
    fov_deg: float | None = None,
    lens: Lens | None = None,
    stride: int = 1,
    supersample: bool = False,
) -> Path:
    """Render a preview (see :func:`render_preview`) and write it as a looping GIF; returns the path.

    Pillow merges identical consecutive frames into one longer frame, so a static camera's GIF holds
    a single frame. Raises :class:`~recammaster.errors.OutputExistsError` if ``path`` exists and
    ``overwrite`` is False.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    frames = render_preview(
        trajectory, width=width, height=height, fov_deg=fov_deg, lens=lens, stride=stride, supersample=supersample
    )
    images = [Image.fromarray(frame) for frame in frames]
    with atomic_output(path, overwrite=overwrite) as temporary:
        images[0].save(
            temporary, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
        )
    return Path(path)


# ---------------------------------------------------------------------------
# Ray casting
# ---------------------------------------------------------------------------


def _focal_length_px(width: int, fov_deg: float | None, lens: Lens | None) -> float:
    if lens is not None:
        return float(lens.intrinsics(width, 1)[0, 0])
    fov = DEFAULT_FOV_DEG if fov_deg is None else fov_deg
    if not 0.0 < fov < 180.0:
        raise ValueError(f"fov_deg must lie strictly between 0 and 180, got {fov_deg}")
    return width / 2 / np.tan(np.radians(fov) / 2)


def _camera_rays(width: int, height: int, focal_px: float) -> Array:
    """Unit ray directions through the pixel centres, (height * width, 3), camera frame, row-major."""
    u = (np.arange(width) + 0.5 - width / 2) / focal_px
    v = (np.arange(height) + 0.5 - height / 2) / focal_px
    directions = np.stack(np.broadcast_arrays(u[None, :], v[:, None], 1.0), axis=-1).reshape(-1, 3)
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def shade(origins: Array, directions: Array, pixel_angle: float = 0.0) -> Array:
    """RGB in [0, 1], (N, 3), of rays (N, 3) with unit directions cast into the reference scene.

    ``pixel_angle`` (radians, 1 / focal length in pixels) fades the checkerboard where one pixel
    covers too much ground to show it, instead of letting it alias into noise.

    Inside, rays are stored as (3, N) float32 rows (x, y, z), which keeps every step one pass over
    contiguous memory; shadow rays all share the sun's direction, passed as a (3, 1) column.
    """
    origins = np.ascontiguousarray(origins.T, dtype=np.float32)
    directions = np.ascontiguousarray(directions.T, dtype=np.float32)
    distance, target = _nearest_hit(origins, directions)
    colors = _sky(directions)

    for index, shape in enumerate((None, *SCENE)):  # index 0 is the ground
        rays = np.flatnonzero(target == index)
        if len(rays) == 0:
            continue
        points = origins[:, rays] + distance[rays] * directions[:, rays]  # (3, n)
        normal = np.array([[0.0], [-1.0], [0.0]]) if shape is None else _normal(shape, points)
        lambert = np.clip(SUN_DIRECTION @ normal, 0.0, None)  # (n,) or (1,)
        lit = ~_occluded(points + 1e-3 * normal)
        light = AMBIENT + (1.0 - AMBIENT) * lambert * lit
        if shape is None:
            squares = (np.floor(points[0]) + np.floor(points[2])).astype(np.int64) % 2
            footprint = distance[rays] * pixel_angle / directions[1, rays]  # metres of ground per pixel
            contrast = np.clip((CHECKER_FADE_M[1] - footprint) / np.subtract(*CHECKER_FADE_M[::-1]), 0, 1)
            mean = (GROUND_COLORS[0] + GROUND_COLORS[1]) / 2
            albedo = mean + (np.where(squares == 0, 0.5, -0.5) * contrast)[:, None] * (
                GROUND_COLORS[0] - GROUND_COLORS[1]
            )
            fog = (1.0 - np.exp(-distance[rays] / FOG_DISTANCE_M))[:, None]
            colors[rays] = albedo * light[:, None] * (1.0 - fog) + SKY_HORIZON * fog
        else:
            colors[rays] = np.asarray(shape.color) * light[:, None]
    return colors


def _sky(directions: Array) -> Array:
    """(N, 3) sky colours of (3, N) unit directions: pale at the horizon, deep blue overhead."""
    elevation = np.clip(-directions[1], 0.0, 1.0)  # up is -y
    blend = elevation[:, None] ** 0.6
    return SKY_HORIZON * (1.0 - blend) + SKY_ZENITH * blend


def _nearest_hit(origins: Array, directions: Array) -> tuple[Array, Array]:
    """Distance to each ray's nearest hit and what it hit: -1 nothing (sky), 0 ground, 1 + SCENE index."""
    with np.errstate(divide="ignore"):
        inverse = 1.0 / directions  # +-inf for axis-parallel rays: the slab tests handle it
    # The ground plane y = GROUND_Y, seen from above: rays going down from a camera above it.
    distance = (GROUND_Y - origins[1]) * inverse[1]
    above = (origins[1] < GROUND_Y) & (distance > _EPSILON) & np.isfinite(distance)
    distance = np.where(above, distance, np.inf).astype(np.float32)
    target = np.where(above, 0, -1).astype(np.int8)
    for index, shape in enumerate(SCENE, start=1):
        t = _distance(shape, origins, directions, inverse)
        closer = t < distance
        distance = np.where(closer, t, distance)
        target[closer] = index
    return distance, target


def _occluded(points: Array) -> Array:
    """Whether the way from each point (3, n) to the sun is blocked by a scene object (hard shadows)."""
    direction = SUN_DIRECTION.astype(np.float32)[:, None]
    inverse = 1.0 / direction  # the sun is not axis-parallel
    blocked = np.zeros(points.shape[1], dtype=bool)
    for shape in SCENE:
        blocked |= np.isfinite(_distance(shape, points, direction, inverse))
    return blocked


def _distance(shape: Box | Sphere, origins: Array, directions: Array, inverse: Array) -> Array:
    """Distance along each ray to ``shape``, inf on a miss; rays are (3, N) origins and directions."""
    if isinstance(shape, Box):
        return _box_distance(shape, origins, inverse)
    return _sphere_distance(shape, origins, directions)


def _box_distance(box: Box, origins: Array, inverse: Array) -> Array:
    """The slab method: a ray is inside the box where it is between all three pairs of planes."""
    t_enter = np.full(origins.shape[1], -np.inf, dtype=np.float32)
    t_exit = np.full(origins.shape[1], np.inf, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # 0 * inf on a slab plane: nan compares false, i.e. a miss
        for axis in range(3):
            t_low = (box.low[axis] - origins[axis]) * inverse[axis]
            t_high = (box.high[axis] - origins[axis]) * inverse[axis]
            t_enter = np.maximum(t_enter, np.minimum(t_low, t_high))
            t_exit = np.minimum(t_exit, np.maximum(t_low, t_high))
        return np.where((t_enter <= t_exit) & (t_enter > _EPSILON), t_enter, np.inf)


def _sphere_distance(sphere: Sphere, origins: Array, directions: Array) -> Array:
    """Nearest positive root of |o + t d - c| = r for unit d (a ray from inside exits through the far side)."""
    offset = origins - np.asarray(sphere.centre, dtype=np.float32)[:, None]
    half_b = (offset * directions).sum(axis=0)
    c = (offset * offset).sum(axis=0) - sphere.radius**2
    discriminant = half_b * half_b - c
    root = np.sqrt(np.clip(discriminant, 0.0, None))
    t = np.where(-half_b - root > _EPSILON, -half_b - root, -half_b + root)
    return np.where((discriminant >= 0) & (t > _EPSILON), t, np.inf)


def _normal(shape: Box | Sphere, points: Array) -> Array:
    """Outward unit normals (3, n) at surface points (3, n)."""
    if isinstance(shape, Sphere):
        return (points - np.asarray(shape.centre)[:, None]) / shape.radius
    low, high = np.asarray(shape.low)[:, None], np.asarray(shape.high)[:, None]
    # The face a point lies on is the one it is closest to, relative to the box's half-size.
    relative = (points - (low + high) / 2) / ((high - low) / 2)  # in [-1, 1] per axis
    axis = np.abs(relative).argmax(axis=0)
    normal = np.zeros_like(points)
    normal[axis, np.arange(points.shape[1])] = np.sign(relative[axis, np.arange(points.shape[1])])
    return normal
