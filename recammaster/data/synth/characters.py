"""Articulated characters built from capsules and a sphere, animated by analytic joint angles.

MultiCamVideo drives 66 rigged human models with 93 Mixamo animations (seed README, "Character" and
"Animation"). Here a body is nine capsules (torso, upper and lower arms and legs) and a sphere (head),
and each animation is a closed-form function of time that gives every limb segment its direction.

A segment's direction is two angles in the body frame (x forward, y left, z up): ``raise`` lifts it
sideways from hanging straight down (0) through horizontal (pi/2) to straight up (pi), and ``swing``
then turns it forward about the body's left-right axis. Each frame the whole body is lowered or lifted
so that its lowest point touches the ground (z = 0), plus a jump height; so no animation sinks into
the floor or floats above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray

FPS = 15.0  # MultiCamVideo clips: 81 frames at 15 fps

# Segment order of :func:`pose_character`; the head is a separate sphere.
PARTS = ("torso", "upper_arm_l", "lower_arm_l", "upper_arm_r", "lower_arm_r", "thigh_l", "shin_l", "thigh_r", "shin_r")
PART_CLOTHING = ("shirt", "shirt", "skin", "shirt", "skin", "trousers", "trousers", "trousers", "trousers")
_LIMBS = PARTS[1:]

HEIGHT_RANGE_M = (1.5, 1.9)
BUILD_RANGE = (0.8, 1.25)  # limb and torso thickness factor
WALK_RADIUS_RANGE_M = (1.0, 1.8)  # walkers follow a circle around their place, so they stay in view


@dataclass(frozen=True)
class CharacterSpec:
    """One character: body, clothes, place (world metres) and animation."""

    figure: str  # "man" or "woman": only the caption and the shoulder width depend on it
    height: float  # metres, standing
    build: float  # thickness factor, 1 is average
    skin: str  # colour names, keys of scene.PALETTE
    shirt: str
    trousers: str
    action: str  # a key of ANIMATIONS
    position: tuple[float, float]  # ground point the character stands on (walkers: their circle's centre)
    heading: float  # radians, the direction it faces at time 0 (0 = world +x)
    phase: float  # radians, shifts the animation's cycle so characters do not move in lockstep
    tempo: float  # cycles per second of the animation's main rhythm
    walk_radius: float = 0.0  # walkers only

    @property
    def reach(self) -> float:
        """Horizontal radius around ``position`` that the body never leaves (for placing characters)."""
        return self.walk_radius + 0.35 * self.height


# ---------------------------------------------------------------------------
# Animations: time (F,) seconds -> angles of each segment, root yaw and offsets
# ---------------------------------------------------------------------------


@dataclass
class Pose:
    """Angles per segment (F,) arrays, plus the root's yaw (radians), torso lean and jump height."""

    angles: dict[str, tuple[Array, Array]]  # part -> (raise, swing)
    yaw: Array
    lean: Array  # forward tilt of the torso, radians
    sway: Array  # sideways tilt of the torso, radians
    lift: Array  # metres above the grounded position
    offset: Array  # (F, 2) world displacement of the root from ``position``


def _rest(times: Array) -> Pose:
    zero = np.zeros_like(times)
    angles = {part: (np.full_like(times, 0.08), zero.copy()) for part in _LIMBS}
    angles["thigh_l"] = angles["thigh_r"] = angles["shin_l"] = angles["shin_r"] = (np.full_like(times, 0.02), zero)
    return Pose(angles, zero.copy(), zero.copy(), zero.copy(), zero.copy(), np.zeros((len(times), 2)))


def _legs_step(pose: Pose, cycle: Array, amplitude: float) -> None:
    for side, shift in (("l", 0.0), ("r", math.pi)):
        swing = amplitude * np.sin(cycle + shift)
        knee = 1.4 * amplitude * np.clip(np.sin(cycle + shift + 1.2), 0.0, None)
        pose.angles[f"thigh_{side}"] = (np.full_like(cycle, 0.03), swing)
        pose.angles[f"shin_{side}"] = (np.full_like(cycle, 0.03), swing - knee)


def walk(spec: CharacterSpec, times: Array) -> Pose:
    """Walks along a circle around its place: legs and arms swing in opposition, the body bobs."""
    pose = _rest(times)
    speed = spec.tempo * 0.6 * spec.height  # a stride of 0.6 x height per cycle: about 0.9 m/s
    angle = spec.heading + speed * times / spec.walk_radius  # counter-clockwise
    pose.offset = spec.walk_radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    pose.yaw = angle + math.pi / 2  # facing along the circle
    cycle = 2 * math.pi * spec.tempo * times + spec.phase
    _legs_step(pose, cycle, 0.45)
    for side, shift in (("l", math.pi), ("r", 0.0)):
        swing = 0.4 * np.sin(cycle + shift)
        pose.angles[f"upper_arm_{side}"] = (np.full_like(times, 0.1), swing)
        pose.angles[f"lower_arm_{side}"] = (np.full_like(times, 0.1), swing + 0.35)
    pose.lean = np.full_like(times, 0.06)
    return pose


def wave(spec: CharacterSpec, times: Array) -> Pose:
    """Raises the right arm and waves the forearm side to side."""
    pose = _rest(times)
    cycle = 2 * math.pi * spec.tempo * times + spec.phase
    pose.yaw = np.full_like(times, spec.heading)
    pose.angles["upper_arm_r"] = (np.full_like(times, 1.9), np.full_like(times, 0.25))
    pose.angles["lower_arm_r"] = (math.pi - 0.35 + 0.45 * np.sin(cycle), np.full_like(times, 0.1))
    pose.sway = 0.04 * np.sin(cycle)
    return pose


def dance(spec: CharacterSpec, times: Array) -> Pose:
    """Sways the hips and turns, arms pumping alternately up and down, knees bending to the beat."""
    pose = _rest(times)
    cycle = 2 * math.pi * spec.tempo * times + spec.phase
    pose.yaw = spec.heading + 0.6 * np.sin(0.5 * cycle)
    pose.sway = 0.15 * np.sin(cycle)
    for side, shift in (("l", 0.0), ("r", math.pi)):
        lift = 1.3 + 0.9 * np.sin(cycle + shift)
        pose.angles[f"upper_arm_{side}"] = (lift, 0.3 + 0.3 * np.sin(cycle))
        pose.angles[f"lower_arm_{side}"] = (lift + 0.6, 0.9 + 0.3 * np.sin(cycle + shift))
        bend = 0.25 + 0.25 * np.sin(2 * cycle + shift)
        pose.angles[f"thigh_{side}"] = (np.full_like(times, 0.12), bend)
        pose.angles[f"shin_{side}"] = (np.full_like(times, 0.05), -bend)
    return pose


def jump(spec: CharacterSpec, times: Array) -> Pose:
    """Jumps up and down: a crouch, a flight of up to 0.4 m with arms flung up, a landing."""
    pose = _rest(times)
    pose.yaw = np.full_like(times, spec.heading)
    phase = (spec.tempo * times + spec.phase / (2 * math.pi)) % 1.0
    flight = np.clip((phase - 0.4) / 0.6, 0.0, 1.0)  # 0 on the ground, 0..1 in the air
    pose.lift = 0.4 * np.sin(math.pi * flight)
    crouch = 0.7 * np.sin(math.pi * np.clip(phase / 0.4, 0.0, 1.0))  # knees bend before take-off
    for side in ("l", "r"):
        pose.angles[f"thigh_{side}"] = (np.full_like(times, 0.08), crouch)
        pose.angles[f"shin_{side}"] = (np.full_like(times, 0.04), -crouch)
        arms = 0.2 + 2.4 * np.sin(math.pi * flight)
        pose.angles[f"upper_arm_{side}"] = (arms, 0.2 - 0.4 * crouch)
        pose.angles[f"lower_arm_{side}"] = (arms + 0.2, 0.2 - 0.4 * crouch)
    pose.lean = 0.25 * crouch
    return pose


def cheer(spec: CharacterSpec, times: Array) -> Pose:
    """Both arms up, pumping, with a small bounce."""
    pose = _rest(times)
    cycle = 2 * math.pi * spec.tempo * times + spec.phase
    pose.yaw = np.full_like(times, spec.heading)
    for side, shift in (("l", 0.0), ("r", 0.5)):
        lift = 2.55 + 0.25 * np.sin(cycle + shift)
        pose.angles[f"upper_arm_{side}"] = (lift, np.full_like(times, 0.15))
        pose.angles[f"lower_arm_{side}"] = (lift + 0.25 + 0.2 * np.sin(cycle + shift), np.full_like(times, 0.1))
    pose.lift = 0.06 * np.abs(np.sin(cycle))
    pose.lean = -0.05 + 0.03 * np.sin(cycle)
    return pose


def turn(spec: CharacterSpec, times: Array) -> Pose:
    """Turns around in place, stepping as it rotates."""
    pose = _rest(times)
    direction = 1.0 if spec.phase < math.pi else -1.0
    pose.yaw = spec.heading + direction * 2 * math.pi * 0.2 * spec.tempo * times
    cycle = 2 * math.pi * spec.tempo * times + spec.phase
    _legs_step(pose, cycle, 0.2)
    for side in ("l", "r"):
        pose.angles[f"upper_arm_{side}"] = (np.full_like(times, 0.25), 0.15 * np.sin(cycle))
        pose.angles[f"lower_arm_{side}"] = (np.full_like(times, 0.25), 0.3 + 0.15 * np.sin(cycle))
    return pose


ANIMATIONS: dict[str, Callable[[CharacterSpec, Array], Pose]] = {
    "walk": walk,
    "wave": wave,
    "dance": dance,
    "jump": jump,
    "cheer": cheer,
    "turn": turn,
}
TEMPO_RANGE: dict[str, tuple[float, float]] = {  # cycles per second
    "walk": (0.8, 1.0),
    "wave": (1.2, 2.0),
    "dance": (0.8, 1.3),
    "jump": (0.5, 0.8),
    "cheer": (1.0, 1.6),
    "turn": (0.8, 1.2),
}


# ---------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------


def segment_direction(raise_angle: Array, swing: Array, side: float) -> Array:
    """Unit body-frame directions (F, 3) of segments raised sideways towards ``side`` (+1 left), then swung."""
    down = np.cos(raise_angle)
    return np.stack([down * np.sin(swing), side * np.sin(raise_angle), -down * np.cos(swing)], axis=-1)


@dataclass(frozen=True)
class BodyPose:
    """World geometry of a character over frames: capsules and a head sphere (metres)."""

    starts: Array  # (F, 9, 3) capsule segment ends, in PARTS order
    ends: Array  # (F, 9, 3)
    radii: Array  # (9,)
    head: Array  # (F, 3) head centre
    head_radius: float


def body_radii(spec: CharacterSpec) -> tuple[Array, float]:
    """Capsule radii in PARTS order and the head radius, in metres."""
    h, b = spec.height, spec.build
    torso = (0.085 if spec.figure == "man" else 0.075) * h * b
    arm, leg = 0.024 * h * b, 0.034 * h * b
    return np.array([torso, arm, arm * 0.9, arm, arm * 0.9, leg, leg * 0.85, leg, leg * 0.85]), 0.066 * h


def pose_character(spec: CharacterSpec, times: Array) -> BodyPose:
    """Where each body part is at ``times`` (seconds): the animation's angles through the skeleton."""
    times = np.asarray(times, dtype=np.float64)
    pose = ANIMATIONS[spec.action](spec, times)
    radii, head_radius = body_radii(spec)
    h = spec.height
    shoulder = (0.13 if spec.figure == "man" else 0.115) * h * spec.build**0.5
    lengths = {"upper_arm": 0.17 * h, "lower_arm": 0.17 * h, "thigh": 0.245 * h, "shin": 0.235 * h}

    count = len(times)
    pelvis = np.zeros((count, 3))
    pelvis[:, 2] = 0.5 * h
    torso_dir = np.stack([np.sin(pose.lean), -np.sin(pose.sway), np.cos(pose.lean) * np.cos(pose.sway)], axis=-1)
    neck = pelvis + 0.3 * h * torso_dir
    starts, ends = [pelvis], [neck]
    for limb, root_of in (("arm", neck), ("leg", pelvis)):
        for side_name, side in (("l", 1.0), ("r", -1.0)):
            width = np.array(
                [0.0, side * (shoulder if limb == "arm" else 0.055 * h), -0.02 * h if limb == "arm" else 0]
            )
            joint = root_of + width
            names = ("upper_arm", "lower_arm") if limb == "arm" else ("thigh", "shin")
            for name in names:
                raise_angle, swing = pose.angles[f"{name}_{side_name}"]
                tip = joint + lengths[name] * segment_direction(raise_angle, swing, side)
                starts.append(joint)
                ends.append(tip)
                joint = tip
    starts, ends = np.stack(starts, axis=1), np.stack(ends, axis=1)  # (F, 9, 3) body frame
    head = neck + (0.03 * h + head_radius) * torso_dir

    # Body frame -> world: yaw about z, then the root's place; then ground the lowest point.
    cos, sin = np.cos(pose.yaw), np.sin(pose.yaw)
    rotation = np.zeros((count, 3, 3))
    rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = cos, -sin, sin, cos
    rotation[:, 2, 2] = 1.0
    root = np.zeros((count, 3))
    root[:, :2] = np.asarray(spec.position) + pose.offset
    starts = np.einsum("fij,fkj->fki", rotation, starts) + root[:, None]
    ends = np.einsum("fij,fkj->fki", rotation, ends) + root[:, None]
    head = np.einsum("fij,fj->fi", rotation, head) + root
    lowest = np.minimum(starts[..., 2] - radii, ends[..., 2] - radii).min(axis=1)
    lowest = np.minimum(lowest, head[:, 2] - head_radius)
    shift = pose.lift - lowest
    starts[..., 2] += shift[:, None]
    ends[..., 2] += shift[:, None]
    head[:, 2] += shift
    return BodyPose(starts, ends, radii, head, head_radius)


def frame_times(num_frames: int, fps: float = FPS) -> Array:
    return np.arange(num_frames) / fps
