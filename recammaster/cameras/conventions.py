"""Camera conventions: Unreal Engine <-> OpenCV, relative poses, and the 12-number camera condition.

MultiCamVideo stores Unreal Engine (UE) transforms: row-vector 4x4 matrices whose rows are the camera's
forward (X), right (Y) and up (Z) axes in a left-handed, z-up world, and whose last row is the camera
position in centimetres (spec ``upstream-recammaster.md`` §3.1).

Upstream converts a UE matrix M to an OpenCV-style camera-to-world matrix by transposing it, reordering
the columns to (right, up, forward, position), negating the up column and dividing the position by 100
(§3.2). It keeps the left-handed world, so its rotations have determinant -1 (upstream issue #74). We
additionally mirror the world's y axis, which makes the world right-handed (x forward, y left, z up of
the UE scene) and every rotation proper. A change of world basis cancels in relative poses, so the
camera condition the model sees is bit-for-bit the quantity upstream computes (tests compare both).

The model is conditioned on relative poses P_k = inv(C_ref) @ C_k sampled at video frames 0, 4, 8, ...
(one per latent frame of the 4x temporally compressed VAE), flattened row-major to 12 numbers (§3.3).
The reference C_ref is the target trajectory's own frame 0 at inference and the source camera's frame 0
in training: callers say which by passing it.
"""

from __future__ import annotations

import numpy as np

from recammaster.cameras.geometry import invert_pose
from recammaster.errors import TrajectoryError

Array = np.ndarray

CENTIMETRES_PER_METRE = 100.0
TEMPORAL_COMPRESSION = 4  # the Wan VAE turns 4k+1 video frames into k+1 latent frames
CONDITION_SIZE = 12  # top 3x4 of a relative pose, row-major

# Columns of the transposed UE matrix are (forward, right, up, position); OpenCV wants
# (right, down, forward, position). These two orders are each other's inverse.
_UE_TO_CV_COLUMNS = [1, 2, 0, 3]
_CV_TO_UE_COLUMNS = [2, 0, 1, 3]


def ue_to_opencv(ue_matrices: Array) -> Array:
    """UE row-vector matrices in centimetres (..., 4, 4) -> OpenCV camera-to-world poses in metres.

    The result lives in a right-handed world (UE's y axis mirrored), so its rotations are proper.
    """
    pose = np.swapaxes(np.asarray(ue_matrices, dtype=np.float64), -1, -2)[..., _UE_TO_CV_COLUMNS]
    pose[..., :3, 1] *= -1.0  # UE up -> OpenCV down
    pose[..., :3, 3] /= CENTIMETRES_PER_METRE
    pose[..., 1, :] *= -1.0  # mirror the world's y axis: left-handed UE world -> right-handed
    return pose


def opencv_to_ue(poses: Array) -> Array:
    """Exact inverse of :func:`ue_to_opencv`: OpenCV camera-to-world (metres) -> UE matrices (cm)."""
    ue = np.array(poses, dtype=np.float64)
    ue[..., 1, :] *= -1.0
    ue[..., :3, 3] *= CENTIMETRES_PER_METRE
    ue[..., :3, 1] *= -1.0
    return np.swapaxes(ue[..., _CV_TO_UE_COLUMNS], -1, -2)


def relative_poses(poses: Array, reference: Array) -> Array:
    """Poses (..., 4, 4) expressed in the camera frame of ``reference`` (4, 4): inv(reference) @ pose."""
    return invert_pose(np.asarray(reference, dtype=np.float64)) @ np.asarray(poses, dtype=np.float64)


def latent_frame_indices(num_frames: int) -> Array:
    """Video frames whose cameras condition the latent frames: 0, 4, ..., num_frames - 1.

    Latent frame 0 holds video frame 0; latent frame k >= 1 compresses frames 4k-3..4k and takes the
    camera of its last frame, 4k.
    """
    if num_frames < 1 or (num_frames - 1) % TEMPORAL_COMPRESSION:
        raise TrajectoryError(
            f"a video of {num_frames} frames cannot be encoded: the frame count must be 4k+1 (81, 49, 17, ...)"
        )
    return np.arange(0, num_frames, TEMPORAL_COMPRESSION)


def camera_condition(poses: Array, reference: Array | None = None) -> Array:
    """The model's camera input: (num_frames, 4, 4) poses -> (num_latent_frames, 12) float32.

    ``reference`` defaults to the trajectory's own first pose (upstream inference); training passes the
    source camera's first pose instead.
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise TrajectoryError(f"expected poses of shape (frames, 4, 4), got {poses.shape}")
    frames = latent_frame_indices(len(poses))
    relative = relative_poses(poses[frames], poses[0] if reference is None else reference)
    return relative[:, :3, :4].reshape(len(frames), CONDITION_SIZE).astype(np.float32)
