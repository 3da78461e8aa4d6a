"""The ten ReCamMaster preset trajectories as parametric generators, plus a few users ask for.

The official presets (upstream ``example_test_data/cameras/camera_extrinsics.json``, the
``val/10basic_trajectories`` of MultiCamVideo; spec ``upstream-recammaster.md`` §3.4) are, relative to
their first camera (x right, y down, z forward, metres):

| no. | name           | move                                                                     |
|-----|----------------|--------------------------------------------------------------------------|
| 1-2 | pan-right/left | yaw 20 degrees                                                           |
| 3-4 | tilt-up/down   | pitch 10 degrees                                                         |
| 5-6 | zoom-in/out    | dolly 2 m along the view                                                 |
| 7-8 | translate-up/down | rise 1 m while pitching to keep aiming at a point 4 m ahead           |
| 9-10| arc-left/right | slide along the chord of a 30 degree arc of radius 4 m, aiming at its centre |

All ten move linearly in time, and their last frame (80 of 81) has done 80/80.5 of the nominal move:
the official files stop half a frame short. ``reach`` reproduces that (default ``OFFICIAL_REACH``);
pass ``reach=1`` to end exactly on the nominal values. Every generator takes ``num_frames``, a
``speed`` curve (:mod:`recammaster.cameras.speed`) and its own magnitudes, so ``pan-right`` by 45
degrees or ``arc-left`` by 60 degrees at 3 m are one call each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from recammaster.cameras.geometry import rotation_x, rotation_y
from recammaster.cameras.speed import SpeedCurve, parse_speed
from recammaster.cameras.trajectory import Trajectory, from_motion, static
from recammaster.errors import TrajectoryError

Array = np.ndarray

OFFICIAL_NUM_FRAMES = 81
OFFICIAL_REACH = 80 / 80.5  # fraction of the nominal move the official presets reach at frame 80


def progress(num_frames: int, speed: str | SpeedCurve | None = None, reach: float = OFFICIAL_REACH) -> Array:
    """Fraction of the move done at each frame: reach * speed(k / (num_frames - 1))."""
    if num_frames < 2:
        raise TrajectoryError(f"a moving camera needs at least 2 frames, got {num_frames}")
    return reach * parse_speed(speed)(np.arange(num_frames) / (num_frames - 1))


def _sign(direction: str, positive: str, negative: str) -> float:
    if direction not in (positive, negative):
        raise TrajectoryError(f"direction must be {positive!r} or {negative!r}, got {direction!r}")
    return 1.0 if direction == positive else -1.0


def _rotation_only(rotations: Array, name: str) -> Trajectory:
    return from_motion(rotations, np.zeros((len(rotations), 3)), name)


# ---------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------


def pan(
    direction: str = "right",
    angle: float = 20.0,
    num_frames: int = OFFICIAL_NUM_FRAMES,
    speed: str | SpeedCurve | None = None,
    reach: float = OFFICIAL_REACH,
) -> Trajectory:
    """Turn the camera left or right in place by ``angle`` degrees."""
    yaw = _sign(direction, "right", "left") * np.radians(angle) * progress(num_frames, speed, reach)
    return _rotation_only(np.stack([rotation_y(a) for a in yaw]), f"pan-{direction}")


def tilt(
    direction: str = "up",
    angle: float = 10.0,
    num_frames: int = OFFICIAL_NUM_FRAMES,
    speed: str | SpeedCurve | None = None,
    reach: float = OFFICIAL_REACH,
) -> Trajectory:
    """Turn the camera up or down in place by ``angle`` degrees."""
    pitch = _sign(direction, "up", "down") * np.radians(angle) * progress(num_frames, speed, reach)
    return _rotation_only(np.stack([rotation_x(a) for a in pitch]), f"tilt-{direction}")


def zoom(
    direction: str = "in",
    distance: float = 2.0,
    num_frames: int = OFFICIAL_NUM_FRAMES,
    speed: str | SpeedCurve | None = None,
    reach: float = OFFICIAL_REACH,
) -> Trajectory:
    """Dolly ``distance`` metres along the viewing axis (ReCamMaster calls this zoom; focal is fixed)."""
    step = _sign(direction, "in", "out") * distance * progress(num_frames, speed, reach)
    positions = np.zeros((num_frames, 3))
    positions[:, 2] = step
    return from_motion(np.broadcast_to(np.eye(3), (num_frames, 3, 3)), positions, f"zoom-{direction}")


def translate(
    direction: str = "up",
    distance: float = 1.0,
    aim_distance: float | None = 4.0,
    num_frames: int = OFFICIAL_NUM_FRAMES,
    speed: str | SpeedCurve | None = None,
    reach: float = OFFICIAL_REACH,
) -> Trajectory:
    """Rise or sink ``distance`` metres; with ``aim_distance`` keep aiming at the point that far ahead.

    ``aim_distance=None`` gives a pure vertical translation (a pedestal move without rotation).
    """
    rise = _sign(direction, "up", "down") * distance * progress(num_frames, speed, reach)
    positions = np.zeros((num_frames, 3))
    positions[:, 1] = -rise  # y points down
    pitch = np.zeros(num_frames) if aim_distance is None else -np.arctan(rise / aim_distance)
    return from_motion(np.stack([rotation_x(a) for a in pitch]), positions, f"translate-{direction}")


def truck(
    direction: str = "right",
    distance: float = 1.0,
    num_frames: int = OFFICIAL_NUM_FRAMES,
    speed: str | SpeedCurve | None = None,
    reach: float = 1.0,
) -> Trajectory:
    """Slide sideways ``distance`` metres without turning."""
    positions = np.zeros((num_frames, 3))
    positions[:, 0] = _sign(direction, "right", "left") * distance * progress(num_frames, speed, reach)
    return from_motion(np.broadcast_to(np.eye(3), (num_frames, 3, 3)), positions, f"truck-{direction}")


def arc(
    direction: str = "left",
    angle: float = 30.0,
    radius: float = 4.0,
    num_frames: int = OFFICIAL_NUM_FRAMES,
    speed: str | SpeedCurve | None = None,
    reach: float = OFFICIAL_REACH,
) -> Trajectory:
    """Move along the chord of an ``angle``-degree arc around a point ``radius`` m ahead, aiming at it.

    Upstream's arcs follow the straight chord, not the circle; :func:`orbit` follows the circle.
    """
    side = -_sign(direction, "right", "left")  # moving left is -x, and turns the view right
    theta = np.radians(angle)
    fraction = progress(num_frames, speed, reach)
    sideways = radius * np.sin(theta) * fraction
    forward = radius * (1.0 - np.cos(theta)) * fraction
    positions = np.stack([-side * sideways, np.zeros(num_frames), forward], axis=1)
    yaw = side * np.arctan2(sideways, radius - forward)
    return from_motion(np.stack([rotation_y(a) for a in yaw]), positions, f"arc-{direction}")


def orbit(
    direction: str = "left",
    angle: float = 360.0,
    radius: float = 4.0,
    num_frames: int = OFFICIAL_NUM_FRAMES,
    speed: str | SpeedCurve | None = None,
    reach: float = 1.0,
) -> Trajectory:
    """Circle ``angle`` degrees around the point ``radius`` m ahead at constant height, always facing it."""
    side = -_sign(direction, "right", "left")
    yaw = side * np.radians(angle) * progress(num_frames, speed, reach)
    positions = np.stack([-radius * np.sin(yaw), np.zeros(num_frames), radius * (1.0 - np.cos(yaw))], axis=1)
    return from_motion(np.stack([rotation_y(a) for a in yaw]), positions, f"orbit-{direction}")


# ---------------------------------------------------------------------------
# Registry: presets by number and by name
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A named trajectory generator; ``number`` is upstream's ``--cam_type`` (None for our extras)."""

    name: str
    build: Callable[..., Trajectory]
    description: str
    number: int | None = None
    parameters: tuple[str, ...] = field(default=())

    def __call__(self, **parameters) -> Trajectory:
        unknown = sorted(set(parameters) - set(self.parameters))
        if unknown:
            raise TrajectoryError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)}; it takes {', '.join(self.parameters)}"
            )
        for key, value in parameters.items():
            _check_parameter(self.name, key, value)
        trajectory = self.build(**parameters)
        return trajectory.with_poses(trajectory.poses, name=self.name)


def _check_parameter(preset: str, key: str, value: object) -> None:
    """Reject values of the wrong type up front, with the preset and parameter in the message."""
    if key == "speed":
        parse_speed(value)
        return
    if key == "aim_distance" and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise TrajectoryError(f"{preset}: {key} must be a number, got {value!r}")
    if key == "num_frames" and (value != int(value) or value < 2):
        raise TrajectoryError(f"{preset}: num_frames must be a whole number >= 2, got {value!r}")


_TIMING = ("num_frames", "speed", "reach")
PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("pan-right", partial(pan, "right"), "turn right 20 degrees", 1, ("angle", *_TIMING)),
        Preset("pan-left", partial(pan, "left"), "turn left 20 degrees", 2, ("angle", *_TIMING)),
        Preset("tilt-up", partial(tilt, "up"), "look up 10 degrees", 3, ("angle", *_TIMING)),
        Preset("tilt-down", partial(tilt, "down"), "look down 10 degrees", 4, ("angle", *_TIMING)),
        Preset("zoom-in", partial(zoom, "in"), "dolly 2 m forward", 5, ("distance", *_TIMING)),
        Preset("zoom-out", partial(zoom, "out"), "dolly 2 m back", 6, ("distance", *_TIMING)),
        Preset(
            "translate-up",
            partial(translate, "up"),
            "rise 1 m, aiming 4 m ahead",
            7,
            ("distance", "aim_distance", *_TIMING),
        ),
        Preset(
            "translate-down",
            partial(translate, "down"),
            "sink 1 m, aiming 4 m ahead",
            8,
            ("distance", "aim_distance", *_TIMING),
        ),
        Preset(
            "arc-left",
            partial(arc, "left"),
            "30 degree arc to the left around a point 4 m ahead",
            9,
            ("angle", "radius", *_TIMING),
        ),
        Preset(
            "arc-right",
            partial(arc, "right"),
            "30 degree arc to the right around a point 4 m ahead",
            10,
            ("angle", "radius", *_TIMING),
        ),
        Preset("static", static, "no motion (stabilisation)", None, ("num_frames",)),
        Preset("truck-left", partial(truck, "left"), "slide 1 m left", None, ("distance", *_TIMING)),
        Preset("truck-right", partial(truck, "right"), "slide 1 m right", None, ("distance", *_TIMING)),
        Preset(
            "orbit-left",
            partial(orbit, "left"),
            "full circle to the left around a point 4 m ahead",
            None,
            ("angle", "radius", *_TIMING),
        ),
        Preset(
            "orbit-right",
            partial(orbit, "right"),
            "full circle to the right around a point 4 m ahead",
            None,
            ("angle", "radius", *_TIMING),
        ),
    )
}
PRESETS_BY_NUMBER: dict[int, Preset] = {p.number: p for p in PRESETS.values() if p.number is not None}
OFFICIAL_PRESET_NAMES = tuple(PRESETS_BY_NUMBER[n].name for n in sorted(PRESETS_BY_NUMBER))


def get_preset(key: str | int) -> Preset:
    """A preset by upstream number (1-10, as int or text) or by name ('pan-right')."""
    text = str(key).strip().lower()
    if text.isdigit() and int(text) in PRESETS_BY_NUMBER:
        return PRESETS_BY_NUMBER[int(text)]
    if text in PRESETS:
        return PRESETS[text]
    raise TrajectoryError(f"unknown trajectory preset {key!r}; choose a number 1-10 or one of: {', '.join(PRESETS)}")


def _parse_value(text: str) -> object:
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    try:
        return int(lowered) if lowered.lstrip("+-").isdigit() else float(lowered)
    except ValueError:
        return text.strip()


def parse_preset_spec(spec: str, **defaults: object) -> Trajectory:
    """A trajectory from 'NAME' or 'NAME:key=value,key=value', e.g. 'pan-right:angle=45,reach=1'.

    ``frames`` is accepted as a short form of ``num_frames``; ``speed`` takes 'linear', 'ease' or
    'exponential(A)'. ``defaults`` (such as ``num_frames``) apply unless the text sets them.
    """
    name, _, arguments = spec.partition(":")
    preset = get_preset(name)
    parameters = {key: value for key, value in defaults.items() if key in preset.parameters}
    for item in filter(None, (part.strip() for part in arguments.split(","))):
        key, equals, value = item.partition("=")
        if not equals:
            raise TrajectoryError(f"{spec!r}: expected key=value, got {item!r}")
        key = "num_frames" if key.strip() == "frames" else key.strip()
        parameters[key] = _parse_value(value)
    return preset(**parameters)
