"""Visible and revealed regions from the renderer's depth, and PSNR/SSIM over a mask.

Hand-built scenes (a wall, a floor, a thin occluder) viewed by axis-aligned cameras with a 32-pixel focal length
give revealed strips whose width follows from similar triangles: a sideways move of b metres shifts a surface at
depth Z by 32 b / Z pixels. The numbers are chosen so that every shift is a whole number of pixels, and pixel
centres never fall on a pixel edge.
"""

import math
import re

import numpy as np
import pytest
import torch

from recammaster.data.synth.engine import make_scene, to_render_scene
from recammaster.data.synth.render import TEXTURE_IDS, RenderScene, render_tensors
from recammaster.data.synth.stream import crop_intrinsics
from recammaster.evaluation.metrics import psnr, ssim, ssim_map
from recammaster.evaluation.regions import masked_psnr, masked_ssim, region_scores, visible_mask

SIZE = 32
K = np.array([[32.0, 0.0, 16.0], [0.0, 32.0, 16.0], [0.0, 0.0, 1.0]])
LEVEL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # x east, y down, z north: a level camera


def flat_scene(planes: list[tuple[int, float]], boxes: list[tuple[tuple, tuple]] = (), frames: int = 2) -> RenderScene:
    """Planes (world axis, position) and boxes (low, high), all mottled, nothing moving."""
    materials = len(planes) + len(boxes)
    none = torch.zeros((frames, 0, 3))
    return RenderScene(
        plane_axis=torch.tensor([axis for axis, _ in planes], dtype=torch.int64),
        plane_position=torch.tensor([position for _, position in planes], dtype=torch.float32),
        box_low=torch.tensor([low for low, _ in boxes], dtype=torch.float32).reshape(-1, 3),
        box_high=torch.tensor([high for _, high in boxes], dtype=torch.float32).reshape(-1, 3),
        sphere_centre=none, sphere_radius=torch.zeros(0),
        capsule_start=none, capsule_end=none, capsule_radius=torch.zeros(0),
        texture=torch.full((materials,), TEXTURE_IDS["noise"], dtype=torch.int64),
        colour=torch.tensor([[0.9, 0.5, 0.2]] * materials), colour2=torch.tensor([[0.1, 0.3, 0.6]] * materials),
        scale=torch.full((materials,), 0.3), character=torch.zeros(materials, dtype=torch.int64),
        light_kind="sun", light_vector=torch.tensor([0.0, -0.6, -0.8]), light_colour=torch.ones(3), ambient=0.5,
        sky_horizon=torch.tensor([0.8, 0.9, 1.0]), sky_zenith=torch.tensor([0.2, 0.4, 0.9]),
    )  # fmt: skip


def pose(rotation: np.ndarray | None = None, position: tuple[float, float, float] = (0, 0, 0), frames: int = 2):
    matrix = np.eye(4)
    matrix[:3, :3] = np.eye(3) if rotation is None else rotation
    matrix[:3, 3] = position
    return np.repeat(matrix[None], frames, axis=0)


def views(scene: RenderScene, target: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images and depth (2, frames, H, W[, 3]) of the target and the source camera."""
    out = render_tensors(scene, np.stack([target, source]), K, SIZE, depth=True)
    return out.images.numpy(), out.depth.numpy()


def revealed_columns(visible: np.ndarray) -> list[int]:
    """The columns with revealed pixels, checking that each column is all visible or all revealed."""
    columns = visible.all(axis=(0, 1))
    assert np.array_equal(columns, visible.any(axis=(0, 1))), "a column is partly revealed"
    return np.flatnonzero(~columns).tolist()


# ---------------------------------------------------------------------------
# Visibility
# ---------------------------------------------------------------------------


def test_the_source_camera_itself_sees_every_pixel_and_regions_are_the_whole_frame():
    spec = make_scene(1000, 2, 5)  # outdoors, with sky
    poses = spec.trajectories[0].poses[None, :3].copy()  # the trajectory's array is read-only
    out = render_tensors(to_render_scene(spec), poses, crop_intrinsics(spec.lens, SIZE, SIZE), SIZE, depth=True)
    images, depth = out.images.numpy()[0], out.depth.numpy()[0]
    assert np.isinf(depth).any()
    assert np.isfinite(depth).any()
    visible = visible_mask(depth, depth, poses[0], poses[0], crop_intrinsics(spec.lens, SIZE, SIZE))
    assert visible.all()

    prediction = np.clip(images.astype(int) + np.random.default_rng(0).integers(-20, 21, images.shape), 0, 255)
    prediction = prediction.astype(np.uint8)
    scores = region_scores(prediction, images, visible)
    np.testing.assert_array_equal(scores.visible_fraction, 1.0)
    np.testing.assert_array_equal(scores.revealed_fraction, 0.0)
    np.testing.assert_allclose(scores.psnr_visible, psnr(prediction, images), rtol=1e-12)
    np.testing.assert_allclose(scores.ssim_visible, ssim(prediction, images), rtol=1e-12)
    assert np.isnan(scores.psnr_revealed).all()  # nothing is revealed
    assert np.isnan(scores.ssim_revealed).all()


@pytest.mark.parametrize(("move", "expected"), [(0.5, [28, 29, 30, 31]), (-0.5, [0, 1, 2, 3])])
def test_a_sideways_move_reveals_a_strip_of_32_b_over_z_pixels_on_its_side(move, expected):
    """Wall at 4 m, the target 0.5 m right (left) of the source: 4 new columns at the right (left) edge."""
    images, depth = views(flat_scene([(2, 4.0)]), pose(position=(move, 0, 0)), pose())
    visible = visible_mask(depth[0], depth[1], pose(position=(move, 0, 0)), pose(), K)
    assert revealed_columns(visible) == expected

    # A prediction wrong by 10 grey levels on the revealed strip only: exact PSNR on each region.
    target = images[0]
    assert target.min() >= 10
    prediction = np.where(visible[..., None], target, np.clip(target, 10, None) - 10).astype(np.uint8)
    scores = region_scores(prediction, target, visible)
    np.testing.assert_array_equal(scores.visible_fraction, 28 / 32)
    np.testing.assert_array_equal(scores.psnr_visible, math.inf)
    np.testing.assert_allclose(scores.psnr_revealed, 20 * math.log10(255 / 10), rtol=1e-12)
    # The strip lies within 5 pixels of the border, where no SSIM window is centred: no revealed SSIM.
    assert np.isnan(scores.ssim_revealed).all()


def test_revealed_ssim_averages_the_windows_centred_in_the_strip():
    """A 1 m move at 4 m reveals 8 columns, 24..31; windows centred on 24..26 are map positions 19..21."""
    images, depth = views(flat_scene([(2, 4.0)]), pose(position=(1.0, 0, 0)), pose())
    visible = visible_mask(depth[0], depth[1], pose(position=(1.0, 0, 0)), pose(), K)
    assert revealed_columns(visible) == list(range(24, 32))
    prediction = np.clip(images[1].astype(int) + 7, 0, 255).astype(np.uint8)  # any other video will do
    local = ssim_map(prediction, images[0])
    np.testing.assert_allclose(masked_ssim(prediction, images[0], ~visible), local[:, :, 19:22].mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(masked_ssim(prediction, images[0], visible), local[:, :, :19].mean(axis=(1, 2, 3)))


@pytest.mark.parametrize(
    ("target_x", "source_x", "expected"),
    [
        (1.0, 0.0, [12, 13, 14, 15, 28, 29, 30, 31]),  # moved right: the wall right of the occluder, the right edge
        (0.0, 1.0, [0, 1, 2, 3, 8, 9, 10, 11]),  # moved left: the wall left of it, the left edge
    ],
)
def test_an_occluder_hides_the_wall_behind_it_from_the_source(target_x, source_x, expected):
    """Wall at 8 m (shift 4 px per metre), a 1 m wide board at 4 m (8 px per metre), the camera moved 1 m.

    From the source at x = 0 the board covers columns 12..19 and hides the wall over x in [-1, 1]; the
    target at x = 1 sees the board at columns 4..11, the wall it hid at 12..15, and 4 new columns at the edge.
    """
    scene = flat_scene([(2, 8.0)], boxes=[((-0.5, -50.0, 4.0), (0.5, 50.0, 4.05))])
    target, source = pose(position=(target_x, 0, 0)), pose(position=(source_x, 0, 0))
    _, depth = views(scene, target, source)
    board = np.isclose(depth[0], 4.0, rtol=1e-5)
    assert np.flatnonzero(board.all(axis=(0, 1))).tolist() == list(range(4, 12) if target_x else range(12, 20))
    visible = visible_mask(depth[0], depth[1], target, source, K)
    assert revealed_columns(visible) == expected
    assert visible[board].all()  # the board itself is seen from both


def test_turning_the_camera_reveals_sky_and_ground_alike_by_direction():
    """A pure turn has no parallax: a pixel, sky or ground, is visible iff its direction is in the source frame."""
    turn = math.radians(20)
    yaw = np.array([[math.cos(turn), -math.sin(turn), 0], [math.sin(turn), math.cos(turn), 0], [0, 0, 1]])
    target, source = pose(yaw @ LEVEL, (0, 0, 1.5)), pose(LEVEL, (0, 0, 1.5))
    _, depth = views(flat_scene([(2, 0.0)]), target, source)
    visible = visible_mask(depth[0], depth[1], target, source, K)

    expected = np.zeros((SIZE, SIZE), bool)  # direction by direction, with no depth at all
    for row in range(SIZE):
        for column in range(SIZE):
            direction = source[0, :3, :3].T @ target[0, :3, :3] @ np.linalg.solve(K, [column + 0.5, row + 0.5, 1])
            u, v = K[0, 0] * direction[0] / direction[2] + 16, K[1, 1] * direction[1] / direction[2] + 16
            expected[row, column] = direction[2] > 0 and 0 <= u < SIZE and 0 <= v < SIZE
    np.testing.assert_array_equal(visible, np.broadcast_to(expected, visible.shape))
    sky = np.isinf(depth[0])
    for region in (sky, ~sky):  # both kinds of pixel fall on both sides
        assert visible[region].any()
        assert not visible[region].all()


def test_a_floor_at_grazing_angles_stays_visible_when_the_camera_moves_forward():
    """Stepping forward keeps every point in view; the floor's depth changes fast near the horizon, the mask must
    not mistake that for occlusion."""
    target, source = pose(LEVEL, (0, 0.5, 1.5)), pose(LEVEL, (0, 0, 1.5))
    _, depth = views(flat_scene([(2, 0.0)]), target, source)
    assert visible_mask(depth[0], depth[1], target, source, K).all()


def test_sky_behind_something_the_source_sees_is_revealed():
    """Depth by hand: the target sees only sky, the source sees a surface 5 m away over a block of pixels."""
    target_depth = np.full((1, 16, 16), np.inf, np.float32)
    source_depth = target_depth.copy()
    source_depth[:, 4:8, 6:12] = 5.0
    intrinsics = np.array([[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]])
    visible = visible_mask(target_depth, source_depth, pose(frames=1), pose(frames=1), intrinsics)
    np.testing.assert_array_equal(~visible, source_depth < np.inf)


# ---------------------------------------------------------------------------
# Metrics over a mask
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(3)
    target = generator.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    prediction = np.clip(target.astype(int) + generator.integers(-40, 41, target.shape), 0, 255).astype(np.uint8)
    return prediction, target


def test_an_all_true_mask_gives_the_whole_frame_metrics(pair):
    prediction, target = pair
    everything = np.ones(target.shape[:3], bool)
    np.testing.assert_allclose(masked_psnr(prediction, target, everything), psnr(prediction, target), rtol=1e-12)
    np.testing.assert_allclose(masked_ssim(prediction, target, everything), ssim(prediction, target), rtol=1e-12)


def test_a_rectangle_mask_equals_cropping(pair):
    """PSNR over the pixels of a rectangle; SSIM over the map positions whose window centre lies in it."""
    prediction, target = pair
    mask = np.zeros(target.shape[:3], bool)
    mask[:, 2:12, 7:20] = True
    np.testing.assert_allclose(masked_psnr(prediction, target, mask),
                               psnr(prediction[:, 2:12, 7:20], target[:, 2:12, 7:20]), rtol=1e-12)  # fmt: skip
    local = ssim_map(prediction, target)  # centre (r, c) is position (r - 5, c - 5); rows 0..9, columns 2..14
    np.testing.assert_allclose(masked_ssim(prediction, target, mask), local[:, 0:7, 2:15].mean(axis=(1, 2, 3)))


def test_an_empty_region_has_no_value(pair):
    prediction, target = pair
    mask = np.zeros(target.shape[:3], bool)
    mask[1, 10, 12] = True  # one pixel in frame 1 only
    assert np.isnan(masked_psnr(prediction, target, mask)[[0, 2]]).all()
    assert np.isfinite(masked_psnr(prediction, target, mask)[1])
    np.testing.assert_allclose(masked_ssim(prediction, target, mask)[1], ssim_map(prediction, target)[1, 5, 7].mean())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"target_depth": np.ones((2, 8, 9))}, "target_depth and source_depth differ in shape: (2, 8, 9) vs (2, 8, 8)"),
        ({"source_depth": np.ones((8, 8))}, "source_depth must be (T, H, W) floating-point depth, got float64 (8, 8)"),
        ({"target_depth": np.ones((2, 8, 8), int)}, "target_depth must be (T, H, W) floating-point depth, got int64 "
                                                    "(2, 8, 8)"),
        ({"target_depth": np.zeros((2, 8, 8))}, "target_depth must be positive metres along the camera z axis (inf "
                                                "for sky), found 128 zero, negative or NaN values"),
        ({"source_poses": np.eye(4)[None]}, "source_poses must be (2, 4, 4) camera-to-world poses, one per frame, got "
                                            "(1, 4, 4)"),
        ({"intrinsics": np.eye(4)}, "intrinsics must be a 3x3 pinhole matrix, got shape (4, 4)"),
        ({"tolerance": -0.1}, "tolerance must be 0 or more, got -0.1"),
    ],
)  # fmt: skip
def test_bad_views_are_refused_naming_the_argument(arguments, message):
    views = {"target_depth": np.ones((2, 8, 8)), "source_depth": np.ones((2, 8, 8)), "target_poses": pose(),
             "source_poses": pose(), "intrinsics": K} | arguments  # fmt: skip
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        visible_mask(**views)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.ones((3, 20, 24), np.uint8), "mask must be a boolean (T, H, W) array, got uint8"),
        (np.ones((3, 20, 23), bool), "mask must have the videos' (T, H, W) shape (3, 20, 24), got (3, 20, 23)"),
    ],
)
def test_bad_masks_are_refused(pair, mask, message):
    prediction, target = pair
    for metric in (masked_psnr, masked_ssim, region_scores):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            metric(prediction, target, mask)


def test_videos_of_different_shapes_are_refused(pair):
    prediction, target = pair
    message = "prediction and target differ in shape: (3, 20, 24, 3) vs (3, 20, 20, 3)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        masked_psnr(prediction, target[:, :, :20], np.ones((3, 20, 24), bool))
