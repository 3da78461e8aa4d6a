"""The MultiCamVideo dataset on disk: its layout, finding its scenes, checking them, and counting them.

Layout (seed README, "File Structure"; spec ``upstream-recammaster.md`` §3.5)::

    MultiCamVideo-Dataset/
        train/f18_aperture10/scene1/videos/cam01.mp4 ... cam10.mp4   (81 frames, 1280x1280, 15 fps)
        train/f18_aperture10/scene1/cameras/camera_extrinsics.json   (81 frames x cam01..cam10)
        train/f24_aperture5/..., train/f35_aperture2.4/..., train/f50_aperture2.4/...
        val/10basic_trajectories/videos/cam01.mp4 ...                (a scene folder without sceneN)
        val/10basic_trajectories/cameras/camera_extrinsics.json

Checking never stops at the first problem: :func:`verify_dataset` returns every problem it finds, each
naming the file and what is wrong, so one run over a download lists everything to fix. Nothing here
requires the whole dataset: a partial download is checked scene by scene for what it holds.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from recammaster.cameras.conventions import ue_to_opencv
from recammaster.cameras.geometry import rotation_angle
from recammaster.cameras.lens import Lens
from recammaster.cameras.multicam_json import camera_name, read_camera_extrinsics
from recammaster.errors import CameraFileError, ReCamMasterError
from recammaster.video import VideoError, probe_video

Array = np.ndarray

NUM_CAMERAS = 10
NUM_FRAMES = 81
CAMERA_NAMES = tuple(camera_name(i) for i in range(1, NUM_CAMERAS + 1))
SPLITS = ("train", "val")
VIDEOS_FOLDER = "videos"
CAMERAS_FOLDER = "cameras"
EXTRINSICS_FILE = "camera_extrinsics.json"
VIDEO_SUFFIX = ".mp4"
ARCHIVE_FOLDER = "MultiCamVideo-Dataset"  # the top folder inside the official tar parts
METADATA_FILE = "metadata.csv"  # captions (file_name,text); not shipped, upstream generates them

LENS_FOLDER = re.compile(r"f(\d+(?:\.\d+)?)_aperture(\d+(?:\.\d+)?)")
SCENE_FOLDER = re.compile(r"scene(\d+)")
_DIGITS = re.compile(r"(\d+)")


class DatasetError(ReCamMasterError, ValueError):
    """A dataset folder that cannot be used at all (not found, no scenes), named."""


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers by value: scene2 < scene10, part9 < part10."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(text))


# ---------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """One dynamic scene: ten synchronised videos and one camera file.

    ``split`` is 'train' or 'val' (None for a scene folder given on its own), ``group`` the lens folder
    (``f18_aperture10``) or the validation set's name (``10basic_trajectories``).
    """

    path: Path
    split: str | None = None
    group: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def id(self) -> str:
        """``train/f18_aperture10/scene1``-style name, as unique as the layout makes it."""
        parts = [p for p in (self.split, self.group) if p]
        if self.group != self.path.name:
            parts.append(self.path.name)
        return "/".join(parts) or self.path.name

    @property
    def lens(self) -> Lens | None:
        """The lens a ``fXX_apertureYY`` folder names, or None."""
        match = LENS_FOLDER.fullmatch(self.group or "")
        return None if match is None else Lens(float(match.group(1)), float(match.group(2)))

    @property
    def extrinsics_path(self) -> Path:
        return self.path / CAMERAS_FOLDER / EXTRINSICS_FILE

    def video_path(self, camera: str) -> Path:
        return self.path / VIDEOS_FOLDER / f"{camera}{VIDEO_SUFFIX}"


def is_scene_folder(path: Path) -> bool:
    """A folder holding ``videos/`` or ``cameras/`` is a scene."""
    return (path / VIDEOS_FOLDER).is_dir() or (path / CAMERAS_FOLDER).is_dir()


def locate_root(path: str | Path) -> Path:
    """The folder holding ``train/`` and/or ``val/``: ``path`` itself or its ``MultiCamVideo-Dataset/``."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such folder")
    for candidate in (path, path / ARCHIVE_FOLDER):
        if any((candidate / split).is_dir() for split in SPLITS):
            return candidate
    raise DatasetError(f"{path}: not a MultiCamVideo dataset folder (no train/ or val/ in it or in {ARCHIVE_FOLDER}/)")


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file or folder."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _sorted_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))


def scan_layout(root: str | Path, splits: Sequence[str] = SPLITS) -> tuple[list[Scene], list[Problem]]:
    """All scenes under a dataset root, in natural order, plus problems with the folder structure.

    ``train/`` must hold ``f{focal}_aperture{a}`` folders of ``sceneN`` folders; ``val/`` holds scene
    folders directly (``10basic_trajectories``) or groups of ``sceneN``. Files and stray folders are
    reported, not scanned.
    """
    root = locate_root(root)
    scenes: list[Scene] = []
    problems: list[Problem] = []
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for group in _sorted_dirs(split_dir):
            if split == "val" and is_scene_folder(group):
                scenes.append(Scene(group, split, group.name))
                continue
            if split == "train" and LENS_FOLDER.fullmatch(group.name) is None:
                problems.append(Problem(group, "unexpected folder; train/ holds f{focal}_aperture{a} folders"))
                continue
            found = 0
            for scene in _sorted_dirs(group):
                if SCENE_FOLDER.fullmatch(scene.name) is None:
                    problems.append(Problem(scene, "unexpected folder; expected sceneN folders"))
                    continue
                scenes.append(Scene(scene, split, group.name))
                found += 1
            if not found:
                problems.append(Problem(group, "holds no sceneN folders"))
    if not scenes and not problems:
        problems.append(Problem(root, "holds no scenes"))
    return scenes, problems


def find_scenes(root: str | Path, splits: Sequence[str] = SPLITS) -> list[Scene]:
    """The scenes under ``root`` (a dataset root or a single scene folder), in natural order."""
    path = Path(root)
    if path.is_dir() and is_scene_folder(path):
        return [Scene(path)]
    return scan_layout(path, splits)[0]


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------


@dataclass
class SceneReport:
    """What checking one scene found: its problems, the videos' size and frame counts, the cameras read."""

    scene: Scene
    problems: list[Problem] = field(default_factory=list)
    resolution: tuple[int, int] | None = None  # (width, height) shared by the scene's videos
    frames: dict[str, int] = field(default_factory=dict)  # camera -> frames of its video
    cameras: dict[str, Array] | None = None  # camera -> (frames, 4, 4) UE matrices, when readable

    @property
    def ok(self) -> bool:
        return not self.problems


def _error_problem(error: CameraFileError | VideoError) -> Problem:
    """A problem from an error that names its own file: the path is kept apart from the message."""
    text, prefix = str(error), str(error.path)
    message = text[len(prefix) :].lstrip(":, ") if text.startswith(prefix) else text
    return Problem(error.path, message)


def _check_videos(report: SceneReport, num_frames: int, probe: bool) -> None:
    scene = report.scene
    videos = scene.path / VIDEOS_FOLDER
    if not videos.is_dir():
        report.problems.append(Problem(videos, "missing folder (no videos)"))
        return
    expected = {f"{name}{VIDEO_SUFFIX}" for name in CAMERA_NAMES}
    for extra in sorted(p for p in videos.glob(f"*{VIDEO_SUFFIX}") if p.name not in expected):
        report.problems.append(Problem(extra, f"unexpected video; a scene holds {CAMERA_NAMES[0]}..{CAMERA_NAMES[-1]}"))
    sizes: dict[str, tuple[int, int]] = {}
    for camera in CAMERA_NAMES:
        path = scene.video_path(camera)
        if not path.is_file():
            report.problems.append(Problem(path, "missing video"))
            continue
        if not probe:
            continue
        try:
            info = probe_video(path)
        except VideoError as error:
            report.problems.append(_error_problem(error))
            continue
        report.frames[camera] = info.frames
        sizes[camera] = (info.width, info.height)
        if info.frames != num_frames:
            report.problems.append(Problem(path, f"has {info.frames} frames, expected {num_frames}"))
    if sizes:
        common, _ = Counter(sizes.values()).most_common(1)[0]
        report.resolution = common
        for camera, size in sizes.items():
            if size != common:
                report.problems.append(
                    Problem(
                        scene.video_path(camera),
                        f"is {size[0]}x{size[1]} but the scene's other videos are {common[0]}x{common[1]}",
                    )
                )


def _check_cameras(report: SceneReport, num_frames: int) -> None:
    path = report.scene.extrinsics_path
    if not path.is_file():
        report.problems.append(Problem(path, "missing camera file"))
        return
    try:
        cameras = read_camera_extrinsics(path)
    except CameraFileError as error:
        report.problems.append(_error_problem(error))
        return
    report.cameras = cameras
    missing = [name for name in CAMERA_NAMES if name not in cameras]
    extra = [name for name in cameras if name not in CAMERA_NAMES]
    if missing:
        report.problems.append(Problem(path, f"no camera {', '.join(missing)} (expected {len(CAMERA_NAMES)} cameras)"))
    if extra:
        report.problems.append(Problem(path, f"unexpected camera {', '.join(extra)}"))
    frames = len(next(iter(cameras.values())))
    if frames != num_frames:
        report.problems.append(Problem(path, f"has {frames} frames, expected {num_frames}"))


def verify_scene(scene: Scene, num_frames: int = NUM_FRAMES, *, probe: bool = True) -> SceneReport:
    """Check one scene: ten readable videos of ``num_frames`` frames and one size, and a complete camera file.

    Videos are probed (container metadata and the first frame), not decoded. ``probe=False`` only checks
    that the video files exist.
    """
    report = SceneReport(scene)
    _check_videos(report, num_frames, probe)
    _check_cameras(report, num_frames)
    return report


@dataclass
class DatasetReport:
    """Every problem under a dataset root: the layout's and each scene's."""

    root: Path
    layout_problems: list[Problem]
    scenes: list[SceneReport]

    @property
    def problems(self) -> list[Problem]:
        return [*self.layout_problems, *(p for s in self.scenes for p in s.problems)]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def resolutions(self) -> Counter:
        """How many scenes have each (width, height)."""
        return Counter(s.resolution for s in self.scenes if s.resolution is not None)


def verify_dataset(
    root: str | Path, num_frames: int = NUM_FRAMES, *, probe: bool = True, progress: bool = True
) -> DatasetReport:
    """Check the layout under ``root`` and every scene in it; see :func:`verify_scene`."""
    path = Path(root)
    if path.is_dir() and is_scene_folder(path):
        scenes, layout_problems = [Scene(path)], []
    else:
        path = locate_root(path)
        scenes, layout_problems = scan_layout(path)
    reports = [
        verify_scene(scene, num_frames, probe=probe)
        for scene in tqdm(scenes, desc="verify", unit="scene", disable=not progress or None)
    ]
    return DatasetReport(path, layout_problems, reports)


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


def camera_motion(ue_matrices: Array) -> tuple[float, float]:
    """(path length in metres, rotation in degrees between the first and last pose) of one camera."""
    poses = ue_to_opencv(ue_matrices)
    path_length = float(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum())
    relative = poses[0, :3, :3].T @ poses[-1, :3, :3]
    # The files hold six significant digits, so the product is orthonormal only to ~1e-7, and arccos near
    # 1 turns that into ~0.01 degrees for a camera that does not turn. The nearest rotation removes it.
    u, _, vt = np.linalg.svd(relative)
    return path_length, float(np.degrees(rotation_angle(u @ vt)))


def summarize(values: Iterable[float]) -> dict[str, float | int]:
    """count, mean, min and max of some numbers (zeros when there are none)."""
    array = np.asarray(list(values), dtype=np.float64)
    if not len(array):
        return {"count": 0, "mean": 0.0, "min": 0.0, "max": 0.0}
    return {"count": len(array), "mean": float(array.mean()), "min": float(array.min()), "max": float(array.max())}


@dataclass
class DatasetStats:
    """Counts per split and lens folder, resolutions, and how far and how much each camera moves."""

    root: Path
    groups: dict[str, dict[str, int]]  # "train/f18_aperture10" -> {"scenes", "videos", "frames"}
    resolutions: dict[str, int]  # "1280x1280" -> videos
    cameras: list[dict]  # one row per camera: scene, camera, path_length_m, rotation_deg
    unreadable: list[Problem]  # camera files or videos left out of the numbers, and why

    def camera_summary(self) -> dict[str, dict[str, dict]]:
        """Per camera name (cam01..cam10) and over all cameras ("all"): path length and rotation summaries."""
        by_name: dict[str, list[dict]] = defaultdict(list)
        for row in self.cameras:
            by_name[row["camera"]].append(row)
            by_name["all"].append(row)
        return {
            name: {
                "path_length_m": summarize(r["path_length_m"] for r in rows),
                "rotation_deg": summarize(r["rotation_deg"] for r in rows),
            }
            for name, rows in sorted(by_name.items(), key=lambda item: (item[0] == "all", item[0]))
        }

    def to_dict(self) -> dict:
        totals = {key: sum(g[key] for g in self.groups.values()) for key in ("scenes", "videos", "frames")}
        return {
            "root": str(self.root),
            "groups": self.groups,
            "totals": totals,
            "resolutions": self.resolutions,
            "camera_summary": self.camera_summary(),
            "cameras": self.cameras,
            "unreadable": [str(p) for p in self.unreadable],
        }


def dataset_stats(root: str | Path, *, probe: bool = True, progress: bool = True) -> DatasetStats:
    """Count scenes, videos and frames per split and lens, and measure every camera's motion.

    Frames and resolutions need ``probe`` (one container open per video); without it only files are
    counted. The distance from the camera to the character is not recorded in the files, so only the
    motion itself is measured: path length (metres) and rotation from the first to the last frame.
    """
    path = Path(root)
    scenes = find_scenes(path)
    if not scenes:
        raise DatasetError(f"{path}: holds no scenes")
    groups: dict[str, dict[str, int]] = {}
    resolutions: Counter = Counter()
    cameras: list[dict] = []
    unreadable: list[Problem] = []
    for scene in tqdm(scenes, desc="stats", unit="scene", disable=not progress or None):
        key = "/".join(p for p in (scene.split, scene.group) if p) or scene.name
        counts = groups.setdefault(key, {"scenes": 0, "videos": 0, "frames": 0})
        counts["scenes"] += 1
        for camera in CAMERA_NAMES:
            video = scene.video_path(camera)
            if not video.is_file():
                continue
            counts["videos"] += 1
            if probe:
                try:
                    info = probe_video(video)
                except VideoError as error:
                    unreadable.append(_error_problem(error))
                    continue
                counts["frames"] += info.frames
                resolutions[f"{info.width}x{info.height}"] += 1
        try:
            extrinsics = read_camera_extrinsics(scene.extrinsics_path)
        except CameraFileError as error:
            unreadable.append(_error_problem(error))
            continue
        for camera, matrices in extrinsics.items():
            length, angle = camera_motion(matrices)
            cameras.append({"scene": scene.id, "camera": camera, "path_length_m": length, "rotation_deg": angle})
    return DatasetStats(path, groups, dict(resolutions), cameras, unreadable)
