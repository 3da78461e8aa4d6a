"""The ray caster against analytic answers: a sphere's image size and depth, shadows, masks."""

import math

import numpy as np
import torch

from recammaster.cameras.geometry import look_at, make_pose
from recammaster.data.synth.render import TEXTURE_IDS, RenderScene, render

SIZE = 64
FOCAL = 48.0
INTRINSICS = np.array([[FOCAL, 0.0, SIZE / 2], [0.0, FOCAL, SIZE / 2], [0.0, 0.0, 1.0]])


def _scene(spheres=(), planes=(), sun=(0.0, 0.0, 1.0)) -> RenderScene:
    """Spheres (centre, radius) with character ids 1, 2, ...; planes (axis, position); one frame."""
    count = len(planes) + len(spheres)
    return RenderScene(
        plane_axis=torch.tensor([p[0] for p in planes], dtype=torch.int64),
        plane_position=torch.tensor([p[1] for p in planes], dtype=torch.float32),
        box_low=torch.zeros(0, 3),
        box_high=torch.zeros(0, 3),
        sphere_centre=torch.tensor([[s[0] for s in spheres]], dtype=torch.float32).reshape(1, -1, 3),
        sphere_radius=torch.tensor([s[1] for s in spheres], dtype=torch.float32),
        capsule_start=torch.zeros(1, 0, 3),
        capsule_end=torch.zeros(1, 0, 3),
        capsule_radius=torch.zeros(0),
        texture=torch.full((count,), TEXTURE_IDS["flat"]),
        colour=torch.full((count, 3), 0.8),
        colour2=torch.full((count, 3), 0.8),
        scale=torch.ones(count),
        character=torch.tensor([0] * len(planes) + list(range(1, len(spheres) + 1))),
        light_kind="sun",
        light_vector=torch.tensor(sun, dtype=torch.float32) / np.linalg.norm(sun),
        light_colour=torch.ones(3),
        ambient=0.3,
        sky_horizon=torch.tensor([0.8, 0.8, 0.9]),
        sky_zenith=torch.tensor([0.2, 0.4, 0.8]),
    )


def test_sphere_ahead_is_centred_with_the_analytic_size_and_depth():
    distance, radius = 6.0, 1.0
    scene = _scene(spheres=[((0.0, 0.0, distance), radius)])
    identity = np.eye(4)[None, None]  # camera at the origin looking along +z
    out = render(scene, identity, INTRINSICS, SIZE, depth=True, masks=True)
    mask = out.masks[0, 0] == 1
    rows, columns = np.nonzero(mask)
    assert abs(rows.mean() - (SIZE - 1) / 2) < 0.2
    assert abs(columns.mean() - (SIZE - 1) / 2) < 0.2
    # The silhouette's angular radius is asin(r / D); on the image plane that is f tan(asin(r / D)) pixels.
    expected_px = FOCAL * math.tan(math.asin(radius / distance))
    assert abs(math.sqrt(mask.sum() / math.pi) - expected_px) < 0.5
    centre = out.depth[0, 0, SIZE // 2 - 1 : SIZE // 2 + 1, SIZE // 2 - 1 : SIZE // 2 + 1]
    # The four central pixels look half a pixel off the axis: their rays meet the sphere at
    # t = D cos(a) - sqrt(r^2 - D^2 sin^2(a)), at depth t cos(a) along the optical axis.
    angle = math.atan(math.hypot(0.5, 0.5) / FOCAL)
    t = distance * math.cos(angle) - math.sqrt(radius**2 - (distance * math.sin(angle)) ** 2)
    assert np.allclose(centre, t * math.cos(angle), atol=1e-4)
    assert np.all(np.isinf(out.depth[0, 0][~mask]))  # nothing else: sky
    sky = out.images[0, 0, 0, 0]
    assert not np.array_equal(sky, out.images[0, 0, SIZE // 2, SIZE // 2])


def test_point_in_shadow_is_darker_than_a_lit_one():
    # A sun overhead and a ball 2 m above the origin: the ground at the origin lies in its shadow.
    scene = _scene(spheres=[((0.0, 0.0, 2.0), 0.5)], planes=[(2, 0.0)])
    poses = []
    for target in ((0.0, 0.0, 0.0), (3.0, 0.0, 0.0)):
        position = np.add(target, (0.0, -5.0, 5.0))  # the view passes the ball, 1.4 m off its centre
        poses.append(make_pose(look_at(position, np.array(target), np.array([0.0, 0.0, 1.0])), position))
    out = render(scene, np.stack(poses)[:, None], INTRINSICS, SIZE, masks=True)
    shaded = out.images[0, 0, SIZE // 2, SIZE // 2].astype(int)
    lit = out.images[1, 0, SIZE // 2, SIZE // 2].astype(int)
    assert out.masks[0, 0, SIZE // 2, SIZE // 2] == 0  # the centre ray reaches the ground, not the ball
    assert lit.sum() > 1.5 * shaded.sum()


def test_supersampling_keeps_the_picture():
    scene = _scene(spheres=[((0.0, 0.0, 6.0), 1.0)])
    plain = render(scene, np.eye(4)[None, None], INTRINSICS, SIZE).images.astype(int)
    smooth = render(scene, np.eye(4)[None, None], INTRINSICS, SIZE, supersample=True).images.astype(int)
    assert smooth.shape == plain.shape
    assert np.abs(smooth - plain).mean() < 3.0  # only the edge pixels change
