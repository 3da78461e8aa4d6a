"""The project's error types.

Library code raises these with the file, frame, camera or field at fault in the message; the CLI
turns them into one-line messages (see ``recammaster.cli``).
"""

from __future__ import annotations

from pathlib import Path


class ReCamMasterError(Exception):
    """Base class of every error the project raises on purpose (bad input, missing files)."""


class CameraFileError(ReCamMasterError, ValueError):
    """A camera or trajectory file that cannot be used, with where in it the problem is."""

    def __init__(
        self,
        path: str | Path | None,
        message: str,
        *,
        frame: int | str | None = None,
        camera: str | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.frame = frame
        self.camera = camera
        where = [str(path) if path is not None else "<trajectory>"]
        if frame is not None:
            where.append(f"frame {frame}")
        if camera is not None:
            where.append(f"camera {camera}")
        super().__init__(f"{', '.join(where)}: {message}")


class TrajectoryError(ReCamMasterError, ValueError):
    """A trajectory that cannot be built or used as asked (bad preset, parameter or length)."""


class OutputExistsError(ReCamMasterError, FileExistsError):
    """An output file exists already and the caller did not ask to overwrite it."""

    def __init__(self, path: str | Path, reason: str = "exists already") -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {reason}; pass --overwrite (overwrite=True) to replace it")


class WeightsError(ReCamMasterError, ValueError):
    """A weights file that does not fit the model: missing, unknown or mis-shaped keys, named."""


class ModelFilesNotFoundError(ReCamMasterError, FileNotFoundError):
    """A model file or folder that is not where the caller said, with what to download instead."""
