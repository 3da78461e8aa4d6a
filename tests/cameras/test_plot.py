"""Trajectory plots: the plot frame, the frustums, and the PNG written (size, content, no overwrite)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from recammaster.cameras import plot
from recammaster.cameras.geometry import make_pose, yaw_pitch_roll
from recammaster.cameras.presets import OFFICIAL_PRESET_NAMES, get_preset
from recammaster.errors import OutputExistsError, TrajectoryError


def _expected_size(columns: int, rows: int, dpi: int) -> tuple[int, int]:
    width_in = columns * plot.PANEL_WIDTH_IN + 0.9
    height_in = rows * (plot.VIEW_3D_HEIGHT_IN + plot.FLAT_VIEW_HEIGHT_IN)
    return round(width_in * dpi), round(height_in * dpi)


def _near_color(image: np.ndarray, rgb: np.ndarray, tolerance: int = 40) -> int:
    """How many pixels lie within ``tolerance`` (per channel) of ``rgb``."""
    return int((np.abs(image.astype(int) - rgb).max(axis=-1) <= tolerance).sum())


# ---------------------------------------------------------------------------
# Geometry of the plot
# ---------------------------------------------------------------------------


def test_plot_frame_maps_opencv_to_right_forward_up():
    # Zoom-in moves along camera z (forward), translate-up along -y (up), pan-right turns to +x.
    _, zoom = plot.to_plot_frame(get_preset("zoom-in")(reach=1))
    np.testing.assert_allclose(zoom[-1], [0.0, 2.0, 0.0], atol=1e-12)
    _, rise = plot.to_plot_frame(get_preset("translate-up")(reach=1))
    np.testing.assert_allclose(rise[-1], [0.0, 0.0, 1.0], atol=1e-12)
    rotations, _ = plot.to_plot_frame(get_preset("pan-right")(reach=1))
    forward = rotations[-1] @ [0.0, 0.0, 1.0]
    np.testing.assert_allclose(forward, [np.sin(np.radians(20)), np.cos(np.radians(20)), 0.0], atol=1e-12)
    assert np.linalg.det(plot.PLOT_FROM_OPENCV) == pytest.approx(1.0)


def test_plot_frame_is_relative_to_the_first_camera():
    arc = get_preset("arc-left")()
    start = make_pose(yaw_pitch_roll(0.7, -0.2, 0.1), [3.0, -1.0, 12.0])
    for expected, actual in zip(plot.to_plot_frame(arc), plot.to_plot_frame(arc.placed_at(start)), strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-9)


def test_plot_frame_indices_are_latent_frames_plus_the_last():
    np.testing.assert_array_equal(plot.plot_frame_indices(81), np.arange(0, 81, 4))
    np.testing.assert_array_equal(plot.plot_frame_indices(10), [0, 4, 8, 9])
    np.testing.assert_array_equal(plot.plot_frame_indices(1), [0])


def test_frustum_is_a_pyramid_ahead_with_a_9_by_16_base():
    vertices = plot.frustum_vertices(np.eye(3)[None], np.zeros((1, 3)), size=2.0)[0]
    np.testing.assert_array_equal(vertices[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(vertices[1:, 2], plot.FRUSTUM_DEPTH * 2.0)
    width = vertices[2, 0] - vertices[1, 0]
    height = vertices[4, 1] - vertices[1, 1]
    assert width == pytest.approx(2 * plot.FRUSTUM_HALF_WIDTH * 2.0)
    assert height / width == pytest.approx(9 / 16)
    assert vertices[1, 1] < 0  # corner 1 is the top-left one: y points down in camera coordinates


# ---------------------------------------------------------------------------
# The PNG
# ---------------------------------------------------------------------------


def test_ten_presets_make_a_two_by_five_grid_png(tmp_path):
    trajectories = [get_preset(name)() for name in OFFICIAL_PRESET_NAMES]
    path = plot.plot_trajectories(trajectories, tmp_path / "presets.png", dpi=40)

    assert path == tmp_path / "presets.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == _expected_size(columns=5, rows=2, dpi=40)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 20  # not blank
    # Frustums are drawn in the colour map: the first and last frames' colours both appear.
    cmap = colormaps[plot.COLORMAP]
    for fraction in (0.0, 1.0):
        assert _near_color(pixels, np.array(cmap(fraction)[:3]) * 255) > 50


def test_single_trajectory_and_pure_rotation_give_one_column(tmp_path):
    path = plot.plot_trajectories([get_preset("tilt-up")()], tmp_path / "tilt.png", dpi=40)
    with Image.open(path) as image:
        assert image.size == _expected_size(columns=1, rows=1, dpi=40)
        assert np.asarray(image.convert("L")).std() > 20


def test_refuses_to_overwrite_and_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"keep me")
    trajectories = [get_preset("zoom-in")()]
    with pytest.raises(OutputExistsError, match="exists already"):
        plot.plot_trajectories(trajectories, path, dpi=30)
    assert path.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]  # no temporary left behind

    plot.plot_trajectories(trajectories, path, overwrite=True, dpi=30)
    with Image.open(path) as image:
        assert image.format == "PNG"


def test_no_trajectories_is_an_error(tmp_path):
    with pytest.raises(TrajectoryError, match="needs at least one trajectory"):
        plot.plot_trajectories([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
