"""What an upload must be before it becomes a job: its type by content, its size, length and readability.

A file's name and the browser's content type are the sender's word; the first bytes are not. A video is an
ISO base media file (MP4 or QuickTime: a ``ftyp`` box, or a QuickTime file's first atom) or a WebM file (an
EBML header whose doc type is ``webm``). It is stored under a name of our own (``upload.mp4``), then probed
with PyAV: unreadable, too short, too long or too large videos are refused with a message that names the
uploaded file as its owner knows it. Trajectory files are parsed as ``recammaster render`` parses them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from recammaster.cameras.files import TRAJECTORY_SUFFIXES, load_trajectory_file
from recammaster.cameras.trajectory import Trajectory
from recammaster.errors import ReCamMasterError
from recammaster.serve.queue import CUSTOM_TRAJECTORY_STEM
from recammaster.serve.settings import ServeSettings
from recammaster.video import VideoError, VideoInfo, probe_video

VIDEO_KINDS = ("mp4", "mov", "webm")
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")  # old QuickTime files have no ftyp
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
SNIFF_BYTES = 64


class UploadError(ReCamMasterError, ValueError):
    """An upload that cannot become a job; ``status`` is the HTTP status the service answers with."""

    def __init__(self, message: str, status: int = 422) -> None:
        self.status = status
        super().__init__(message)


def display_name(name: str | None, fallback: str = "the upload") -> str:
    """The sender's file name without any folder part, short and printable: for messages, never for paths."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(character for character in base if character.isprintable())[:120].strip()
    return base or fallback


def sniff_video(head: bytes) -> str | None:
    """``mp4``, ``mov`` or ``webm`` from a file's first bytes; None for anything else."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return "mov"
    if head.startswith(_EBML_MAGIC):
        return "webm" if b"webm" in head[:SNIFF_BYTES] else None
    return None


def save_upload(chunks: Iterable[bytes], destination: Path, max_bytes: int, name: str) -> str:
    """Write ``chunks`` to ``destination``, refusing more than ``max_bytes`` or a non-video; returns the kind."""
    size, kind = 0, None
    with destination.open("wb") as handle:
        for chunk in chunks:
            if kind is None:
                kind = sniff_video(chunk[:SNIFF_BYTES])
                if kind is None:
                    raise UploadError(f"{name}: not an MP4, MOV or WebM video (by its content, whatever its name)",
                                      status=415)  # fmt: skip
            size += len(chunk)
            if size > max_bytes:
                raise UploadError(f"{name}: larger than the limit of {max_bytes / 2**20:.0f} MB", status=413)
            handle.write(chunk)
    if size == 0:
        raise UploadError(f"{name}: the file is empty")
    assert kind is not None
    return kind


def check_video(path: Path, name: str, settings: ServeSettings) -> VideoInfo:
    """Probe the stored upload; refuse what the model cannot use, in words its sender understands."""
    try:
        info = probe_video(path)
    except VideoError as error:
        reason = str(error).removeprefix(f"{path}: ")
        raise UploadError(f"{name}: unreadable video ({reason})") from error
    if info.width * info.height > settings.max_pixels:
        raise UploadError(f"{name}: {info.width}x{info.height} is larger than this service takes "
                          f"({settings.max_pixels:,} pixels a frame)", status=413)  # fmt: skip
    if info.duration > settings.max_duration_s:
        raise UploadError(f"{name}: {info.duration:.1f} s long; this service takes videos up to "
                          f"{settings.max_duration_s:g} s", status=413)  # fmt: skip
    if info.frames < settings.num_frames:
        seconds = settings.num_frames / 30
        raise UploadError(f"{name}: too short, {info.frames} frames; the model re-renders {settings.num_frames} frames "
                          f"(about {seconds:.1f} s at 30 fps), so it needs at least that many")  # fmt: skip
    return info


def check_trajectory_file(
    data: bytes, name: str, destination_dir: Path, settings: ServeSettings
) -> tuple[Path, Trajectory]:
    """Store an uploaded trajectory file as ``trajectory<suffix>`` and parse it for ``num_frames`` frames."""
    suffix = Path(name).suffix.lower()
    if suffix not in TRAJECTORY_SUFFIXES:
        raise UploadError(f"{name}: a trajectory file must be one of {', '.join(TRAJECTORY_SUFFIXES)}", status=415)
    if len(data) > settings.max_trajectory_kb * 1024:
        raise UploadError(f"{name}: larger than the limit of {settings.max_trajectory_kb:g} KB", status=413)
    path = destination_dir / f"{CUSTOM_TRAJECTORY_STEM}{suffix}"
    path.write_bytes(data)
    try:
        trajectory = load_trajectory_file(path, num_frames=settings.num_frames)
        if trajectory.num_frames != settings.num_frames:
            raise ReCamMasterError(f"it has {trajectory.num_frames} poses; {settings.num_frames} are needed")
    except ReCamMasterError as error:
        reason = str(error).removeprefix(f"{path}: ").replace(str(path), name)
        raise UploadError(f"{name}: not a usable trajectory ({reason})") from error
    return path, trajectory
