"""Seeded sampling of MultiCamVideo-style camera trajectories around a character.

The rules are those of the seed README's "Camera" section (MultiCamVideo, from "1. Camera Starting
Position" to "4. Camera Parameters"):

1. start: inside the upper hemisphere of radius R in {3, 5, 7, 10} m around the character, at
   least 0.5 m from it, with a pitch within 45 degrees, aiming at it;
2. motion: pan (5-45 degrees), tilt (5-30 degrees), translation along a camera axis by [1/4, 1] x
   the distance to the character, an arc around the character (15-75 degrees), a smoothed random
   path through 1-3 points whose length is [1/4, 1] x that distance, or a static camera;
3. speed: half of the cameras move at constant speed, half follow the exponential curve of
   :mod:`recammaster.cameras.speed`;
4. lens: one of the four MultiCamVideo lenses.

The world is right-handed with z up, in metres, and the ground is the plane z = 0. Poses are OpenCV
camera-to-world matrices (x right, y down, z forward; see :mod:`recammaster.cameras.geometry`).
Choices the README leaves open are the constants below, each with its reason, and these:

- pans turn about the world vertical (a tripod head), tilts about the camera's level x axis, so
  neither rolls the horizon; arcs follow the true horizontal circle around the character (unlike the
  chords of the official presets) and keep aiming at it; random paths aim at the character too;
- progress at frame k of n is speed(k / (n - 1)), so the last frame completes the drawn motion;
- every frame, not just the start, stays MIN_CAMERA_HEIGHT_M above the ground and MIN_CLEARANCE_M
  from the character; a draw that breaks this is redrawn (start and motion together).

All randomness comes from the ``numpy.random.Generator`` the caller passes or builds from an int
seed, so one seed fixes every array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from recammaster.cameras.geometry import look_at, make_pose, rotation_x, rotation_z
from recammaster.cameras.lens import MULTICAM_LENSES, Lens
from recammaster.cameras.speed import SpeedCurve, parse_speed
from recammaster.cameras.trajectory import Trajectory
from recammaster.errors import TrajectoryError

Array = np.ndarray

# ---------------------------------------------------------------------------
# The rules as numbers
# ---------------------------------------------------------------------------

WORLD_UP = np.array([0.0, 0.0, 1.0])
NUM_FRAMES = 81  # MultiCamVideo clips
CAMERAS_PER_SCENE = 10  # MultiCamVideo statistics table

RADII_M = (3.0, 5.0, 7.0, 10.0)  # hemisphere radii; the README picks one per scene by its size
MIN_START_DISTANCE_M = 0.5
MAX_START_PITCH_DEG = 45.0
MIN_CAMERA_HEIGHT_M = 0.2  # above the ground plane z = 0: a lens inside the floor films nothing
MIN_CLEARANCE_M = 0.5  # the start rule kept along the whole path, so no camera enters the character
MAX_TRACKING_PITCH_DEG = 80.0  # a camera aiming at the character never looks straight down

PAN_RANGE_DEG = (5.0, 45.0)
TILT_RANGE_DEG = (5.0, 30.0)
ARC_RANGE_DEG = (15.0, 75.0)
TRAVEL_RANGE = (0.25, 1.0)  # translation distance and random-path length, x distance to character
RANDOM_POINT_COUNTS = (1, 2, 3)
MAX_TURN_DEG = 90.0  # largest turn between consecutive legs of a random path

VARIABLE_SPEED_PROBABILITY = 0.5
# |a| of the exponential curve, whose first and last speeds differ by a factor exp(|a|): from 2.7x
# (clearly not constant over 81 frames) to 55x (drastic, yet the camera still moves at the end).
EXPONENTIAL_A_RANGE = (1.0, 4.0)

# Translation has six directions and gets the largest share; arcs and random paths move both
# position and aim, the most informative motions for re-rendering; pure rotations teach less, and
# static cameras (needed for stabilisation) least.
KIND_PROBABILITIES: dict[str, float] = {
    "pan": 0.15,
    "tilt": 0.10,
    "translation": 0.25,
    "arc": 0.20,
    "random": 0.20,
    "static": 0.10,
}
DIRECTIONS: dict[str, tuple[str, ...]] = {
    "pan": ("left", "right"),
    "tilt": ("up", "down"),
    "translation": ("right", "left", "down", "up", "forward", "backward"),
    "arc": ("left", "right"),
    "random": (),
    "static": (),
}
_TRANSLATION_AXES = {  # direction -> (column of the start rotation, sign); camera y points down
    "right": (0, 1.0),
    "left": (0, -1.0),
    "down": (1, 1.0),
    "up": (1, -1.0),
    "forward": (2, 1.0),
    "backward": (2, -1.0),
}
MAX_ATTEMPTS = 1000  # start-and-motion draws before giving up on a layout that cannot be met
_SPLINE_SAMPLES = 256  # dense points per spline segment, for arc-length re-parametrisation


@dataclass(frozen=True, eq=False)
class SampledCamera:
    """One sampled camera: its trajectory and every value drawn for it (world, metres, degrees)."""

    trajectory: Trajectory
    kind: str  # a key of KIND_PROBABILITIES
    direction: str | None  # one of DIRECTIONS[kind]; None for random and static
    character: Array  # (3,) the world point the start camera aims at
    radius: float  # hemisphere radius R the start was drawn from
    start_distance: float  # distance of the start camera to the character
    speed: SpeedCurve  # progress along the motion at normalised time; linear for static
    lens: Lens
    angle_deg: float | None = None  # pan, tilt and arc
    distance: float | None = None  # translation distance or random-path length
    points: Array = field(default_factory=lambda: np.zeros((0, 3)))  # random: points passed through

    def __post_init__(self) -> None:
        for name in ("character", "points"):
            value = np.array(getattr(self, name), dtype=np.float64)
            value.setflags(write=False)
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class _Motion:
    rotations: Array  # (frames, 3, 3)
    positions: Array  # (frames, 3)
    angle_deg: float | None = None
    distance: float | None = None
    points: Array | None = None
    aims_at_character: bool = False  # rotations come from look-at, so the pitch must stay bounded


# ---------------------------------------------------------------------------
# Random draws
# ---------------------------------------------------------------------------


def make_generator(seed: int | np.random.Generator) -> np.random.Generator:
    """The caller's generator itself, or a new one from an int seed; never numpy's global state."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise TrajectoryError(f"seed must be an int or a numpy.random.Generator, got {type(seed).__name__}")


def sample_kind(rng: np.random.Generator) -> str:
    """A trajectory kind drawn with KIND_PROBABILITIES."""
    kinds = list(KIND_PROBABILITIES)
    return kinds[rng.choice(len(kinds), p=list(KIND_PROBABILITIES.values()))]


def sample_speed(rng: np.random.Generator) -> SpeedCurve:
    """Constant speed or, with VARIABLE_SPEED_PROBABILITY, an exponential curve of random sign."""
    if rng.random() >= VARIABLE_SPEED_PROBABILITY:
        return SpeedCurve()
    magnitude = rng.uniform(*EXPONENTIAL_A_RANGE)
    return SpeedCurve("exponential", magnitude if rng.random() < 0.5 else -magnitude)


def _start_position(rng: np.random.Generator, character: Array, radius: float) -> Array:
    # Uniform in volume over the allowed part of the hemisphere: the volume element is
    # r^2 cos(e) dr de dazimuth, so r^3 and sin(e) are uniform.
    r = np.cbrt(rng.uniform(MIN_START_DISTANCE_M**3, radius**3))
    elevation = np.arcsin(rng.uniform(0.0, np.sin(np.radians(MAX_START_PITCH_DEG))))
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    horizontal = np.cos(elevation)
    direction = [horizontal * np.cos(azimuth), horizontal * np.sin(azimuth), np.sin(elevation)]
    return character + r * np.array(direction)


# ---------------------------------------------------------------------------
# Motions: each draws its magnitude and moves the start pose by ``fraction`` (progress per frame)
# ---------------------------------------------------------------------------


def _still(start: Array, count: int) -> tuple[Array, Array]:
    return np.broadcast_to(start[:3, :3], (count, 3, 3)), np.broadcast_to(start[:3, 3], (count, 3))


def _pan(rng, start, character, direction, fraction) -> _Motion:
    angle = rng.uniform(*PAN_RANGE_DEG)
    # About the world vertical, like a tripod head, so the horizon stays level. Seen from above a
    # right turn is clockwise: a negative angle about +z.
    sign = -1.0 if direction == "right" else 1.0
    turns = np.stack([rotation_z(a) for a in sign * np.radians(angle) * fraction])
    _, positions = _still(start, len(fraction))
    return _Motion(turns @ start[:3, :3], positions, angle_deg=angle)


def _tilt(rng, start, character, direction, fraction) -> _Motion:
    angle = rng.uniform(*TILT_RANGE_DEG)
    # About the camera's own x axis, which is horizontal because the start has no roll.
    sign = 1.0 if direction == "up" else -1.0
    turns = np.stack([rotation_x(a) for a in sign * np.radians(angle) * fraction])
    _, positions = _still(start, len(fraction))
    return _Motion(start[:3, :3] @ turns, positions, angle_deg=angle)


def _translation(rng, start, character, direction, fraction) -> _Motion:
    travel = rng.uniform(*TRAVEL_RANGE) * np.linalg.norm(start[:3, 3] - character)
    column, sign = _TRANSLATION_AXES[direction]
    rotations, _ = _still(start, len(fraction))
    positions = start[:3, 3] + np.outer(fraction, sign * travel * start[:3, column])
    return _Motion(rotations, positions, distance=travel)


def _arc(rng, start, character, direction, fraction) -> _Motion:
    angle = rng.uniform(*ARC_RANGE_DEG)
    # On the horizontal circle through the start around the character's vertical axis. The
    # camera's right axis is forward x up, so moving right is a counter-clockwise turn seen from
    # above; turning the aim by the same angle keeps it on the character.
    sign = 1.0 if direction == "right" else -1.0
    turns = np.stack([rotation_z(a) for a in sign * np.radians(angle) * fraction])
    positions = character + turns @ (start[:3, 3] - character)
    return _Motion(turns @ start[:3, :3], positions, angle_deg=angle)


def _leg_headings(rng: np.random.Generator, count: int) -> Array:
    # Uniform directions, except that no leg turns back by more than MAX_TURN_DEG from the one
    # before: an operator does not double back, and hairpins would leave no smooth path to follow.
    headings = [_unit(rng.normal(size=3))]
    while len(headings) < count:
        heading = _unit(rng.normal(size=3))
        if np.dot(heading, headings[-1]) >= np.cos(np.radians(MAX_TURN_DEG)):
            headings.append(heading)
    return np.array(headings)


def _unit(vector: Array) -> Array:
    return vector / np.linalg.norm(vector)


def _random(rng, start, character, direction, fraction) -> _Motion:
    length = rng.uniform(*TRAVEL_RANGE) * np.linalg.norm(start[:3, 3] - character)
    count = RANDOM_POINT_COUNTS[rng.integers(len(RANDOM_POINT_COUNTS))]
    headings = _leg_headings(rng, count)
    shares = 0.5 / count + 0.5 * rng.dirichlet(np.ones(count))  # every leg >= half the mean length
    offsets = np.cumsum(headings * shares[:, None], axis=0)  # a polyline of unit length
    curve = catmull_rom(np.vstack([np.zeros(3), offsets]))
    # Smoothing lengthens the path, so scale it about the start to the drawn length; the points
    # scale with it and stay on the curve.
    scale = length / _cumulative_length(curve)[-1]
    positions = start[:3, 3] + scale * walk(curve, fraction)
    rotations = np.stack([look_at(p, character, WORLD_UP) for p in positions])
    return _Motion(rotations, positions, distance=length, points=start[:3, 3] + scale * offsets, aims_at_character=True)


def _static(rng, start, character, direction, fraction) -> _Motion:
    return _Motion(*_still(start, len(fraction)))


_MOTIONS: dict[str, Callable[..., _Motion]] = {
    "pan": _pan,
    "tilt": _tilt,
    "translation": _translation,
    "arc": _arc,
    "random": _random,
    "static": _static,
}


# ---------------------------------------------------------------------------
# Smooth paths
# ---------------------------------------------------------------------------


def catmull_rom(points: Array, samples_per_segment: int = _SPLINE_SAMPLES) -> Array:
    """Dense points of the centripetal Catmull-Rom spline through ``points`` (n, 3), n >= 2.

    Centripetal knots (alpha 1/2) never overshoot into cusps or loops, and the curve passes through
    every point exactly, so a random path really visits its sampled points. The ends use mirrored
    phantom points, which makes a two-point spline the straight segment.
    """
    points = np.asarray(points, dtype=np.float64)
    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    pieces = [points[:1]]
    for i in range(len(points) - 1):
        p = padded[i : i + 4]
        gaps = np.maximum(np.linalg.norm(np.diff(p, axis=0), axis=1) ** 0.5, 1e-12)
        t0, t1, t2, t3 = np.concatenate([[0.0], np.cumsum(gaps)])
        t = np.linspace(t1, t2, samples_per_segment + 1)[1:, None]
        a1 = ((t1 - t) * p[0] + (t - t0) * p[1]) / (t1 - t0)
        a2 = ((t2 - t) * p[1] + (t - t1) * p[2]) / (t2 - t1)
        a3 = ((t3 - t) * p[2] + (t - t2) * p[3]) / (t3 - t2)
        b1 = ((t2 - t) * a1 + (t - t0) * a2) / (t2 - t0)
        b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1)
        pieces.append(((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1))
    return np.concatenate(pieces)


def _cumulative_length(curve: Array) -> Array:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])


def walk(curve: Array, fraction: Array) -> Array:
    """Points at fractions of a dense polyline's arc length, so a speed curve sets the pace."""
    arc = _cumulative_length(curve)
    along = np.asarray(fraction, dtype=np.float64) * arc[-1]
    columns = [np.interp(along, arc, curve[:, axis]) for axis in range(curve.shape[1])]
    return np.stack(columns, axis=-1)


def _path_fits(motion: _Motion, character: Array, min_height: float) -> bool:
    if motion.positions[:, 2].min() < min_height:
        return False
    offsets = motion.positions - character
    distances = np.linalg.norm(offsets, axis=1)
    if distances.min() < MIN_CLEARANCE_M:
        return False
    if motion.aims_at_character:
        pitch = np.degrees(np.arcsin(np.abs(offsets[:, 2]) / distances))
        return bool(pitch.max() <= MAX_TRACKING_PITCH_DEG)
    return True


# ---------------------------------------------------------------------------
# Public samplers
# ---------------------------------------------------------------------------


def _check_arguments(
    character: Array, kind: str | None, direction: str | None, radius: float | None, num_frames: int, min_height: float
) -> None:
    if character.shape != (3,) or not np.all(np.isfinite(character)):
        raise TrajectoryError(f"character must be a finite point (x, y, z), got {character.tolist()}")
    if num_frames < 2:
        raise TrajectoryError(f"num_frames must be at least 2, got {num_frames}")
    if kind is not None and kind not in KIND_PROBABILITIES:
        raise TrajectoryError(f"unknown trajectory kind {kind!r}; choose one of: {', '.join(KIND_PROBABILITIES)}")
    if direction is not None and (kind is None or direction not in DIRECTIONS[kind]):
        allowed = ", ".join(DIRECTIONS[kind]) if kind else "none until kind is given"
        raise TrajectoryError(f"direction {direction!r} does not fit kind {kind!r}; allowed: {allowed}")
    if radius is not None and not radius > MIN_START_DISTANCE_M:
        raise TrajectoryError(f"radius must exceed {MIN_START_DISTANCE_M} m, got {radius}")
    highest = character[2] + (radius or max(RADII_M)) * np.sin(np.radians(MAX_START_PITCH_DEG))
    if highest < min_height:
        raise TrajectoryError(
            f"no start camera reaches min_height={min_height} m from a character at z={character[2]} m"
        )


def sample_camera(
    generator: int | np.random.Generator,
    *,
    character: Sequence[float] | Array = (0.0, 0.0, 0.0),
    radius: float | None = None,
    kind: str | None = None,
    direction: str | None = None,
    speed: str | SpeedCurve | None = None,
    num_frames: int = NUM_FRAMES,
    min_height: float = MIN_CAMERA_HEIGHT_M,
    start: Array | None = None,
) -> SampledCamera:
    """One camera following the MultiCamVideo rules; ``None`` arguments are drawn, others are kept.

    Fixing ``kind``, ``direction``, ``radius`` or ``speed`` lets callers build balanced sets and
    lets tests aim at one rule. Start and motion are redrawn together until the whole path stays
    above ``min_height`` and MIN_CLEARANCE_M from the character. ``start`` (a 4x4 pose) fixes the
    first pose instead, as a re-rendering request starts where the source camera starts; then only
    the motion is redrawn.
    """
    rng = make_generator(generator)
    character = np.asarray(character, dtype=np.float64)
    _check_arguments(character, kind, direction, radius, num_frames, min_height)
    kind = sample_kind(rng) if kind is None else kind
    radius = float(RADII_M[rng.integers(len(RADII_M))]) if radius is None else float(radius)
    lens = MULTICAM_LENSES[rng.integers(len(MULTICAM_LENSES))]
    if kind == "static":  # nothing moves, so there is no pace to draw
        speed = SpeedCurve()
    elif speed is None:
        speed = sample_speed(rng)
    else:
        speed = parse_speed(speed)
    fraction = speed(np.arange(num_frames) / (num_frames - 1))

    fixed_start = None if start is None else np.asarray(start, dtype=np.float64)
    for _ in range(MAX_ATTEMPTS):
        if fixed_start is None:
            position = _start_position(rng, character, radius)
            start = make_pose(look_at(position, character, WORLD_UP), position)
        else:
            start, position = fixed_start, fixed_start[:3, 3]
        options = DIRECTIONS[kind]
        chosen = direction or (options[rng.integers(len(options))] if options else None)
        motion = _MOTIONS[kind](rng, start, character, chosen, fraction)
        if _path_fits(motion, character, min_height):
            break
    else:
        where = f"radius {radius} m" if fixed_start is None else f"a start at {fixed_start[:3, 3].round(2).tolist()}"
        raise TrajectoryError(
            f"no {kind} camera fits {where} around {character.tolist()} above "
            f"min_height={min_height} m in {MAX_ATTEMPTS} draws"
        )

    name = kind if chosen is None else f"{kind}-{chosen}"
    metadata = {"kind": kind, "direction": chosen, "speed": str(speed), "radius_m": radius}
    trajectory = Trajectory(make_pose(motion.rotations, motion.positions), name=name, lens=lens, metadata=metadata)
    return SampledCamera(
        trajectory=trajectory,
        kind=kind,
        direction=chosen,
        character=character,
        radius=radius,
        start_distance=float(np.linalg.norm(position - character)),
        speed=speed,
        lens=lens,
        angle_deg=motion.angle_deg,
        distance=motion.distance,
        points=np.zeros((0, 3)) if motion.points is None else motion.points,
    )


def sample_scene_cameras(
    generator: int | np.random.Generator,
    num_cameras: int = CAMERAS_PER_SCENE,
    *,
    character: Sequence[float] | Array = (0.0, 0.0, 0.0),
    num_frames: int = NUM_FRAMES,
    radius: float | None = None,
    min_height: float = MIN_CAMERA_HEIGHT_M,
) -> tuple[SampledCamera, ...]:
    """The cameras of one scene (ten in MultiCamVideo), all around one character.

    The README sizes the hemisphere by the scene, so one radius serves every camera of the scene:
    pass it for a known scene size, or leave it to be drawn from RADII_M.
    """
    if num_cameras < 1:
        raise TrajectoryError(f"num_cameras must be at least 1, got {num_cameras}")
    rng = make_generator(generator)
    if radius is None:
        radius = float(RADII_M[rng.integers(len(RADII_M))])
    return tuple(
        sample_camera(rng, character=character, radius=radius, num_frames=num_frames, min_height=min_height)
        for _ in range(num_cameras)
    )
