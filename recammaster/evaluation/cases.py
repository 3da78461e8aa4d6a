"""A folder of evaluation cases: generated videos with what they were asked to show, read and written.

Any model's re-renderings can be scored (:mod:`recammaster.evaluation.scoring`, ``recammaster eval score``) once
they are laid out one folder per case::

    ROOT/<case name>/source.(npz|mp4|mov|webm)       the source video
                     result.(npz|mp4|mov|webm)       the generated video, as many frames as the source
                     trajectory.(json|yaml|yml|npy)  the requested camera path, one pose per result frame: anything
                                                     recammaster.cameras.files.load_trajectory_file reads (OpenCV
                                                     poses, a keyframe document, a one-camera MultiCamVideo JSON)
                     caption.txt                     optional: the caption (CLIP-T)
                     target.(npz|mp4|mov|webm)       optional: the true result (synthetic scenes), the result's shape
                     visible.npz                     optional: a (T, H, W) bool array under "visible", the target
                                                     pixels the source shows (recammaster.evaluation.regions)
                     intrinsics.json                 optional: {"focal_px": f}, the result's focal length in pixels,
                                                     which COLMAP then keeps fixed

``.npz`` videos hold a (T, H, W, 3) uint8 array under "video": lossless, so that ground-truth metrics measure the
model and not a codec. The other formats are read with :func:`recammaster.video.read_video`. Source and result
may differ in size (matching works across sizes); a target and a visible mask must fit the result.

Which folders are cases: the direct subfolders of ROOT holding at least one file named like a part above
(``source.*``, ``caption.*``, ...). Such a folder must be complete and readable; an error names the folder and the
missing file, or the file and what is wrong with it. Other subfolders (a report written into ROOT, notes) and
folders whose name starts with "." are not cases; files directly in ROOT and deeper folders are not looked at.
Cases come in name order.

:func:`write_case` writes the lossless form (npz videos, OpenCV poses as JSON), so that protocols can produce
case folders that read back exactly.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from recammaster.cameras.files import TRAJECTORY_SUFFIXES, load_trajectory_file
from recammaster.cameras.trajectory import Trajectory
from recammaster.errors import OutputExistsError, ReCamMasterError
from recammaster.fileio import atomic_output, write_text_atomic
from recammaster.video import read_video

Array = np.ndarray

VIDEO_SUFFIXES = (".npz", ".mp4", ".mov", ".webm")
VIDEO_KEY = "video"  # the array of an .npz video
VISIBLE_KEY = "visible"  # the array of visible.npz
REQUIRED = ("source", "result", "trajectory")
# Part -> the suffixes read; write_case writes the first one.
SUFFIXES = {
    "source": VIDEO_SUFFIXES,
    "result": VIDEO_SUFFIXES,
    "trajectory": TRAJECTORY_SUFFIXES,
    "caption": (".txt",),
    "target": VIDEO_SUFFIXES,
    "visible": (".npz",),
    "intrinsics": (".json",),
}


class CaseError(ReCamMasterError, ValueError):
    """A case folder or file that cannot be scored, named with what is wrong."""

    def __init__(self, where: str | Path, message: str) -> None:
        super().__init__(f"{where}: {message}")


# ---------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Case:
    """One re-rendering to score, checked on creation; errors name the file a part was read from, if any."""

    name: str
    source: Array  # (T, H, W, 3) uint8
    result: Array  # (T, H', W', 3) uint8
    trajectory: Trajectory  # T poses: the camera the result was asked to follow
    caption: str | None = None
    target: Array | None = None  # the result's shape: the true view along the trajectory
    visible: Array | None = None  # (T, H', W') bool: the target pixels the source shows
    focal_px: float | None = None  # the result's focal length in pixels; None: COLMAP estimates it
    paths: dict[str, Path] = field(default_factory=dict, repr=False)  # part -> the file it was read from

    @property
    def label(self) -> str:
        """The case in messages: its folder, or its name when it was not read from one."""
        return str(self.paths["result"].parent) if "result" in self.paths else f"case {self.name}"

    def where(self, part: str) -> str:
        """A part in messages: the file it was read from, or the case and the part's name."""
        return str(self.paths[part]) if part in self.paths else f"{self.label}: {part}"

    def __post_init__(self) -> None:
        for part in ("source", "result", "target"):
            video = getattr(self, part)
            if video is not None and not (video.dtype == np.uint8 and video.ndim == 4 and video.shape[-1] == 3
                                          and video.size):  # fmt: skip
                self._refuse(part, f"must be a non-empty (T, H, W, 3) uint8 video, got {video.dtype} {video.shape}")
        frames = len(self.result)
        if len(self.source) != frames:
            self._refuse("result", f"{frames} frames, but the source has {len(self.source)}")
        if self.trajectory.num_frames != frames:
            self._refuse("trajectory", f"{self.trajectory.num_frames} poses, but the result has {frames} frames")
        if self.target is not None and self.target.shape != self.result.shape:
            self._refuse("target", f"shape {self.target.shape}, but the result's is {self.result.shape}")
        if self.visible is not None:
            if self.target is None:
                self._refuse("visible", "a visible mask needs a target: it marks the target's pixels")
            mask = self.visible
            if mask.dtype != bool or mask.shape != self.target.shape[:3]:
                expected = self.target.shape[:3]
                self._refuse("visible", f"must be a {expected} bool mask of the target, got {mask.dtype} {mask.shape}")
        if self.caption is not None and not self.caption.strip():
            self._refuse("caption", "empty; write the caption or leave the file out")
        focal = self.focal_px
        if focal is not None and (isinstance(focal, bool) or not isinstance(focal, int | float)
                                  or not math.isfinite(focal) or focal <= 0):  # fmt: skip
            self._refuse("intrinsics", f"focal_px must be a positive number of pixels, got {focal!r}")

    def _refuse(self, part: str, message: str) -> NoReturn:
        raise CaseError(self.where(part), message)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _part_files(folder: Path) -> dict[str, list[Path]]:
    """The files of ``folder`` named like a case part, whatever their suffix, by part."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.stem in SUFFIXES and path.is_file():
            found.setdefault(path.stem, []).append(path)
    return found


def locate_parts(folder: str | Path) -> dict[str, Path]:
    """The file of each part in a case folder: one per part, of a known type, the required parts present."""
    folder = Path(folder)
    located = {}
    for part, paths in _part_files(folder).items():
        usable = [path for path in paths if path.suffix.lower() in SUFFIXES[part]]
        if not usable:
            names = ", ".join(part + suffix for suffix in SUFFIXES[part])
            raise CaseError(paths[0], f"not a readable {part} file; use one of {names}")
        if len(usable) > 1:
            raise CaseError(folder, f"{' and '.join(path.name for path in usable)}: keep one {part} file")
        located[part] = usable[0]
    missing = [part for part in REQUIRED if part not in located]
    if missing:
        names = [f"{part}.({'|'.join(suffix[1:] for suffix in SUFFIXES[part])})" for part in missing]
        raise CaseError(folder, f"missing {' and '.join(names)}")
    return located


def find_cases(root: str | Path) -> list[Path]:
    """The case folders under ``root``, in name order, each checked to hold its parts (nothing is read yet)."""
    root = Path(root)
    if not root.is_dir():
        raise CaseError(root, "no such folder")
    folders = [path for path in sorted(root.iterdir())
               if path.is_dir() and not path.name.startswith(".") and _part_files(path)]  # fmt: skip
    if not folders and _part_files(root):
        raise CaseError(root, "a case folder itself; give the folder above it, whose subfolders are the cases")
    if not folders:
        raise CaseError(root, "no case folders: a case is a subfolder holding source.*, result.* and trajectory.*")
    for folder in folders:  # a missing file stops the run here, not after hours of scoring the cases before it
        locate_parts(folder)
    return folders


def _load_npz(path: Path, key: str) -> Array:
    """Array ``key`` of an .npz archive, refused with the reason when the file or the key is not there."""
    if not zipfile.is_zipfile(path):
        raise CaseError(path, "not an .npz archive (numpy.savez)")
    with np.load(path, allow_pickle=False) as archive:
        if key not in archive.files:
            raise CaseError(path, f"no array {key!r}; it holds {', '.join(archive.files) or 'nothing'}")
        try:
            return archive[key]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            raise CaseError(path, f"cannot read array {key!r} ({error})") from error


def read_case_video(path: str | Path) -> Array:
    """A video of a case: the "video" array of an .npz file, else the decoded frames, (T, H, W, 3) uint8."""
    path = Path(path)
    return _load_npz(path, VIDEO_KEY) if path.suffix.lower() == ".npz" else read_video(path)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CaseError(path, f"not UTF-8 text ({error})") from error


def _read_focal(path: Path) -> float:
    try:
        document = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise CaseError(path, f"not valid JSON ({error})") from error
    if not isinstance(document, dict) or "focal_px" not in document:
        raise CaseError(path, 'expected {"focal_px": <the focal length in pixels>}')
    return document["focal_px"]


def read_case(folder: str | Path) -> Case:
    """Read and check the case in ``folder`` (see the module docstring for its files)."""
    folder = Path(folder)
    paths = locate_parts(folder)
    result = read_case_video(paths["result"])
    readers = {  # optional part -> (the Case field, how its file is read)
        "caption": ("caption", lambda path: _read_text(path).strip()),
        "target": ("target", read_case_video),
        "visible": ("visible", lambda path: _load_npz(path, VISIBLE_KEY)),
        "intrinsics": ("focal_px", _read_focal),
    }
    return Case(
        name=folder.name,
        source=read_case_video(paths["source"]),
        result=result,
        trajectory=load_trajectory_file(paths["trajectory"], num_frames=len(result)),  # keyframe documents need it
        paths=paths,
        **{name: read(paths[part]) for part, (name, read) in readers.items() if part in paths},
    )


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def write_case(root: str | Path, case: Case, *, overwrite: bool = False) -> Path:
    """Write ``case`` to ``root/<case.name>/`` in the lossless form :func:`read_case` reads back exactly.

    Each file appears whole or not at all. A folder that holds case files already is refused
    (:class:`OutputExistsError`, before anything is written) unless ``overwrite``; then the case's files that this
    write does not replace (another suffix, an optional part the new case lacks) are removed, so that the folder
    is this case and nothing of the earlier one.
    """
    if case.name in ("", ".", "..") or "/" in case.name or "\\" in case.name or case.name.startswith("."):
        raise CaseError(f"case {case.name!r}", "a case name must be a plain folder name, not starting with '.'")
    folder = Path(root) / case.name
    earlier = [path for paths in _part_files(folder).values() for path in paths] if folder.is_dir() else []
    if earlier and not overwrite:
        raise OutputExistsError(earlier[0])

    arrays = {"source": (VIDEO_KEY, case.source), "result": (VIDEO_KEY, case.result),
              "target": (VIDEO_KEY, case.target), "visible": (VISIBLE_KEY, case.visible)}  # fmt: skip
    texts = {
        "trajectory": json.dumps({"poses": case.trajectory.poses.tolist()}),  # a float's repr reads back exactly
        "caption": case.caption,
        "intrinsics": None if case.focal_px is None else json.dumps({"focal_px": case.focal_px}),
    }
    written = []
    for part, (key, array) in arrays.items():
        if array is not None:
            written.append(folder / (part + SUFFIXES[part][0]))
            with atomic_output(written[-1], overwrite=overwrite) as temporary:
                np.savez_compressed(temporary, **{key: array})
    for part, text in texts.items():
        if text is not None:
            written.append(write_text_atomic(folder / (part + SUFFIXES[part][0]), text + "\n", overwrite=overwrite))
    for path in earlier:
        if path not in written:
            path.unlink()
    return folder
