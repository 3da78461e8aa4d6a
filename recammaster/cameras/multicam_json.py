"""Read and write MultiCamVideo ``camera_extrinsics.json`` files exactly.

Format (spec ``upstream-recammaster.md`` §3.1): a JSON object ``{"frame0": {"cam01": "<matrix>", ...},
...}`` with one entry per video frame and one per camera, where ``<matrix>`` is a Unreal Engine 4x4
row-vector matrix (centimetres) written as four bracketed rows, e.g.
``"[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3390 1380 240 1] "``.

Matrices are returned and taken in UE units; :mod:`recammaster.cameras.conventions` converts them.
The writer prints every number with the fewest digits that give back the same float32, both as
written (centimetres) and converted to metres; official files (six significant digits, float32 in
Unreal Engine) need no more, so reading one and writing it again reproduces it byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from recammaster.cameras.conventions import CENTIMETRES_PER_METRE
from recammaster.cameras.geometry import rotation_problem
from recammaster.errors import CameraFileError
from recammaster.fileio import write_text_atomic

Array = np.ndarray

_FRAME_KEY = re.compile(r"frame(\d+)")
_HOMOGENEOUS_COLUMN = np.array([0.0, 0.0, 0.0, 1.0])


def camera_name(index: int) -> str:
    """MultiCamVideo camera key of a 1-based camera index: 1 -> ``cam01``."""
    return f"cam{index:02d}"


def parse_matrix(text: str) -> Array:
    """Parse one matrix string into a (4, 4) UE matrix.

    Four rows of three numbers are accepted too (a zero is appended to each row, as upstream's
    ``vis_cam.py`` does). Raises ``ValueError`` with the reason.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a matrix string, got {type(text).__name__}")
    rows = re.findall(r"\[([^\[\]]*)\]", text)
    leftover = re.sub(r"\[[^\[\]]*\]", "", text).strip()
    if len(rows) != 4 or leftover:
        raise ValueError(f"expected four bracketed rows like '[1 0 0 0]', got {text!r}")
    try:
        values = [[float(token) for token in row.split()] for row in rows]
    except ValueError as error:
        raise ValueError(f"non-numeric entry in {text!r}") from error
    lengths = {len(row) for row in values}
    if lengths == {3}:
        values = [[*row, 0.0] for row in values]
    elif lengths != {4}:
        raise ValueError(f"rows must hold 4 numbers each, got {text!r}")
    matrix = np.array(values)
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"matrix holds non-finite values: {text!r}")
    return matrix


def format_number(value: float) -> str:
    """Shortest ``%g``-style text that reads back as the same float32, in centimetres and in metres.

    Checking both units makes OpenCV (metres) -> file -> OpenCV exact to float32 as well as the file
    itself; official numbers need no more than their six digits. '-0' keeps its sign.
    """
    target = np.float32(value), np.float32(value / CENTIMETRES_PER_METRE)
    for digits in range(1, 18):
        text = f"{value:.{digits}g}"
        parsed = float(text)
        if (np.float32(parsed), np.float32(parsed / CENTIMETRES_PER_METRE)) == target:
            return f"{value:.{max(digits, 6)}g}"
    return repr(float(value))  # unreachable: 17 digits give back the float64 itself


def format_matrix(matrix: Array) -> str:
    """The file's text for one (4, 4) UE matrix, trailing space included."""
    return "".join("[" + " ".join(format_number(v) for v in row) + "] " for row in np.asarray(matrix))


def read_camera_extrinsics(path: str | Path) -> dict[str, Array]:
    """Read a ``camera_extrinsics.json``: camera name -> (frames, 4, 4) UE matrices in centimetres.

    Every problem raises :class:`CameraFileError` naming the file, frame and camera: malformed JSON,
    missing or extra frames, cameras missing from a frame, unparseable or non-rotation matrices.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CameraFileError(path, "file not found") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CameraFileError(path, f"not valid JSON ({error})") from error
    if not isinstance(document, dict) or not document:
        raise CameraFileError(path, 'expected an object {"frame0": {"cam01": "[...] ...", ...}, ...}')

    frame_numbers = {}
    for key in document:
        match = _FRAME_KEY.fullmatch(key)
        if match is None:
            raise CameraFileError(path, f"unexpected key {key!r}; keys must be frame0, frame1, ...")
        frame_numbers[int(match.group(1))] = key
    missing = sorted(set(range(max(frame_numbers) + 1)) - set(frame_numbers))
    if missing:
        shown = ", ".join(f"frame{i}" for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise CameraFileError(path, f"missing {len(missing)} frame(s): {shown}")

    cameras: list[str] | None = None
    matrices: dict[str, list[Array]] = {}
    for index in range(len(frame_numbers)):
        entry = document[frame_numbers[index]]
        if not isinstance(entry, dict) or not entry:
            raise CameraFileError(path, "expected an object of cameras", frame=index)
        if cameras is None:
            cameras = sorted(entry)
            matrices = {name: [] for name in cameras}
        for name in cameras:
            if name not in entry:
                raise CameraFileError(path, "camera missing from this frame", frame=index, camera=name)
        extra = sorted(set(entry) - set(cameras))
        if extra:
            raise CameraFileError(path, f"camera not present in frame 0: {extra[0]}", frame=index, camera=extra[0])
        for name in cameras:
            try:
                matrix = parse_matrix(entry[name])
            except ValueError as error:
                raise CameraFileError(path, str(error), frame=index, camera=name) from error
            if not np.allclose(matrix[:, 3], _HOMOGENEOUS_COLUMN, atol=1e-6):
                raise CameraFileError(
                    path,
                    "last column must be 0 0 0 1 (row-vector layout)",
                    frame=index,
                    camera=name,
                )
            problem = rotation_problem(matrix[:3, :3])
            if problem:
                raise CameraFileError(path, problem, frame=index, camera=name)
            matrices[name].append(matrix)
    return {name: np.stack(rows) for name, rows in matrices.items()}


def dumps_camera_extrinsics(cameras: Mapping[str, Array]) -> str:
    """The file text for camera name -> (frames, 4, 4) UE matrices; all cameras need the same length."""
    lengths = {name: len(matrices) for name, matrices in cameras.items()}
    if not lengths:
        raise ValueError("no cameras to write")
    if len(set(lengths.values())) != 1:
        raise ValueError(f"all cameras need the same number of frames, got {lengths}")
    num_frames = next(iter(lengths.values()))
    document = {
        f"frame{i}": {name: format_matrix(matrices[i]) for name, matrices in cameras.items()} for i in range(num_frames)
    }
    return json.dumps(document, indent=4)


def write_camera_extrinsics(path: str | Path, cameras: Mapping[str, Array], *, overwrite: bool = False) -> Path:
    """Write camera name -> (frames, 4, 4) UE matrices (cm) to ``path`` atomically."""
    return write_text_atomic(path, dumps_camera_extrinsics(cameras), overwrite=overwrite)
