"""Video I/O and the model's pixel rules: round trips through PyAV, fit modes, upstream's pre/post-processing.

Test videos are made here, both with ``write_video`` and with raw PyAV (so reading is checked against a writer
that is not ours). Preprocessing is compared with a numpy re-computation of Pillow's fixed-point bilinear
filter and of upstream's scale/crop rule (spec ``upstream-recammaster.md`` §4.3).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from recammaster.cameras.presets import get_preset
from recammaster.errors import OutputExistsError, ReCamMasterError
from recammaster.video import (
    VideoError,
    VideoInfo,
    ping_pong_indices,
    postprocess_frames,
    preprocess_frames,
    probe_video,
    read_video,
    resample_indices,
    side_by_side,
    write_video,
)

# ---------------------------------------------------------------------------
# Synthetic clips
# ---------------------------------------------------------------------------


def smooth_clip(frames: int = 9, height: int = 48, width: int = 64) -> np.ndarray:
    """Slowly moving smooth gradients: compress well, so decoded pixels stay close to these."""
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    clip = [
        np.stack(
            [
                128 + 80 * np.sin(2 * np.pi * (x + t / frames)),
                40 + 160 * y,
                128 + 60 * np.cos(2 * np.pi * (x * 0.5 + y * 0.5)),
            ],
            axis=-1,
        )
        for t in range(frames)
    ]
    return np.round(np.stack(clip)).astype(np.uint8)


def numbered_clip(frames: int, height: int = 32, width: int = 32) -> np.ndarray:
    """Flat grey frames, frame i at level 20 + 20 i, so a decoded frame tells its index by its mean."""
    levels = 20 + 20 * np.arange(frames, dtype=np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (frames, height, width, 3)).copy()


def frame_numbers(frames: np.ndarray) -> list[int]:
    return [round((frame.mean() - 20) / 20) for frame in frames]


def write_with_pyav(path: Path, frames: np.ndarray, fps: int, *, rotation: int = 0, crf: int = 0) -> Path:
    """An H.264 file written with PyAV directly (container chosen by the suffix)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": str(crf)}
        if rotation:
            stream.set_display_rotation(rotation)
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture
def clip_path(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.mp4", numbered_clip(6), fps=15)


# ---------------------------------------------------------------------------
# Round trips and probing
# ---------------------------------------------------------------------------


def test_write_probe_read_round_trip(tmp_path: Path) -> None:
    clip = smooth_clip()
    path = write_video(tmp_path / "out.mp4", clip, fps=15, crf=18)

    assert path == tmp_path / "out.mp4"
    assert probe_video(path) == VideoInfo(frames=9, fps=Fraction(15), width=64, height=48, duration=0.6)
    frames = read_video(path)
    assert frames.shape == clip.shape
    assert frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - clip).mean() < 3
    assert not list(tmp_path.glob(".out.*"))  # the temporary file is gone


def test_reads_a_file_written_by_pyav_itself(tmp_path: Path) -> None:
    clip = smooth_clip(frames=7, height=32, width=48)
    path = write_with_pyav(tmp_path / "raw.mp4", clip, fps=24, crf=0)

    info = probe_video(path)
    assert (info.frames, info.fps, info.width, info.height) == (7, 24, 48, 32)
    assert info.duration == pytest.approx(7 / 24)
    assert np.abs(read_video(path).astype(int) - clip).mean() < 3  # crf 0 is lossless in YUV; 4:2:0 is not
    np.testing.assert_array_equal(read_video(path, 3, start=2), read_video(path)[2:5])


def test_probe_counts_packets_when_the_container_has_no_frame_count(tmp_path: Path) -> None:
    path = write_with_pyav(tmp_path / "clip.mkv", numbered_clip(5), fps=10)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # Matroska stores no count: the fallback is exercised

    info = probe_video(path)
    assert (info.frames, info.fps) == (5, 10)
    assert info.duration == pytest.approx(0.5)


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    clip = np.zeros((3, 32, 64, 3), dtype=np.uint8)
    clip[:, :8, :8] = 255  # a white top-left corner on a landscape frame
    path = write_with_pyav(tmp_path / "phone.mp4", clip, fps=30, rotation=-90)  # shown turned clockwise

    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (32, 64, -90)
    frames = read_video(path)
    assert frames.shape == (3, 64, 32, 3)
    assert frames[0, :6, -6:].mean() > 200  # the corner turned to the top right
    assert frames[0, :6, :6].mean() < 50


def test_write_refuses_to_overwrite_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_video(tmp_path / "out.mp4", numbered_clip(3), fps=15)
    before = path.read_bytes()

    with pytest.raises(OutputExistsError, match="exists already"):
        write_video(path, numbered_clip(5), fps=15)

    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1
    write_video(path, numbered_clip(5), fps=15, overwrite=True)
    assert probe_video(path).frames == 5


def test_write_refuses_odd_sizes(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    with pytest.raises(VideoError) as caught:
        write_video(path, np.zeros((2, 31, 64, 3), dtype=np.uint8))
    assert str(caught.value) == f"{path}: width and height must be even for yuv420p H.264, got 64x31"
    assert not path.exists()


def test_write_rejects_frames_that_are_not_uint8_rgb(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"frames must be a non-empty \(T, H, W, 3\) uint8 array, got float32"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 32, 32, 3), dtype=np.float32))


@pytest.mark.parametrize("name", ["clip", "clip.gif", "clip.mp4.part"])
def test_write_refuses_a_name_that_tells_no_container_and_writes_nothing(tmp_path: Path, name: str) -> None:
    with pytest.raises(VideoError, match=r"clip[.a-z0-9]*: the name must end in \.mp4, \.mov, \.mkv"):
        write_video(tmp_path / name, numbered_clip(3), fps=15)
    assert list(tmp_path.iterdir()) == []


def test_write_takes_the_container_from_a_capitalised_suffix(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.MOV", numbered_clip(3), fps=15)
    assert probe_video(path).frames == 3


# ---------------------------------------------------------------------------
# Unreadable files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reader", [probe_video, read_video])
def test_a_text_file_is_not_a_video(tmp_path: Path, reader) -> None:
    path = tmp_path / "x.mp4"
    path.write_text("this is not a video\n")
    with pytest.raises(VideoError) as caught:
        reader(path)
    assert str(caught.value).startswith(f"{path}: not a video file PyAV can read")
    assert caught.value.path == path
    assert isinstance(caught.value, ReCamMasterError)
    assert isinstance(caught.value, ValueError)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "tone.m4a"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        samples.sample_rate, samples.pts = 8000, 0
        container.mux(stream.encode(samples))
        container.mux(stream.encode())
    with pytest.raises(VideoError) as caught:
        probe_video(path)
    assert str(caught.value) == f"{path}: no video stream"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError) as caught:
        read_video(tmp_path / "missing.mp4")
    assert str(caught.value) == f"{tmp_path / 'missing.mp4'}: no such file"


# ---------------------------------------------------------------------------
# Frame selection and fit modes
# ---------------------------------------------------------------------------


def test_reads_the_requested_frames(clip_path: Path) -> None:
    assert frame_numbers(read_video(clip_path)) == [0, 1, 2, 3, 4, 5]
    assert frame_numbers(read_video(clip_path, 3)) == [0, 1, 2]
    assert frame_numbers(read_video(clip_path, 2, start=3)) == [3, 4]
    # Enough frames: every mode reads the same consecutive frames.
    assert frame_numbers(read_video(clip_path, 4, start=1, fit="loop")) == [1, 2, 3, 4]
    assert frame_numbers(read_video(clip_path, 4, start=1, fit="resample")) == [1, 2, 3, 4]


def test_too_few_frames_message(clip_path: Path) -> None:
    with pytest.raises(VideoError) as caught:
        read_video(clip_path, 81)
    assert str(caught.value) == (
        f"{clip_path}: the video has 6 frames but 81 are needed; pass --loop (fit='loop': play it forward then "
        "backward) or --resample (fit='resample': spread its frames evenly) to use it anyway"
    )

    with pytest.raises(VideoError) as caught:
        read_video(clip_path, 5, start=2)
    assert str(caught.value).startswith(f"{clip_path}: the video has 6 frames, 4 of them from frame 2 on, but 5 are")

    with pytest.raises(VideoError) as caught:
        read_video(clip_path, 5, start=6)
    assert str(caught.value) == f"{clip_path}: the video has 6 frames, none from frame 6 on"


def test_loop_plays_forward_then_backward(clip_path: Path) -> None:
    frames = read_video(clip_path, 14, fit="loop")
    assert frames.shape == (14, 32, 32, 3)
    assert frame_numbers(frames) == [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, 1, 2, 3]
    assert frame_numbers(read_video(clip_path, 7, start=3, fit="loop")) == [3, 4, 5, 4, 3, 4, 5]


def test_resample_spreads_frames_evenly(clip_path: Path) -> None:
    frames = read_video(clip_path, 11, fit="resample")
    assert frames.shape == (11, 32, 32, 3)
    assert frame_numbers(frames) == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # 0, 0.5, 1, ... rounded half up


def test_index_helpers() -> None:
    assert ping_pong_indices(1, 4).tolist() == [0, 0, 0, 0]
    assert ping_pong_indices(2, 5).tolist() == [0, 1, 0, 1, 0]
    assert resample_indices(3, 3).tolist() == [0, 1, 2]
    assert resample_indices(2, 81)[[0, 40, 41, 80]].tolist() == [0, 1, 1, 1]


def test_bad_arguments(clip_path: Path) -> None:
    with pytest.raises(ValueError, match="fit must be one of error, loop, resample, got 'repeat'"):
        read_video(clip_path, 3, fit="repeat")
    with pytest.raises(ValueError, match="num_frames must be at least 1, got 0"):
        read_video(clip_path, 0)


# ---------------------------------------------------------------------------
# Preprocessing: an independent computation of upstream's rule
# ---------------------------------------------------------------------------

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit resampling


def pillow_bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's resampling taps for the triangle filter: (out, K) source indices and fixed-point weights."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 1.0 * filter_scale  # the triangle filter has support 1, widened when shrinking (antialias)
    taps = []
    for out in range(out_size):
        centre = (out + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), in_size)
        sources = np.arange(first, last)
        weights = np.maximum(0.0, 1.0 - np.abs((sources - centre + 0.5) / filter_scale))
        weights /= weights.sum()
        fixed = np.where(weights < 0, -0.5, 0.5) + weights * (1 << PRECISION_BITS)
        taps.append((sources, np.trunc(fixed).astype(np.int64)))
    width = max(len(s) for s, _ in taps)
    indices = np.zeros((out_size, width), dtype=np.int64)
    weights = np.zeros((out_size, width), dtype=np.int64)
    for out, (sources, fixed) in enumerate(taps):
        indices[out, : len(sources)], weights[out, : len(fixed)] = sources, fixed
    return indices, weights


def resample_axis(image: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """One separable pass, with Pillow's rounding (add half, shift) and clipping to 8 bits."""
    indices, weights = pillow_bilinear_taps(image.shape[axis], out_size)
    moved = np.moveaxis(image.astype(np.int64), axis, 0)  # (in, ...)
    total = np.full((out_size, *moved.shape[1:]), 1 << (PRECISION_BITS - 1), dtype=np.int64)
    for k in range(indices.shape[1]):
        total += moved[indices[:, k]] * weights[:, k].reshape(-1, *[1] * (moved.ndim - 1))
    return np.moveaxis(np.clip(total >> PRECISION_BITS, 0, 255), 0, axis).astype(np.uint8)


def reference_preprocess(frames: np.ndarray, new_size: tuple[int, int], crop_origin: tuple[int, int]) -> np.ndarray:
    """Resize every frame to ``new_size`` (h, w), horizontal pass first as Pillow does, crop 480 x 832, scale."""
    top, left = crop_origin
    out = []
    for frame in frames:
        if frame.shape[:2] != new_size:
            frame = resample_axis(resample_axis(frame, 1, new_size[1]), 0, new_size[0])
        out.append(frame[top : top + 480, left : left + 832])
    pixels = np.stack(out).astype(np.float32).transpose(3, 0, 1, 2)
    return (pixels / np.float32(255) - np.float32(0.5)) / np.float32(0.5)


@pytest.mark.parametrize(
    ("source_size", "new_size", "crop_origin"),
    [
        # 1280x720: scale max(0.65, 480/720) -> 853x480; left round(10.5) = 10 (half to even).
        ((720, 1280), (480, 853), (0, 10)),
        # Portrait 360x640: scale 832/360 -> 832x1479; top round(499.5) = 500.
        ((640, 360), (1479, 832), (500, 0)),
        # No resize (scale 1): only the crop rule acts, round(1.5) = 2 and round(2.5) = 2.
        ((483, 832), (483, 832), (2, 0)),
        ((485, 832), (485, 832), (2, 0)),
    ],
)
def test_preprocess_matches_upstream_rule(source_size, new_size, crop_origin) -> None:
    frames = np.random.default_rng(0).integers(0, 256, size=(2, *source_size, 3), dtype=np.uint8)
    pixels = preprocess_frames(frames, 480, 832)

    assert pixels.shape == (3, 2, 480, 832)
    assert pixels.dtype == torch.float32
    np.testing.assert_array_equal(pixels.numpy(), reference_preprocess(frames, new_size, crop_origin))


def test_preprocess_range() -> None:
    frames = np.zeros((1, 480, 832, 3), dtype=np.uint8)
    frames[0, :, 416:] = 255
    pixels = preprocess_frames(frames, 480, 832)
    assert pixels.min().item() == -1.0
    assert pixels.max().item() == 1.0
    assert torch.all(pixels[:, :, :, :416] == -1)
    assert torch.all(pixels[:, :, :, 416:] == 1)


# ---------------------------------------------------------------------------
# Postprocessing
# ---------------------------------------------------------------------------


def test_postprocess_truncates_like_upstream() -> None:
    values = torch.tensor([-1.5, -1.0, 127.9 / 127.5 - 1, 0.0, 0.999, 1.0, 1.2])  # -> 0 0 127 127 254 255 255
    video = values.reshape(1, 7, 1, 1).expand(3, 7, 1, 1)
    frames = postprocess_frames(video)

    assert frames.shape == (7, 1, 1, 3)
    assert frames.dtype == np.uint8
    assert frames[:, 0, 0, 0].tolist() == [0, 0, 127, 127, 254, 255, 255]


def test_postprocess_accepts_a_batch_of_one_and_bf16() -> None:
    video = torch.linspace(-1, 1, 3 * 2 * 4 * 6).reshape(1, 3, 2, 4, 6)
    frames = postprocess_frames(video.to(torch.bfloat16))
    expected = ((video[0].to(torch.bfloat16).float() + 1) * 127.5).clamp(0, 255).permute(1, 2, 3, 0)
    np.testing.assert_array_equal(frames, expected.numpy().astype(np.uint8))
    with pytest.raises(ValueError, match="one video at a time, got a batch of 2"):
        postprocess_frames(torch.zeros(2, 3, 1, 4, 4))


def test_postprocess_inverts_preprocess_on_unscaled_frames() -> None:
    frames = np.random.default_rng(1).integers(0, 256, size=(2, 480, 832, 3), dtype=np.uint8)
    restored = postprocess_frames(preprocess_frames(frames, 480, 832))
    assert np.abs(restored.astype(int) - frames).max() <= 1  # truncation can lose one level


# ---------------------------------------------------------------------------
# Side by side
# ---------------------------------------------------------------------------


def test_side_by_side_size_and_labels() -> None:
    source = np.full((3, 90, 160, 3), 60, dtype=np.uint8)
    result = np.full((3, 96, 128, 3), 200, dtype=np.uint8)
    plain = side_by_side(source, result, labels=None)
    labelled = side_by_side(source, result)

    assert plain.shape == labelled.shape == (3, 96, 170 + 128, 3)  # 160 * 96 / 90 = 170.7 -> even 170
    assert np.all(plain[:, :, :170] == 60)
    assert np.all(plain[:, :, 170:] == 200)
    assert np.any(labelled[0, :20, :60] != plain[0, :20, :60])  # source label
    assert np.any(labelled[0, :20, 170:230] != plain[0, :20, 170:230])  # result label
    np.testing.assert_array_equal(labelled[:, 40:], plain[:, 40:])


def test_side_by_side_inset_shows_the_moving_camera() -> None:
    frames = 9
    source = smooth_clip(frames, 48, 64)
    result = np.full((frames, 96, 160, 3), 30, dtype=np.uint8)
    trajectory = get_preset("arc-left")(num_frames=frames)
    plain = side_by_side(source, result, labels=None)
    with_inset = side_by_side(source, result, labels=None, trajectory=trajectory)

    assert with_inset.shape == plain.shape == (frames, 96, 128 + 160, 3)
    corner = (slice(0, 35), slice(128 + 160 - 35, 128 + 160))  # the inset: top right of the result panel
    assert np.abs(with_inset[(slice(None), *corner)].astype(int) - plain[(slice(None), *corner)]).mean() > 50
    np.testing.assert_array_equal(with_inset[:, 40:], plain[:, 40:])  # nothing else changes
    np.testing.assert_array_equal(with_inset[:, :, :128], plain[:, :, :128])
    assert np.any(with_inset[0][corner] != with_inset[-1][corner])  # the marker moves


def test_side_by_side_rejects_different_lengths() -> None:
    with pytest.raises(ValueError, match="source has 2 frames but result has 3"):
        side_by_side(np.zeros((2, 16, 16, 3), np.uint8), np.zeros((3, 16, 16, 3), np.uint8))


def test_frame_grid_scales_videos_of_another_size_to_the_first(tmp_path):
    """scripts/frame_grid.py sets models of different frame sizes side by side (session 17: 96x96 beside 128x128)."""
    import importlib.util

    path = Path(__file__).parents[1] / "scripts" / "frame_grid.py"
    spec = importlib.util.spec_from_file_location("frame_grid", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    write_video(tmp_path / "large.mp4", np.full((3, 32, 48, 3), 200, np.uint8))
    write_video(tmp_path / "small.mp4", np.full((3, 16, 24, 3), 40, np.uint8))
    image = script.mosaic([tmp_path / "large.mp4", tmp_path / "small.mp4"], [0, 2])
    gap = script.GAP
    assert image.shape == (2 * 32 + gap, 2 * 48 + gap, 3)
    assert (image[32 : 32 + gap] == 255).all()
    assert (image[:, 48 : 48 + gap] == 255).all()
    np.testing.assert_allclose(image[:32, :48].mean(), 200, atol=3)
    np.testing.assert_allclose(image[32 + gap :, 48 + gap :].mean(), 40, atol=3)  # scaled up, still the same grey
