"""Small rigid-motion helpers shared by every camera module.

Poses are 4x4 camera-to-world matrices in the OpenCV camera convention: the columns of the rotation
are the camera's x (right), y (down) and z (forward) axes in world coordinates, the last column is the
camera centre in metres. Angles are in radians unless a name says ``_deg``.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def rotation_x(angle: float) -> Array:
    """Rotation about the camera's x (right) axis; positive angles look up (y points down)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(angle: float) -> Array:
    """Rotation about the camera's y (down) axis; positive angles turn the view to the right."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z(angle: float) -> Array:
    """Rotation about the viewing axis; positive angles turn the camera clockwise (right side dips)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_pitch_roll(yaw: float, pitch: float, roll: float) -> Array:
    """Camera rotation from yaw (turn right), pitch (look up) and roll (clockwise), applied in that order."""
    return rotation_y(yaw) @ rotation_x(pitch) @ rotation_z(roll)


def make_pose(rotation: Array, position: Array) -> Array:
    """Stack (..., 3, 3) rotations and (..., 3) positions into (..., 4, 4) camera-to-world poses."""
    rotation = np.asarray(rotation, dtype=np.float64)
    position = np.asarray(position, dtype=np.float64)
    batch = np.broadcast_shapes(rotation.shape[:-2], position.shape[:-1])
    pose = np.zeros((*batch, 4, 4))
    pose[..., :3, :3] = rotation
    pose[..., :3, 3] = position
    pose[..., 3, 3] = 1.0
    return pose


def look_at(position: Array, target: Array, up: Array, roll: float = 0.0) -> Array:
    """Rotation of a camera at ``position`` looking at ``target``, with image-up as close to ``up`` as possible.

    Raises ``ValueError`` when the target coincides with the position or the view is parallel to ``up``.
    """
    forward = np.asarray(target, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ValueError("look-at target coincides with the camera position")
    forward /= norm
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("viewing direction is parallel to the up vector")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=-1) @ rotation_z(roll)


def invert_pose(pose: Array) -> Array:
    """Inverse of rigid (..., 4, 4) poses, exact in structure (transpose, not a general inverse)."""
    rotation_t = np.swapaxes(pose[..., :3, :3], -1, -2)
    return make_pose(rotation_t, -(rotation_t @ pose[..., :3, 3:4])[..., 0])


def rotation_angle(rotation: Array) -> Array:
    """Geodesic angle of (..., 3, 3) rotations, in radians."""
    trace = np.trace(rotation, axis1=-2, axis2=-1)
    return np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))


def rotation_problems(rotations: Array, tolerance: float = 1e-3) -> list[str | None]:
    """For each of (..., 3, 3) matrices, why it is not a proper rotation, or None if it is one.

    Proper means orthonormal with determinant +1. The tolerance is loose on purpose: MultiCamVideo
    files store six significant digits.
    """
    rotations = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    finite = np.all(np.isfinite(rotations), axis=(1, 2))
    safe = np.where(finite[:, None, None], rotations, np.eye(3))
    error = np.abs(safe @ np.swapaxes(safe, -1, -2) - np.eye(3)).max(axis=(1, 2))
    determinant = np.linalg.det(safe)
    problems: list[str | None] = [None] * len(rotations)
    for index in np.flatnonzero(~finite | (error > tolerance) | (determinant < 0)):
        if not finite[index]:
            problems[index] = "matrix holds non-finite values"
        elif error[index] > tolerance:
            problems[index] = f"rotation part is not orthonormal (|R R^T - I| = {error[index]:.3g})"
        else:
            problems[index] = "rotation part is a reflection (determinant -1), not a rotation"
    return problems


def rotation_problem(rotation: Array, tolerance: float = 1e-3) -> str | None:
    """Why one 3x3 matrix is not a proper rotation, or None; see :func:`rotation_problems`."""
    return rotation_problems(rotation, tolerance)[0]


# ---------------------------------------------------------------------------
# Quaternions (w, x, y, z), for smooth rotation interpolation
# ---------------------------------------------------------------------------


def matrix_to_quaternion(rotation: Array) -> Array:
    """Unit quaternion (w, x, y, z) of a proper 3x3 rotation (Shepperd's method, stable everywhere)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    candidates = np.array([trace, m[0, 0], m[1, 1], m[2, 2]])
    i = int(np.argmax(candidates))
    if i == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif i == 1:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif i == 2:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    return q / np.linalg.norm(q)


def quaternion_to_matrix(q: Array) -> Array:
    """3x3 rotation of a (not necessarily unit) quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def slerp(q0: Array, q1: Array, fraction: float) -> Array:
    """Spherical linear interpolation between unit quaternions along the shorter arc."""
    q0, q1 = np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly parallel: linear interpolation is exact to float precision
        q = q0 + fraction * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - fraction) * theta) * q0 + np.sin(fraction * theta) * q1) / np.sin(theta)
