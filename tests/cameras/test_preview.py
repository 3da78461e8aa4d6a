"""Trajectory previews: each camera move changes the rendered reference scene the way it should."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from PIL import Image

from recammaster.cameras.geometry import make_pose, yaw_pitch_roll
from recammaster.cameras.lens import Lens
from recammaster.cameras.presets import get_preset
from recammaster.cameras.preview import render_preview, write_preview_gif
from recammaster.cameras.trajectory import static
from recammaster.errors import OutputExistsError

STRIDE = 8  # 11 of 81 frames: fast, and still enough to see each motion's direction
CENTRE_X = (160 - 1) / 2


@cache
def _frames(name: str) -> np.ndarray:
    frames = render_preview(get_preset(name)(), stride=STRIDE)
    frames.setflags(write=False)
    return frames


def _red(frames: np.ndarray) -> np.ndarray:
    r, g, b = (frames[..., i].astype(int) for i in range(3))
    return (r > 80) & (r > 2.5 * g) & (r > 2.5 * b)


def _sky(frames: np.ndarray) -> np.ndarray:
    r, g, b = (frames[..., i].astype(int) for i in range(3))
    return (b > r + 25) & (b > g) & (b > 150) & (r > 90)  # pale: the blue sphere is no sky


def _grey(frames: np.ndarray) -> np.ndarray:
    channels = frames.astype(int)
    return channels.max(axis=-1) - channels.min(axis=-1) < 25


def _red_centroid_x(frame: np.ndarray) -> float:
    return float(np.nonzero(_red(frame))[1].mean())


def _horizon_row(frame: np.ndarray) -> float:
    """Median over columns of how many rows of sky a column starts with (objects block a few columns)."""
    sky = _sky(frame)
    leading_sky = np.where(sky.all(axis=0), sky.shape[0], np.argmin(sky, axis=0))
    return float(np.median(leading_sky))


def test_output_shape_and_type():
    frames = render_preview(get_preset("pan-left")(num_frames=9), width=32, height=18, stride=2)
    assert frames.shape == (5, 18, 32, 3)
    assert frames.dtype == np.uint8
    supersampled = render_preview(get_preset("pan-left")(num_frames=9), width=32, height=18, stride=4, supersample=True)
    assert supersampled.shape == (3, 18, 32, 3)


def test_static_camera_gives_identical_frames():
    frames = _frames("static")
    assert len(frames) == 11
    assert (frames == frames[0]).all()


def test_first_frame_red_box_centred_sky_above_ground_below():
    frame = _frames("static")[0]
    r, g, b = frame[45, 80].astype(int)
    assert r > 150
    assert max(g, b) < 60
    assert abs(_red_centroid_x(frame) - CENTRE_X) < 2
    assert _sky(frame[0]).mean() > 0.8  # the top row is sky (but for the yellow pillar)
    bottom = frame[-1]
    assert not _sky(bottom).any()
    assert _grey(bottom).mean() > 0.4  # the checkerboard ground, between the objects


def test_pan_right_moves_the_red_box_left():
    centroids = [_red_centroid_x(frame) for frame in _frames("pan-right")]
    assert np.all(np.diff(centroids) < 0)
    assert centroids[0] - centroids[-1] > 35  # 20 degrees at 138.6 px focal length: about 50 px


def test_pan_left_moves_the_red_box_right():
    centroids = [_red_centroid_x(frame) for frame in _frames("pan-left")]
    assert np.all(np.diff(centroids) > 0)


def test_tilt_up_moves_the_horizon_down():
    horizons = [_horizon_row(frame) for frame in _frames("tilt-up")]
    assert abs(horizons[0] - 45) <= 6
    assert np.all(np.diff(horizons) >= 0)
    assert horizons[-1] - horizons[0] > 15  # 10 degrees: about 24 px


def test_tilt_down_moves_the_horizon_up():
    horizons = [_horizon_row(frame) for frame in _frames("tilt-down")]
    assert horizons[0] - horizons[-1] > 15


def test_zoom_in_grows_the_red_box_and_zoom_out_shrinks_it():
    zoom_in = _red(_frames("zoom-in")).sum(axis=(1, 2))
    assert np.all(np.diff(zoom_in) > 0)
    assert zoom_in[-1] > 2.5 * zoom_in[0]
    zoom_out = _red(_frames("zoom-out")).sum(axis=(1, 2))
    assert zoom_out[-1] < 0.6 * zoom_out[0]


def test_arc_keeps_aiming_at_the_red_box():
    for name in ("arc-left", "arc-right"):
        frames = _frames(name)
        assert not (frames[-1] == frames[0]).all()
        for frame in frames:
            assert abs(_red_centroid_x(frame) - CENTRE_X) < 8, name


def test_scene_is_anchored_to_the_first_camera():
    arc = get_preset("arc-left")(num_frames=9)
    start = make_pose(yaw_pitch_roll(1.1, 0.3, -0.2), [40.0, -3.0, 7.0])
    here = render_preview(arc, stride=4).astype(int)
    there = render_preview(arc.placed_at(start), stride=4).astype(int)
    assert (np.abs(here - there).max(axis=-1) > 2).mean() < 1e-3  # at most a few edge pixels


def test_longer_lens_magnifies():
    trajectory = static(num_frames=1)
    wide = _red(render_preview(trajectory)).sum()
    # The box's bottom leaves the frame, so its area grows less than the squared magnification.
    assert _red(render_preview(trajectory, fov_deg=30)).sum() > 2 * wide
    assert _red(render_preview(trajectory, lens=Lens(50, 2.4))).sum() > 2 * wide


def test_gif_round_trip(tmp_path):
    path = write_preview_gif(get_preset("pan-right")(), tmp_path / "pan.gif", fps=10, stride=STRIDE)
    with Image.open(path) as image:
        assert image.format == "GIF"
        assert image.n_frames == 11
        assert image.size == (160, 90)
        assert image.info["duration"] == 100
        image.seek(10)
        last = np.asarray(image.convert("RGB"))
    # GIF palettes are lossy; the red box must still sit where the renderer put it.
    assert abs(_red_centroid_x(last) - _red_centroid_x(_frames("pan-right")[-1])) < 1


def test_gif_refuses_to_overwrite(tmp_path):
    path = tmp_path / "preview.gif"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="exists already"):
        write_preview_gif(get_preset("static")(num_frames=5), path)
    assert path.read_bytes() == b"keep me"
    write_preview_gif(get_preset("static")(num_frames=5), path, overwrite=True, width=32, height=18)
    with Image.open(path) as image:
        assert image.size == (32, 18)


@pytest.mark.parametrize(("option", "value"), [("stride", 0), ("width", 0), ("fov_deg", 180.0)])
def test_bad_options_are_refused(option, value):
    with pytest.raises(ValueError, match=option):
        render_preview(static(num_frames=1), **{option: value})
