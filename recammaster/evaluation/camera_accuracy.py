"""Camera accuracy of a generated video: RotErr and TransErr of its COLMAP trajectory against the requested one.

A re-rendering should move its camera as asked. As in CameraCtrl (He et al. 2024, arXiv:2404.02101,
https://arxiv.org/abs/2404.02101) and CamI2V (Zheng et al. 2024, arXiv:2410.15957, evaluation code
https://github.com/ZGCTroy/CamI2V, ``evaluation/glomap_evaluation.py`` and ``evaluation/utils/common.py``),
structure from motion recovers the camera of every frame of the video, and the recovered path is compared
with the reference (the trajectory the video was asked to follow):

- COLMAP through ``pycolmap``: SIFT features, sequential matching, global mapping (GLOMAP, as CamI2V), one
  SIMPLE_PINHOLE camera for all frames with the principal point at the image centre. A known focal length
  (pixels) is fixed, as CamI2V fixes the true intrinsics; otherwise COLMAP estimates it.
- Both trajectories are taken relative to their own frame 0 (OpenCV camera-to-world, ``inv(P_0) @ P_t``),
  so COLMAP's arbitrary world frame drops out.
- RotErr = sum over frames of the geodesic angle ``arccos((tr(R_est^T R_ref) - 1) / 2)`` between the relative
  rotations, in **degrees**. CameraCtrl and CamI2V sum over the frames, and we do too, so that numbers compare
  with theirs for the same frame count; CamI2V's code sums radians, so divide ours by 180/pi to compare with
  its tables. Sums grow with the frames compared: :attr:`CameraAccuracy.num_frames` says how many.
- TransErr = sum over frames of the L2 distance between normalised camera positions, unitless. COLMAP's scale
  is arbitrary, so each trajectory's relative positions are divided by the distance of its farthest camera
  from frame 0 (CamI2V's ``normalize_t`` of each trajectory by itself): both paths then have size 1. A
  reference that never moves its centre (pan, tilt, static) stays at zero while any estimate is scaled to
  size 1, so TransErr says nothing for rotation-only requests; judge those by RotErr.

COLMAP runs several times (default 3, CamI2V runs 5) with seeds 0, 1, ...; reported errors are means over the
runs that registered every frame. A run that builds no model or leaves frames out has no trajectory to
compare: it is counted in :attr:`CameraAccuracy.failed_runs` and kept with its reason, never dropped
silently (CamI2V skips such videos). COLMAP uses one thread by default, which makes a run repeatable for
its seed; more threads are faster but not repeatable.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from recammaster.cameras.conventions import relative_poses
from recammaster.cameras.geometry import invert_pose, make_pose, rotation_angle, rotation_problems
from recammaster.errors import ReCamMasterError

Array = np.ndarray

DEFAULT_RUNS = 3
DEFAULT_SAMPLE_EVERY = 4  # 81 frames -> frames 0, 4, ..., 80: the 21 cameras the model is conditioned on
MIN_FRAMES = 3  # COLMAP's global mapper keeps no model of fewer than three images
STILL_EXTENT = 1e-9  # a trajectory whose cameras all stay this close to frame 0 has no size to normalise by


class CameraAccuracyError(ReCamMasterError, ValueError):
    """Input the camera-accuracy measurement cannot use, with the argument at fault named."""


# ---------------------------------------------------------------------------
# RotErr and TransErr
# ---------------------------------------------------------------------------


def _check_poses(name: str, poses: Array) -> Array:
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
        raise CameraAccuracyError(f"{name} must have shape (frames, 4, 4), got {poses.shape}")
    bottom_ok = np.all(np.abs(poses[:, 3] - [0.0, 0.0, 0.0, 1.0]) <= 1e-6, axis=1)
    for frame, problem in enumerate(rotation_problems(poses[:, :3, :3])):
        if problem:
            raise CameraAccuracyError(f"{name}: frame {frame}: {problem}")
        if not (bottom_ok[frame] and np.all(np.isfinite(poses[frame]))):
            raise CameraAccuracyError(f"{name}: frame {frame}: last row must be 0 0 0 1 and all values finite")
    return poses


def _relative_pair(estimated: Array, reference: Array) -> tuple[Array, Array]:
    """Both trajectories checked and relative to their own frame 0."""
    estimated, reference = _check_poses("estimated", estimated), _check_poses("reference", reference)
    if len(estimated) != len(reference):
        raise CameraAccuracyError(
            f"estimated and reference differ in frame count: {len(estimated)} vs {len(reference)}"
        )
    return relative_poses(estimated, estimated[0]), relative_poses(reference, reference[0])


def rotation_error(estimated: Array, reference: Array) -> float:
    """RotErr in degrees: the angle between the two relative rotations, summed over frames.

    Both are (frames, 4, 4) camera-to-world poses in any world; each is taken relative to its own frame 0.
    """
    estimated, reference = _relative_pair(estimated, reference)
    difference = np.swapaxes(estimated[:, :3, :3], -1, -2) @ reference[:, :3, :3]
    return float(np.degrees(rotation_angle(difference)).sum())


def normalised_positions(relative: Array) -> Array:
    """Camera centres of poses relative to frame 0, divided by the farthest one's distance: (frames, 3)."""
    positions = relative[:, :3, 3]
    extent = np.linalg.norm(positions, axis=1).max()
    return positions / extent if extent > STILL_EXTENT else positions


def translation_error(estimated: Array, reference: Array) -> float:
    """TransErr: distance between the normalised relative camera positions, summed over frames; unitless.

    Scaling either trajectory leaves it unchanged, so COLMAP's arbitrary scale does not matter.
    """
    estimated, reference = _relative_pair(estimated, reference)
    distance = np.linalg.norm(normalised_positions(estimated) - normalised_positions(reference), axis=1)
    return float(distance.sum())


# ---------------------------------------------------------------------------
# One COLMAP run
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EstimatedTrajectory:
    """One COLMAP run on a video: the cameras it found, or how many frames it managed when it failed."""

    poses: Array | None  # (frames, 4, 4) OpenCV camera-to-world relative to frame 0, arbitrary scale; None if failed
    registered: int  # frames in COLMAP's largest model (0 without a model)
    num_frames: int  # frames given
    focal_px: float | None  # the model's focal length, fixed or estimated; None without a model
    seed: int

    @property
    def failed(self) -> bool:
        return self.poses is None

    @property
    def failure(self) -> str | None:
        """Why the run has no trajectory, or None when it has one."""
        if not self.failed:
            return None
        if self.registered == 0:
            return f"seed {self.seed}: COLMAP built no model from the {self.num_frames} frames"
        return f"seed {self.seed}: COLMAP registered {self.registered} of {self.num_frames} frames"


def _check_video(frames: Array) -> Array:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise CameraAccuracyError(f"frames must be a (T, H, W, 3) uint8 video, got {frames.dtype} {frames.shape}")
    return frames


def _check_focal(focal_px: float | None) -> float | None:
    if focal_px is not None and not (math.isfinite(focal_px) and focal_px > 0):
        raise CameraAccuracyError(f"focal_px must be a positive number of pixels or None, got {focal_px!r}")
    return focal_px


def _import_pycolmap() -> ModuleType:
    try:
        import pycolmap
    except ImportError as error:
        raise ReCamMasterError("camera accuracy needs pycolmap: pip install 'recammaster[eval]'") from error
    return pycolmap


@contextmanager
def _quiet(pycolmap: ModuleType) -> Iterator[None]:
    """COLMAP logs every stage, and errors for videos it cannot reconstruct; the result already says so."""
    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = int(pycolmap.logging.Level.FATAL)
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = level


def estimate_trajectory(
    frames: Array,
    *,
    focal_px: float | None = None,
    seed: int = 0,
    num_threads: int = 1,
    workdir: str | Path | None = None,
) -> EstimatedTrajectory:
    """Run COLMAP (SIFT, sequential matching, global mapping) on ``frames`` (T, H, W, 3) uint8.

    ``focal_px`` fixes the focal length; None lets COLMAP estimate it. ``seed`` seeds RANSAC and the mapper.
    Frames, database and model go to ``workdir`` (an empty or new folder, kept for inspection), else to a
    temporary folder. The run fails unless one model registers every frame.
    """
    frames = _check_video(frames)
    if len(frames) < MIN_FRAMES:
        raise CameraAccuracyError(f"COLMAP needs at least {MIN_FRAMES} frames, got {len(frames)}")
    focal_px = _check_focal(focal_px)
    if workdir is not None and Path(workdir).exists() and any(Path(workdir).iterdir()):
        raise CameraAccuracyError(f"workdir {workdir} is not empty; give an empty or new folder")
    pycolmap = _import_pycolmap()
    if workdir is not None:
        return _run_colmap(pycolmap, frames, focal_px, seed, num_threads, Path(workdir))
    with tempfile.TemporaryDirectory(prefix="recammaster-colmap-") as temporary:
        return _run_colmap(pycolmap, frames, focal_px, seed, num_threads, Path(temporary))


def _run_colmap(
    pycolmap: ModuleType, frames: Array, focal_px: float | None, seed: int, num_threads: int, workdir: Path
) -> EstimatedTrajectory:
    images, model_dir, database = workdir / "images", workdir / "sparse", workdir / "database.db"
    images.mkdir(parents=True, exist_ok=True)
    model_dir.mkdir(exist_ok=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(images / f"{index:05d}.png")  # lossless: COLMAP sees the frames as given

    height, width = frames.shape[1:3]
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_PINHOLE"  # generated frames have no lens distortion to model
    if focal_px is not None:
        reader.camera_params = f"{focal_px},{width / 2},{height / 2}"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = num_threads
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = num_threads
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = seed
    mapping = pycolmap.GlobalPipelineOptions()
    mapping.num_threads = num_threads
    mapping.random_seed = seed
    mapping.mapper.bundle_adjustment.refine_focal_length = focal_px is None

    with _quiet(pycolmap):
        pycolmap.extract_features(database, images, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                                  extraction_options=extraction)  # fmt: skip
        pycolmap.match_sequential(database, matching_options=matching, verification_options=verification)
        models = pycolmap.global_mapping(database, images, model_dir, mapping)

    if not models:
        return EstimatedTrajectory(None, 0, len(frames), None, seed)
    model = max(models.values(), key=lambda candidate: candidate.num_reg_images())
    registered = model.num_reg_images()
    focal = float(next(iter(model.cameras.values())).focal_length)
    if registered < len(frames):
        return EstimatedTrajectory(None, registered, len(frames), focal, seed)
    world_to_camera = np.empty((len(frames), 3, 4))
    for image in model.images.values():
        world_to_camera[int(Path(image.name).stem)] = image.cam_from_world().matrix()
    poses = invert_pose(make_pose(world_to_camera[:, :, :3], world_to_camera[:, :, 3]))
    return EstimatedTrajectory(relative_poses(poses, poses[0]), registered, len(frames), focal, seed)


# ---------------------------------------------------------------------------
# Camera accuracy of a video: several runs
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CameraAccuracy:
    """RotErr (degrees) and TransErr (unitless) of one video, each summed over ``num_frames`` frames.

    ``rot_err_deg`` and ``trans_err`` are means over the runs that registered every frame, NaN when none did.
    """

    estimates: tuple[EstimatedTrajectory, ...]  # one per run, failed runs included
    rot_errs_deg: tuple[float, ...]  # per run; NaN for a failed run
    trans_errs: tuple[float, ...]
    num_frames: int  # frames compared per run, after ``sample_every``

    @property
    def runs(self) -> int:
        return len(self.estimates)

    @property
    def failed_runs(self) -> int:
        return sum(estimate.failed for estimate in self.estimates)

    @property
    def failures(self) -> list[str]:
        """Why each failed run failed."""
        return [estimate.failure for estimate in self.estimates if estimate.failure is not None]

    def _mean(self, values: tuple[float, ...]) -> float:
        kept = [value for value, estimate in zip(values, self.estimates, strict=True) if not estimate.failed]
        return float(np.mean(kept)) if kept else math.nan

    @property
    def rot_err_deg(self) -> float:
        return self._mean(self.rot_errs_deg)

    @property
    def trans_err(self) -> float:
        return self._mean(self.trans_errs)


def camera_accuracy(
    frames: Array,
    reference_poses: Array,
    *,
    runs: int = DEFAULT_RUNS,
    focal_px: float | None = None,
    sample_every: int = DEFAULT_SAMPLE_EVERY,
    num_threads: int = 1,
) -> CameraAccuracy:
    """RotErr and TransErr of ``frames`` (T, H, W, 3) uint8 against ``reference_poses`` (T, 4, 4), over ``runs`` runs.

    ``reference_poses`` are OpenCV camera-to-world poses in any world (only poses relative to frame 0 count).
    Frames 0, ``sample_every``, 2 * ``sample_every``, ... and their poses are compared: the default 4 keeps
    the 21 latent-frame cameras of an 81-frame video and makes COLMAP four times cheaper. Run ``k`` uses seed ``k``.
    """
    frames = _check_video(frames)
    reference = _check_poses("reference_poses", reference_poses)
    if len(frames) != len(reference):
        raise CameraAccuracyError(
            f"frames and reference_poses differ in frame count: {len(frames)} vs {len(reference)}"
        )
    if runs < 1:
        raise CameraAccuracyError(f"runs must be at least 1, got {runs}")
    _check_focal(focal_px)
    if sample_every < 1:
        raise CameraAccuracyError(f"sample_every must be at least 1, got {sample_every}")
    frames, reference = frames[::sample_every], reference[::sample_every]
    if len(frames) < MIN_FRAMES:
        raise CameraAccuracyError(
            f"sample_every={sample_every} keeps {len(frames)} frames; COLMAP needs at least {MIN_FRAMES}"
        )
    estimates = tuple(
        estimate_trajectory(frames, focal_px=focal_px, seed=run, num_threads=num_threads) for run in range(runs)
    )
    rot_errs = tuple(math.nan if e.failed else rotation_error(e.poses, reference) for e in estimates)
    trans_errs = tuple(math.nan if e.failed else translation_error(e.poses, reference) for e in estimates)
    return CameraAccuracy(estimates, rot_errs, trans_errs, len(frames))
