"""Custom trajectories written by hand: keyframes, presets and their compositions (YAML or JSON).

A trajectory document is a mapping of one of four kinds; ``sequence`` and ``together`` nest:

    num_frames: 81                 # 4k+1 frames; optional, 81 by default
    keyframes:                     # poses at chosen frames, interpolated in between
      - {frame: 0,  position: [0, 0, 0], look_at: [0, 0, 4]}
      - {frame: 80, position: [-2, 0, 0.5], yaw: 30, pitch: 0, roll: 0}
    interpolation: smooth          # linear | smooth (Catmull-Rom positions, slerp rotations)
    speed: ease                    # linear | ease | {exponential: 2.5}

    preset: arc-left               # any preset with its parameters (see presets.py)
    angle: 60
    radius: 3

    sequence:                      # one after another; 'frames' sets a part's share
      - {preset: pan-right, frames: 41}
      - zoom-in

    together:                      # at the same time: displacements add, rotations compose
      - pan-right
      - {preset: translate-up, aim_distance: null}

Coordinates are metres in the first camera's OpenCV frame: x right, y down, z forward, so "up" is -y.
Angles are degrees: yaw turns right, pitch looks up, roll turns clockwise. A keyframe gives either
``look_at`` or yaw/pitch/roll (all zero when it gives neither). When every keyframe gives ``look_at``,
the aim point itself is interpolated, so the camera keeps its subject centred between keyframes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from recammaster.cameras.geometry import (
    look_at,
    make_pose,
    matrix_to_quaternion,
    quaternion_to_matrix,
    slerp,
    yaw_pitch_roll,
)
from recammaster.cameras.presets import OFFICIAL_NUM_FRAMES, get_preset, parse_preset_spec
from recammaster.cameras.speed import parse_speed
from recammaster.cameras.trajectory import Trajectory, combine, sequence
from recammaster.errors import CameraFileError, ReCamMasterError, TrajectoryError

Array = np.ndarray

DEFAULT_UP = (0.0, -1.0, 0.0)  # image-up of the first camera, in its own OpenCV frame
_KINDS = ("keyframes", "preset", "sequence", "together")
_KEYFRAME_FIELDS = {"frame", "position", "look_at", "yaw", "pitch", "roll"}


class _SpecError(Exception):
    """A problem at a place in the document, e.g. ``keyframes[2].look_at``; becomes CameraFileError."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)


def trajectory_from_document(
    document: object, source: str | Path | None = None, num_frames: int | None = None
) -> Trajectory:
    """Build the trajectory a parsed YAML/JSON document describes; errors name ``source`` and the field."""
    try:
        return _build(document, "", num_frames or OFFICIAL_NUM_FRAMES)
    except _SpecError as error:
        raise CameraFileError(source, str(error)) from None
    except ReCamMasterError as error:
        raise CameraFileError(source, str(error)) from None


def _build(node: object, where: str, num_frames: int) -> Trajectory:
    if isinstance(node, str):
        return parse_preset_spec(node, num_frames=num_frames)
    if not isinstance(node, Mapping):
        raise _SpecError(where, f"expected a mapping or a preset name, got {type(node).__name__}")
    kinds = [kind for kind in _KINDS if kind in node]
    if len(kinds) != 1:
        raise _SpecError(where, f"give exactly one of {', '.join(_KINDS)} (found {kinds or 'none'})")
    num_frames = int(_number(node.get("num_frames", node.get("frames", num_frames)), f"{where}frames"))
    kind = kinds[0]
    prefix = f"{where}." if where else ""
    if kind == "preset":
        parameters = {k: v for k, v in node.items() if k not in ("preset", "frames", "num_frames")}
        try:
            preset = get_preset(node["preset"])
            if "num_frames" in preset.parameters:
                parameters["num_frames"] = num_frames
            return preset(**parameters)
        except (TrajectoryError, TypeError) as error:
            raise _SpecError(f"{prefix}preset", str(error)) from None
    if kind == "together":
        parts = _items(node["together"], f"{prefix}together")
        return combine([_build(item, place, num_frames) for place, item in parts])
    if kind == "sequence":
        parts = _items(node["sequence"], f"{prefix}sequence")
        lengths = _split_frames(parts, num_frames, f"{prefix}sequence")
        return sequence([_build(item, place, n) for (place, item), n in zip(parts, lengths, strict=False)])
    return _keyframe_trajectory(node, f"{prefix}keyframes", num_frames)


def _items(value: object, where: str) -> list[tuple[str, object]]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise _SpecError(where, "expected a non-empty list")
    return [(f"{where}[{i}]", item) for i, item in enumerate(value)]


def _split_frames(parts: list[tuple[str, object]], num_frames: int, where: str) -> list[int]:
    """Frames per part of a sequence; parts share junction frames, so intervals add up to num_frames - 1."""
    fixed = {
        i: int(item["frames"]) for i, (_, item) in enumerate(parts) if isinstance(item, Mapping) and "frames" in item
    }
    free = [i for i in range(len(parts)) if i not in fixed]
    remaining = num_frames - 1 - sum(n - 1 for n in fixed.values())
    if any(n < 2 for n in fixed.values()) or remaining < 0 or (free and remaining < len(free)):
        raise _SpecError(where, f"parts' frames do not fit in {num_frames} frames (each needs >= 2)")
    if not free and remaining:
        raise _SpecError(where, f"parts' frames add up to {num_frames - remaining}, not {num_frames}")
    lengths = dict(fixed)
    for rank, i in enumerate(free):
        lengths[i] = remaining // len(free) + (rank < remaining % len(free)) + 1
    return [lengths[i] for i in range(len(parts))]


# ---------------------------------------------------------------------------
# Keyframes
# ---------------------------------------------------------------------------


def _vector(value: object, where: str) -> Array:
    array = np.asarray(value, dtype=np.float64) if isinstance(value, list | tuple) else None
    if array is None or array.shape != (3,) or not np.all(np.isfinite(array)):
        raise _SpecError(where, f"expected three numbers [x, y, z], got {value!r}")
    return array


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise _SpecError(where, f"expected a number, got {value!r}")
    return float(value)


def _keyframe_trajectory(node: Mapping, where: str, num_frames: int) -> Trajectory:
    keyframes = _items(node["keyframes"], where)
    up = _vector(node.get("up", list(DEFAULT_UP)), "up")
    interpolation = node.get("interpolation", "linear")
    if interpolation not in ("linear", "smooth"):
        raise _SpecError("interpolation", f"expected 'linear' or 'smooth', got {interpolation!r}")
    speed = parse_speed(node.get("speed"))

    times, positions, targets, rotations, rolls = [], [], [], [], []
    for place, key in keyframes:
        if not isinstance(key, Mapping):
            raise _SpecError(place, "expected a mapping with position and look_at or yaw/pitch/roll")
        unknown = sorted(set(key) - _KEYFRAME_FIELDS)
        if unknown:
            raise _SpecError(place, f"unknown field(s) {', '.join(unknown)}")
        position = _vector(key.get("position", [0.0, 0.0, 0.0]), f"{place}.position")
        roll = np.radians(_number(key.get("roll", 0.0), f"{place}.roll"))
        if "look_at" in key:
            if "yaw" in key or "pitch" in key:
                raise _SpecError(place, "give either look_at or yaw/pitch, not both")
            target = _vector(key["look_at"], f"{place}.look_at")
            try:
                rotation = look_at(position, target, up, roll)
            except ValueError as error:
                raise _SpecError(f"{place}.look_at", str(error)) from None
            targets.append(target)
        else:
            yaw = np.radians(_number(key.get("yaw", 0.0), f"{place}.yaw"))
            pitch = np.radians(_number(key.get("pitch", 0.0), f"{place}.pitch"))
            rotation = yaw_pitch_roll(yaw, pitch, roll)
        times.append(key.get("frame"))
        positions.append(position)
        rotations.append(rotation)
        rolls.append(roll)

    times = _keyframe_times(times, num_frames, where)
    # Normalised clip time -> speed curve -> time on the keyframes' frame axis.
    query = speed(np.arange(num_frames) / max(num_frames - 1, 1)) * (num_frames - 1)
    segment, fraction = _locate(times, query)
    curve = _catmull_rom if interpolation == "smooth" else _linear
    frame_positions = curve(np.array(positions), segment, fraction)
    if len(targets) == len(keyframes):
        frame_targets = curve(np.array(targets), segment, fraction)
        frame_rolls = _linear(np.array(rolls)[:, None], segment, fraction)[:, 0]
        try:
            frame_rotations = np.stack(
                [look_at(p, t, up, r) for p, t, r in zip(frame_positions, frame_targets, frame_rolls, strict=False)]
            )
        except ValueError as error:
            raise _SpecError(where, f"between keyframes: {error}") from None
    else:
        quaternions = [matrix_to_quaternion(r) for r in rotations]
        frame_rotations = np.stack(
            [
                quaternion_to_matrix(slerp(quaternions[s], quaternions[min(s + 1, len(quaternions) - 1)], f))
                for s, f in zip(segment, fraction, strict=False)
            ]
        )
    return Trajectory(make_pose(frame_rotations, frame_positions), name="keyframes")


def _keyframe_times(times: list, num_frames: int, where: str) -> Array:
    """Keyframe frame numbers: as written (increasing, within the clip) or spread evenly when omitted."""
    if all(t is None for t in times):
        return np.linspace(0, num_frames - 1, len(times))
    if any(t is None for t in times):
        raise _SpecError(where, "give 'frame' for every keyframe or for none")
    values = np.array([_number(t, f"{where}[{i}].frame") for i, t in enumerate(times)])
    if np.any(np.diff(values) <= 0):
        raise _SpecError(where, f"keyframe frames must increase strictly, got {values.tolist()}")
    if values[0] < 0 or values[-1] > num_frames - 1:
        raise _SpecError(where, f"keyframe frames must lie in 0..{num_frames - 1}, got {values.tolist()}")
    return values


def _locate(times: Array, query: Array) -> tuple[Array, Array]:
    """Segment index and fraction within it for each query time; holds the ends outside the keyframes."""
    if len(times) == 1:
        return np.zeros(len(query), dtype=int), np.zeros(len(query))
    clipped = np.clip(query, times[0], times[-1])
    segment = np.clip(np.searchsorted(times, clipped, side="right") - 1, 0, len(times) - 2)
    fraction = (clipped - times[segment]) / (times[segment + 1] - times[segment])
    return segment, fraction


def _linear(points: Array, segment: Array, fraction: Array) -> Array:
    if len(points) == 1:
        return np.repeat(points, len(segment), axis=0)
    return points[segment] + fraction[:, None] * (points[segment + 1] - points[segment])


def _catmull_rom(points: Array, segment: Array, fraction: Array) -> Array:
    """Uniform Catmull-Rom spline through the points; the end points are repeated as tangent guides."""
    if len(points) < 3:
        return _linear(points, segment, fraction)
    last = len(points) - 1
    p0 = points[np.clip(segment - 1, 0, last)]
    p1, p2 = points[segment], points[np.clip(segment + 1, 0, last)]
    p3 = points[np.clip(segment + 2, 0, last)]
    t = fraction[:, None]
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
