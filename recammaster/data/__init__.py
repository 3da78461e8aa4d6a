"""The MultiCamVideo dataset: unpack it, check it, count it, look at it, and draw training pairs from it.

Pictures (``contact_sheet``) and unpacking (``extract``) are imported from their modules directly; the
layout and the PyTorch dataset are here.
"""

from recammaster.data.multicam import (
    CAMERA_NAMES,
    NUM_CAMERAS,
    NUM_FRAMES,
    DatasetError,
    DatasetReport,
    DatasetStats,
    Problem,
    Scene,
    SceneReport,
    dataset_stats,
    find_scenes,
    locate_root,
    verify_dataset,
    verify_scene,
)
from recammaster.data.pairs import MultiCamPairs, read_captions

__all__ = [
    "CAMERA_NAMES",
    "NUM_CAMERAS",
    "NUM_FRAMES",
    "DatasetError",
    "DatasetReport",
    "DatasetStats",
    "MultiCamPairs",
    "Problem",
    "Scene",
    "SceneReport",
    "dataset_stats",
    "find_scenes",
    "locate_root",
    "read_captions",
    "verify_dataset",
    "verify_scene",
]
