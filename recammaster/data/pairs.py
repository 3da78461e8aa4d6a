"""Training pairs from MultiCamVideo: (source clip, target clip, target camera relative to the source).

Upstream's training set (spec ``upstream-recammaster.md`` §3.5, §3.3) draws a target clip at random,
picks the condition (source) camera uniformly among the other cameras of the same scene, and conditions
on the target camera's poses at video frames 0, 4, ..., 80 relative to the *source* camera's frame 0:
P_k = inv(C_src[0]) @ C_tgt[4k], flattened to (21, 12).

Two things differ on purpose. The target clip is chosen by ``index`` (item i is camera i % 10 of scene
i // 10), so a sampler, not the dataset, decides the order; upstream ignores the index and draws at
random. The source camera is drawn from a generator seeded with (seed, index, epoch), so an item is
reproducible and changes from epoch to epoch (call :meth:`MultiCamPairs.set_epoch`). And a clip that
cannot be read raises an error naming the file, where upstream silently moves on to the next one.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from recammaster.cameras.conventions import camera_condition, latent_frame_indices, ue_to_opencv
from recammaster.cameras.multicam_json import read_camera_extrinsics
from recammaster.data.multicam import (
    CAMERA_NAMES,
    METADATA_FILE,
    NUM_FRAMES,
    DatasetError,
    Scene,
    find_scenes,
    locate_root,
)
from recammaster.errors import CameraFileError
from recammaster.video import preprocess_frames, read_video

DEFAULT_HEIGHT, DEFAULT_WIDTH = 480, 832  # upstream's training size


def read_captions(path: str | Path) -> dict[str, str]:
    """``metadata.csv`` (columns ``file_name``, ``text``) -> video path (POSIX, as written) -> caption."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"file_name", "text"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: expected the columns file_name,text, got {reader.fieldnames}")
        return {row["file_name"].strip().replace("\\", "/").removeprefix("./"): row["text"] or "" for row in reader}


def lookup_caption(captions: Mapping[str, str], root: Path | None, video: Path) -> str | None:
    """``video``'s caption, or None if it has none. Rows name files relative to ``<root>/train/``, as upstream's
    ``metadata.csv`` does, or to ``<root>``; without a dataset root (a lone scene folder) nothing matches."""
    if root is None:
        return None
    for base in (root / "train", root):
        try:
            key = video.relative_to(base).as_posix()
        except ValueError:
            continue
        if key in captions:
            return captions[key]
    return None


@dataclass(frozen=True)
class PairDescription:
    """Which clips make a pair, and the target camera condition (latent frames, 12) relative to the source."""

    scene: Scene
    source_camera: str
    target_camera: str
    camera: np.ndarray

    @property
    def source_video(self) -> Path:
        return self.scene.video_path(self.source_camera)

    @property
    def target_video(self) -> Path:
        return self.scene.video_path(self.target_camera)


class MultiCamPairs(Dataset):
    """Synchronised (source, target) clip pairs of MultiCamVideo scenes with the target's camera condition.

    Args:
        root: the dataset root (holding ``train/``), its parent from extraction, or one scene folder.
        height, width: frame size after upstream's resize-and-centre-crop (default 480x832).
        num_frames: frames per clip from frame 0, 4k+1 (default 81, all of them); the camera has
            (num_frames - 1) / 4 + 1 rows.
        seed: seeds the choice of source camera together with the item index and the epoch.
        splits: which splits to draw scenes from (default the training split).
        captions: a ``metadata.csv``; default ``<root>/metadata.csv`` if it exists. Its ``file_name``
            is relative to ``<root>/train/`` as upstream's (or to ``<root>``); missing captions are "".

    Each item is a dict: ``source_video`` and ``target_video`` (3, num_frames, height, width) float32 in
    [-1, 1], ``camera`` (latent frames, 12) float32, ``caption`` (the target clip's), and ``scene``,
    ``source_camera``, ``target_camera`` (e.g. ``train/f18_aperture10/scene1``, ``cam03``, ``cam07``).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        height: int = DEFAULT_HEIGHT,
        width: int = DEFAULT_WIDTH,
        num_frames: int = NUM_FRAMES,
        seed: int = 0,
        splits: Sequence[str] = ("train",),
        captions: str | Path | None = None,
    ) -> None:
        latent_frame_indices(num_frames)  # raises for counts that are not 4k+1
        if height < 1 or width < 1:
            raise ValueError(f"height and width must be positive, got {height}x{width}")
        self.height, self.width, self.num_frames, self.seed = height, width, num_frames, seed
        self.epoch = 0
        self.scenes: list[Scene] = find_scenes(root, splits)
        if not self.scenes:
            raise DatasetError(f"{root}: holds no scenes in {', '.join(splits)}")
        self.root = self._dataset_root(Path(root))
        if captions is None and self.root is not None and (self.root / METADATA_FILE).is_file():
            captions = self.root / METADATA_FILE
        self.captions = read_captions(captions) if captions is not None else {}

    @staticmethod
    def _dataset_root(path: Path) -> Path | None:
        try:
            return locate_root(path)
        except DatasetError:
            return None  # a single scene folder

    def __len__(self) -> int:
        return len(self.scenes) * len(CAMERA_NAMES)

    def set_epoch(self, epoch: int) -> None:
        """Draw new source cameras: items depend on (seed, index, epoch). With DataLoader workers that
        persist, call this before the workers start each epoch (or use persistent_workers=False)."""
        self.epoch = epoch

    def source_camera_index(self, index: int, epoch: int | None = None) -> int:
        """The source camera of item ``index`` (0-based), uniform among the scene's other cameras."""
        target = index % len(CAMERA_NAMES)
        generator = np.random.default_rng([self.seed, index, self.epoch if epoch is None else epoch])
        choice = int(generator.integers(len(CAMERA_NAMES) - 1))
        return choice + (choice >= target)  # skip the target camera itself

    def caption(self, scene: Scene, camera: str) -> str:
        caption = lookup_caption(self.captions, self.root, scene.video_path(camera))
        return "" if caption is None else caption

    def _clip(self, path: Path) -> torch.Tensor:
        return preprocess_frames(read_video(path, self.num_frames), self.height, self.width)

    def describe(self, index: int, epoch: int | None = None) -> PairDescription:
        """Item ``index`` without its videos: scene, cameras and condition (``epoch`` default: the current)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        scene = self.scenes[index // len(CAMERA_NAMES)]
        target = CAMERA_NAMES[index % len(CAMERA_NAMES)]
        source = CAMERA_NAMES[self.source_camera_index(index, epoch)]

        cameras = read_camera_extrinsics(scene.extrinsics_path)
        for name in (source, target):
            if name not in cameras:
                raise CameraFileError(scene.extrinsics_path, "camera missing", camera=name)
        frames = len(cameras[target])
        if frames < self.num_frames:
            raise CameraFileError(scene.extrinsics_path, f"has {frames} frames, {self.num_frames} needed")
        source_poses = ue_to_opencv(cameras[source][: self.num_frames])
        target_poses = ue_to_opencv(cameras[target][: self.num_frames])
        return PairDescription(scene, source, target, camera_condition(target_poses, reference=source_poses[0]))

    def __getitem__(self, index: int) -> dict:
        pair = self.describe(index)
        return {
            "source_video": self._clip(pair.source_video),
            "target_video": self._clip(pair.target_video),
            "camera": torch.from_numpy(pair.camera),
            "caption": self.caption(pair.scene, pair.target_camera),
            "scene": pair.scene.id,
            "source_camera": pair.source_camera,
            "target_camera": pair.target_camera,
        }
