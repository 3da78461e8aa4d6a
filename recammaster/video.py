"""Video in and out: probing, reading, the model's pixel pre- and post-processing, writing, comparisons.

Reading and writing go through PyAV (FFmpeg in-process; see ``ecosystem-notes.md`` §4). The pixel rules
follow upstream ReCamMaster exactly (spec ``upstream-recammaster.md`` §4.3 and §4.6):

- in: scale by ``max(width / W, height / H)``, resize with PIL bilinear to ``(round(H·s), round(W·s))``,
  centre-crop with torchvision's offset rule ``int(round((size - crop) / 2))``, then ``(x / 255 - 0.5) / 0.5``;
- out: ``(x + 1) · 127.5`` in float32, clipped to [0, 255] and truncated (not rounded) to uint8.

Upstream wrote its results at 30 fps, crf 25, yuv420p with libx264; we keep libx264 and yuv420p but default to
crf 18, because a result is usually looked at closely. ``side_by_side`` is ours: the source next to the
result, labelled, with an optional top-down inset of the camera path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from recammaster.errors import ReCamMasterError
from recammaster.fileio import atomic_output

if TYPE_CHECKING:
    import av

    from recammaster.cameras.trajectory import Trajectory

Array = np.ndarray
Fit = Literal["error", "loop", "resample"]

UPSTREAM_FPS = 30  # upstream's output rate (its training clips are 15 fps)
DEFAULT_CRF = 18  # visually near-lossless H.264; upstream used 25
PIXEL_FORMAT = "yuv420p"  # what every player accepts; halves chroma, so width and height must be even
FIT_MODES = ("error", "loop", "resample")


def _pyav() -> ModuleType:
    """PyAV, imported when a video is first read or written: training and tests of models need no FFmpeg."""
    import av

    return av


class VideoError(ReCamMasterError, ValueError):
    """A video file that cannot be read or written as asked, named with what is wrong."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe_video`` finds; ``width`` and ``height`` are as displayed (after any rotation)."""

    frames: int
    fps: Fraction | float
    width: int
    height: int
    duration: float  # seconds
    rotation: int = 0  # degrees counter-clockwise applied to every decoded frame (0, 90, 180 or -90)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _open(path: Path) -> tuple[av.container.InputContainer, av.VideoStream]:
    """Open ``path`` and return the container with its first video stream, or raise a ``VideoError``."""
    av = _pyav()
    if not path.is_file():
        raise VideoError(path, "no such file")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as error:
        raise VideoError(path, f"not a video file PyAV can read ({error.strerror or error})") from error
    if not container.streams.video:
        container.close()
        raise VideoError(path, "no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame- and slice-threaded decoding
    return container, stream


def _rotation(frame: av.VideoFrame) -> int:
    """The display rotation as 0, 90, 180 or 270 degrees counter-clockwise (FFmpeg gives [-180, 180])."""
    return round(frame.rotation / 90.0) * 90 % 360 if frame.rotation else 0


def _to_rgb(frame: av.VideoFrame, rotation: int) -> Array:
    rgb = frame.to_ndarray(format="rgb24")
    # Phones store portrait clips landscape plus a display matrix; players rotate, so do we.
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90)) if rotation else rgb


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count, frame rate, displayed size and duration of a video, without decoding all of it.

    The count comes from the container when it records one; otherwise (Matroska, WebM, raw streams) the
    video packets are counted, which demuxes the file but decodes nothing. Only the first frame is decoded,
    to learn its rotation. A recorded count can differ from the decoded one in files with edit lists;
    ``read_video`` always counts decoded frames.
    """
    av = _pyav()
    path = Path(path)
    container, stream = _open(path)
    try:
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as error:
            raise VideoError(path, f"cannot decode the first frame ({error.strerror or error})") from error
        if first is None:
            raise VideoError(path, "the video stream has no frames")
        rotation = _rotation(first)
        frames = stream.frames
        if frames <= 0:
            container.seek(0)
            frames = sum(1 for packet in container.demux(stream) if packet.size)
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = frames / float(fps) if fps else 0.0
        if not fps:
            fps = frames / duration if duration else 0.0
        width, height = stream.codec_context.width, stream.codec_context.height
    finally:
        container.close()
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(frames, fps, width, height, duration, -90 if rotation == 270 else rotation)


def read_video(path: str | Path, num_frames: int | None = None, *, start: int = 0, fit: Fit = "error") -> Array:
    """Frames ``start .. start + num_frames - 1`` as (T, H, W, 3) uint8 RGB (all frames from ``start`` if None).

    ``fit`` says what to do when the file has fewer frames than asked for: ``"error"`` raises a
    ``VideoError``, ``"loop"`` plays the clip forward then backward (0 1 2 1 0 1 ...) until it is long
    enough, and ``"resample"`` spreads its frames evenly over ``num_frames`` (nearest frame, so some
    repeat: slow motion). With enough frames every mode reads the same consecutive frames, as upstream does.
    """
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if start < 0:
        raise ValueError(f"start must be 0 or more, got {start}")
    path = Path(path)
    av = _pyav()
    container, stream = _open(path)
    frames: list[Array] = []
    total = 0
    rotation = None
    try:
        for frame in container.decode(stream):
            if rotation is None:
                rotation = _rotation(frame)
            total += 1
            if total <= start:
                continue
            frames.append(_to_rgb(frame, rotation))
            if num_frames is not None and len(frames) == num_frames:
                break
    except av.FFmpegError as error:
        raise VideoError(path, f"cannot decode frame {total} ({error.strerror or error})") from error
    finally:
        container.close()

    if not frames:
        raise VideoError(path, f"the video has {total} frames, none from frame {start} on")
    if num_frames is None or len(frames) == num_frames:
        return np.stack(frames)
    if fit == "error":
        have = f"{total} frames" if start == 0 else f"{total} frames, {len(frames)} of them from frame {start} on,"
        raise _too_few_frames(path, have, num_frames)
    indices = ping_pong_indices(len(frames), num_frames) if fit == "loop" else resample_indices(len(frames), num_frames)
    return np.stack([frames[i] for i in indices])


def _too_few_frames(path: str | Path, have: str, needed: int) -> VideoError:
    return VideoError(
        path,
        f"the video has {have} but {needed} are needed; pass --loop (fit='loop': play it forward then "
        "backward) or --resample (fit='resample': spread its frames evenly) to use it anyway",
    )


def require_frames(path: str | Path, num_frames: int, fit: Fit = "error") -> VideoInfo:
    """Probe ``path`` and refuse up front, without decoding, what :func:`read_video` would refuse as too short."""
    info = probe_video(path)
    if info.frames < num_frames and fit == "error":
        raise _too_few_frames(path, f"{info.frames} frames", num_frames)
    return info


def ping_pong_indices(available: int, length: int) -> Array:
    """``length`` frame indices that run 0 .. available-1 and back again, without repeating the turning points."""
    if available == 1:
        return np.zeros(length, dtype=np.int64)
    period = 2 * (available - 1)
    phase = np.arange(length) % period
    return np.where(phase < available, phase, period - phase)


def resample_indices(available: int, length: int) -> Array:
    """``length`` evenly spaced indices over 0 .. available-1, each the nearest frame (first and last kept)."""
    return np.floor(np.linspace(0.0, available - 1, length) + 0.5).astype(np.int64)


# ---------------------------------------------------------------------------
# The model's pixels
# ---------------------------------------------------------------------------


def preprocess_frames(frames: Array, height: int, width: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 frames -> (3, T, height, width) float32 in [-1, 1], exactly as upstream (§4.3).

    The frame is scaled so that it covers ``height`` x ``width`` and the middle is cropped out; aspect
    ratio is kept, so the wider side loses its ends.
    """
    frames = _check_frames(frames, "frames")
    source_height, source_width = frames.shape[1:3]
    scale = max(width / source_width, height / source_height)
    # Python's round (half to even) and this order match upstream's torchvision calls bit for bit.
    resized_height, resized_width = round(source_height * scale), round(source_width * scale)
    top = round((resized_height - height) / 2.0)
    left = round((resized_width - width) / 2.0)
    cropped = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        image = Image.fromarray(frame)
        if image.size != (resized_width, resized_height):
            image = image.resize((resized_width, resized_height), Image.Resampling.BILINEAR)
        cropped[index] = np.asarray(image)[top : top + height, left : left + width]
    pixels = torch.from_numpy(cropped).permute(3, 0, 1, 2).float()  # (T, H, W, 3) -> (3, T, H, W)
    return pixels.div(255).sub(0.5).div(0.5)


def postprocess_frames(video: torch.Tensor) -> Array:
    """(3, T, H, W) or (1, 3, T, H, W) values in [-1, 1] -> (T, H, W, 3) uint8, truncated as upstream (§4.6)."""
    if video.ndim == 5:
        if video.shape[0] != 1:
            raise ValueError(f"postprocess_frames takes one video at a time, got a batch of {video.shape[0]}")
        video = video[0]
    if video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"video must have shape (3, T, H, W) or (1, 3, T, H, W), got {tuple(video.shape)}")
    pixels = ((video.detach().float().cpu() + 1) * 127.5).clamp(0, 255)
    return pixels.to(torch.uint8).permute(1, 2, 3, 0).contiguous().numpy()  # float -> uint8 truncates


def _check_frames(frames: Array, name: str) -> Array:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not all(frames.shape[:3]):
        raise ValueError(f"{name} must be a non-empty (T, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}")
    return frames


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


WRITABLE_SUFFIXES = (".mp4", ".mov", ".mkv")  # containers that take H.264, told by the file's name


def check_writable_name(path: str | Path) -> Path:
    """``path`` as a Path, if its suffix names a container :func:`write_video` can write; else a
    :class:`VideoError` naming it (asked early, before the work whose result would have nowhere to go)."""
    path = Path(path)
    if path.suffix.lower() not in WRITABLE_SUFFIXES:
        raise VideoError(path, f"the name must end in {', '.join(WRITABLE_SUFFIXES)} (the container is told by it)")
    return path


def write_video(
    path: str | Path,
    frames: Array,
    fps: float | Fraction = UPSTREAM_FPS,
    *,
    crf: int = DEFAULT_CRF,
    overwrite: bool = False,
) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as H.264 (libx264, yuv420p) and return the path.

    The file appears whole or not at all; an existing one is replaced only with ``overwrite``
    (otherwise :class:`~recammaster.errors.OutputExistsError`). Width and height must be even, as
    4:2:0 chroma needs; we refuse odd sizes rather than pad or crop behind the caller's back.
    """
    path = check_writable_name(path)
    frames = _check_frames(frames, "frames")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise VideoError(path, f"width and height must be even for {PIXEL_FORMAT} H.264, got {width}x{height}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be between 0 and 51, got {crf}")
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    av = _pyav()
    with atomic_output(path, overwrite=overwrite) as temporary:
        try:
            with av.open(str(temporary), mode="w") as container:
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height, stream.pix_fmt = width, height, PIXEL_FORMAT
                stream.options = {"crf": str(crf)}
                for index, rgb in enumerate(frames):
                    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    frame.pts = index
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())  # flush the encoder's delayed frames
        except av.FFmpegError as error:
            raise VideoError(path, f"cannot write H.264 video ({error.strerror or error})") from error
    return path


# ---------------------------------------------------------------------------
# Side-by-side comparison
# ---------------------------------------------------------------------------

LABEL_HEIGHT_FRACTION = 0.05  # label text height relative to the frame height
INSET_FRACTION = 0.3  # inset side relative to the result's shorter side
INSET_MARGIN = 0.03  # gap to the frame border, same unit
INSET_MIN_EXTENT_M = 1.0  # pans and tilts do not move: their inset is scaled as for a 1 m path


def side_by_side(
    source: Array,
    result: Array,
    *,
    labels: Sequence[str] | None = ("source", "result"),
    trajectory: Trajectory | None = None,
) -> Array:
    """Source and result frames next to each other, labelled, as (T, H, W_source' + W, 3) uint8.

    The source is resized to the result's height, keeping its aspect ratio (width rounded to an even
    number, so the output stays writable as yuv420p). With a ``trajectory``, the result panel gets a
    top-down inset of the camera path (right/forward plane of the first camera) with the current camera
    and its viewing direction marked; trajectory frames are matched to video frames proportionally.
    """
    source, result = _check_frames(source, "source"), _check_frames(result, "result")
    if len(source) != len(result):
        raise ValueError(f"source has {len(source)} frames but result has {len(result)}")
    if labels is not None and len(labels) != 2:
        raise ValueError(f"labels must be two strings (source, result; '' for none) or None, got {labels!r}")
    frames, height, width = result.shape[:3]
    source_width = max(2, 2 * round(source.shape[2] * height / source.shape[1] / 2))
    if source.shape[1:3] != (height, source_width):
        source = np.stack(
            [np.asarray(Image.fromarray(f).resize((source_width, height), Image.Resampling.BILINEAR)) for f in source]
        )
    canvas = np.concatenate([source, result], axis=2)

    # Everything that does not move is drawn once into an RGBA overlay, then blended into all frames at once,
    # one drawn element's box at a time (the band between them stays untouched).
    overlay = Image.new("RGBA", (canvas.shape[2], height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = _font(max(10, round(height * LABEL_HEIGHT_FRACTION)))
    corners = [(0, 0), (source_width, 0)]
    texts = labels if labels is not None else ()
    boxes = [
        _draw_label(draw, corner, text, font, height)
        for text, corner in zip(texts, corners, strict=False)
        if text  # '' leaves a panel unlabelled
    ]
    inset = None
    if trajectory is not None:
        inset = _Inset.build(trajectory, frames, height, width, offset=source_width)
        inset.draw_static(draw)
        boxes.append(inset.box)
    layer = np.asarray(overlay, dtype=np.float32)
    for left, top, right, bottom in boxes:
        rows = slice(max(top, 0), min(bottom + 1, height))
        columns = slice(max(left, 0), min(right + 1, canvas.shape[2]))
        alpha = layer[rows, columns, 3:] / 255
        blended = canvas[:, rows, columns] * (1 - alpha) + layer[rows, columns, :3] * alpha
        canvas[:, rows, columns] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    if inset is not None:
        inset.draw_markers(canvas)
    return canvas


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _draw_label(
    draw: ImageDraw.ImageDraw, corner: tuple[int, int], text: str, font, height: int
) -> tuple[int, int, int, int]:
    """White text on a dark box near ``corner``; returns the box drawn (left, top, right, bottom)."""
    pad = max(3, height // 80)
    x, y = corner[0] + pad, corner[1] + pad
    _, _, right, bottom = draw.textbbox((x + pad, y + pad), text, font=font)
    box = (x, y, math.ceil(right) + pad, math.ceil(bottom) + pad)
    draw.rectangle(box, fill=(0, 0, 0, 150))
    draw.text((x + pad, y + pad), text, font=font, fill=(255, 255, 255, 255))
    return box


@dataclass(frozen=True)
class _Inset:
    """The top-down path picture: where it sits in the canvas and each frame's camera in its pixels."""

    box: tuple[int, int, int, int]  # left, top, right, bottom in canvas pixels
    path: Array  # (trajectory frames, 2) pixel positions
    headings: Array  # (trajectory frames, 2) unit viewing directions in pixel axes
    colors: Array  # (trajectory frames, 3) uint8, the time colour of each frame
    frame_map: Array  # (video frames,) trajectory frame shown at each video frame

    @classmethod
    def build(cls, trajectory: Trajectory, frames: int, height: int, width: int, offset: int) -> _Inset:
        from matplotlib import colormaps  # imported here: only the inset needs matplotlib

        from recammaster.cameras.plot import COLORMAP, to_plot_frame

        side = max(24, round(min(height, width) * INSET_FRACTION))
        margin = max(2, round(min(height, width) * INSET_MARGIN))
        left, top = offset + width - margin - side, margin
        rotations, positions = to_plot_frame(trajectory)  # plot frame: x right, y forward, z up
        flat = positions[:, :2]
        centre = (flat.min(axis=0) + flat.max(axis=0)) / 2
        extent = max(float(np.ptp(flat, axis=0).max()), INSET_MIN_EXTENT_M)
        pixels_per_metre = side * 0.7 / extent  # room for the heading ticks at the border
        # Image y grows downwards, so forward points up in the inset.
        path = np.stack(
            [left + side / 2 + (flat[:, 0] - centre[0]) * pixels_per_metre,
             top + side / 2 - (flat[:, 1] - centre[1]) * pixels_per_metre],
            axis=1,
        )  # fmt: skip
        forward = rotations[:, :2, 2]  # the camera's optical axis, right/forward components
        forward = forward * np.array([1.0, -1.0])
        norms = np.linalg.norm(forward, axis=1, keepdims=True)
        headings = np.divide(forward, norms, out=np.zeros_like(forward), where=norms > 1e-9)
        steps = trajectory.num_frames - 1
        colors = colormaps[COLORMAP](np.arange(trajectory.num_frames) / max(steps, 1))[:, :3]
        frame_map = np.floor(np.arange(frames) * steps / max(frames - 1, 1) + 0.5).astype(np.int64)
        return cls((left, top, left + side, top + side), path, headings, (colors * 255).astype(np.uint8), frame_map)

    @property
    def side(self) -> int:
        return self.box[2] - self.box[0]

    def draw_static(self, draw: ImageDraw.ImageDraw) -> None:
        draw.rectangle(self.box, fill=(255, 255, 255, 215), outline=(60, 60, 60, 255))
        width = max(1, self.side // 60)
        for index in range(len(self.path) - 1):
            segment = [tuple(self.path[index]), tuple(self.path[index + 1])]
            draw.line(segment, fill=(*self.colors[index].tolist(), 255), width=width)
        x, y = self.path[0]
        r = max(1.5, self.side / 60)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(0, 0, 0, 255))

    def draw_markers(self, canvas: Array) -> None:
        """Draw the current camera (dot plus viewing direction) into each frame's inset, in place."""
        left, top, right, bottom = self.box
        radius = max(2.0, self.side / 30)
        tick = self.side * 0.2
        for video_frame, index in enumerate(self.frame_map):
            patch = Image.fromarray(canvas[video_frame, top:bottom, left:right])
            draw = ImageDraw.Draw(patch)
            x, y = self.path[index] - (left, top)
            dx, dy = self.headings[index] * tick
            color = tuple(self.colors[index].tolist())
            draw.line([(x, y), (x + dx, y + dy)], fill=(200, 30, 30), width=max(1, math.ceil(radius / 2)))
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color, outline=(200, 30, 30))
            canvas[video_frame, top:bottom, left:right] = np.asarray(patch)
