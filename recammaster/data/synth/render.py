"""A batched ray caster in torch: many cameras x many frames of a scene of simple primitives, on CPU or GPU.

The textbook ray caster (one primary ray per pixel, or 2x2 with supersampling; nearest hit; Lambert
shading; one shadow ray towards a sun or a lamp; a sky gradient for misses), written in torch so the
same code runs on CUDA. :mod:`recammaster.cameras.preview` is the numpy ancestor; the first experiment
(spec ``first-experiment.md``) rendered 3,166 images/s at 64x64 on an H100 with such a caster.

Primitives: axis-aligned planes and boxes (the slab method), spheres, and capsules (a segment swept by
a sphere: an infinite cylinder clipped to the segment, plus a sphere at each end). Spheres and capsules
may move: they are given per frame. Rays are processed as whole images, ``(images, pixels)``, so a
moving primitive's per-frame parameters broadcast over an image's pixels and nothing is gathered per
ray. Work is split into chunks of about ``chunk_rays`` rays to bound memory.

Every surface has a procedural texture evaluated at the hit point (flat, checker, stripes, value noise)
that fades to its mean colour where a pixel covers more than a tile, instead of aliasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

Array = np.ndarray
Tensor = torch.Tensor

TEXTURE_IDS = {"flat": 0, "checker": 1, "stripes": 2, "noise": 3}
EPSILON = 1e-4  # minimum hit distance, metres
SHADOW_OFFSET = 2e-3  # shadow rays start this far off the surface, so they do not hit it again
SUN_DISK_COS = math.cos(math.radians(2.0))
DEFAULT_CHUNK_RAYS = 1 << 17


@dataclass
class RenderScene:
    """A scene as tensors. Materials are indexed in the order planes, boxes, spheres, capsules.

    Spheres and capsules are per frame (F leading); ``character`` gives each primitive's character
    id (0 for none, 1 for the first character ...), which the masks report.
    """

    plane_axis: Tensor  # (P,) long: 0 x, 1 y, 2 z
    plane_position: Tensor  # (P,)
    box_low: Tensor  # (B, 3)
    box_high: Tensor  # (B, 3)
    sphere_centre: Tensor  # (F, S, 3)
    sphere_radius: Tensor  # (S,)
    capsule_start: Tensor  # (F, C, 3)
    capsule_end: Tensor  # (F, C, 3)
    capsule_radius: Tensor  # (C,)
    texture: Tensor  # (M,) long, TEXTURE_IDS
    colour: Tensor  # (M, 3)
    colour2: Tensor  # (M, 3)
    scale: Tensor  # (M,) metres per tile
    character: Tensor  # (M,) long
    light_kind: str  # "sun" or "point"
    light_vector: Tensor  # (3,) towards the sun, or the lamp's position
    light_colour: Tensor  # (3,)
    ambient: float
    sky_horizon: Tensor  # (3,)
    sky_zenith: Tensor  # (3,)
    fog_distance: float = math.inf  # metres; surfaces fade into the horizon colour (outdoors)

    @property
    def group_sizes(self) -> tuple[int, int, int, int]:
        return len(self.plane_axis), len(self.box_low), len(self.sphere_radius), len(self.capsule_radius)

    def to(self, device: torch.device | str) -> RenderScene:
        moved = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.__dict__.items()}
        return RenderScene(**moved)


@dataclass
class RenderOutput:
    images: Array  # (cameras, frames, H, W, 3) uint8
    depth: Array | None  # (cameras, frames, H, W) float32 metres along the camera z axis; inf for sky
    masks: Array | None  # (cameras, frames, H, W) uint8 character id, 0 for none


# ---------------------------------------------------------------------------
# Intersections: each returns hit distances (N, K), inf for a miss
# ---------------------------------------------------------------------------
# Rays and primitives are passed as components (structure of arrays): a ray's origin is a tuple of three
# (N, 1) tensors, a primitive parameter three (K,) tensors, or three (N, K) tensors where each ray has
# its own frame. Every operation then works on contiguous (N, K) tensors, with no reductions over a
# trailing axis of three, which are slow on CPU and waste memory traffic on GPU.

Vec = tuple[Tensor, Tensor, Tensor]


def _safe(d: Tensor) -> Tensor:
    """Directions with no exact zeros, so divisions give huge values instead of nan."""
    return torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)


def _dot(a: Vec, b: Vec) -> Tensor:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _minus(a: Vec, b: Vec) -> Vec:
    return a[0] - b[0], a[1] - b[1], a[2] - b[2]


def _columns(v: Tensor) -> Vec:
    """(..., 3) -> three (...,) contiguous tensors."""
    x, y, z = torch.movedim(v, -1, 0).contiguous()
    return x, y, z


def _plane_hits(o: Tensor, d: Tensor, axis: Tensor, position: Tensor) -> Tensor:
    """o, d (N, 3); planes (P,) -> (N, P)."""
    t = (position - o[:, axis]) / _safe(d)[:, axis]
    return torch.where(t > EPSILON, t, torch.full_like(t, math.inf))


def _box_hits(o: Vec, inverse: Vec, low: Vec, high: Vec) -> Tensor:
    """The slab method; ``inverse`` holds 1 / d per component."""
    enter = leave = None
    for axis in range(3):
        t_low = (low[axis] - o[axis]) * inverse[axis]
        t_high = (high[axis] - o[axis]) * inverse[axis]
        near, far = torch.minimum(t_low, t_high), torch.maximum(t_low, t_high)
        enter = near if enter is None else torch.maximum(enter, near)
        leave = far if leave is None else torch.minimum(leave, far)
    return torch.where((enter <= leave) & (enter > EPSILON), enter, torch.full_like(enter, math.inf))


def _root(half_b: Tensor, c: Tensor) -> Tensor:
    """Near root of t^2 + 2 half_b t + c = 0 when it lies ahead of the ray, else inf."""
    discriminant = half_b * half_b - c
    t = -half_b - torch.sqrt(discriminant.clamp(min=0.0))
    return torch.where((discriminant >= 0) & (t > EPSILON), t, torch.full_like(t, math.inf))


def _sphere_hits(o: Vec, d: Vec, centre: Vec, radius: Tensor) -> Tensor:
    """Near roots of |o + t d - c| = r for unit d."""
    offset = _minus(o, centre)
    return _root(_dot(offset, d), _dot(offset, offset) - radius * radius)


def _capsule_hits(o: Vec, d: Vec, start: Vec, axis: Vec, radius: Tensor) -> Tensor:
    """Capsule from ``start`` to ``start + axis``: the cylinder part where the hit projects inside the
    segment, else the end spheres.

    For a ray starting outside, the nearest of the valid cylinder hit and both end-sphere hits is the
    capsule's entry point: a sphere hit inside the cylinder lies inside the capsule, so it is never
    the nearest. The end spheres reuse the cylinder's dot products.
    """
    offset = _minus(o, start)
    axis_axis = _dot(axis, axis)
    axis_d = _dot(axis, d)
    axis_offset = _dot(axis, offset)
    d_offset = _dot(d, offset)
    offset_offset = _dot(offset, offset)
    radius2 = radius * radius
    a = axis_axis - axis_d * axis_d
    b = axis_axis * d_offset - axis_offset * axis_d
    c = axis_axis * offset_offset - axis_offset * axis_offset - radius2 * axis_axis
    discriminant = b * b - a * c
    t = (-b - torch.sqrt(discriminant.clamp(min=0.0))) / a.clamp(min=1e-12)
    along = axis_offset + t * axis_d
    body = (discriminant >= 0) & (a > 1e-12) & (along > 0) & (along < axis_axis) & (t > EPSILON)
    t = torch.where(body, t, torch.full_like(t, math.inf))
    start_cap = _root(d_offset, offset_offset - radius2)
    # |offset - axis|^2 = offset.offset - 2 axis.offset + axis.axis, and d.(offset - axis) = d.offset - d.axis
    end_cap = _root(d_offset - axis_d, offset_offset - 2 * axis_offset + axis_axis - radius2)
    return torch.minimum(t, torch.minimum(start_cap, end_cap))


# ---------------------------------------------------------------------------
# Primitive groups: what every ray meets, and what only rays through a bounding sphere meet
# ---------------------------------------------------------------------------


@dataclass
class _FixedGroup:
    """Primitives that never move (planes, boxes, props): tested against every ray."""

    box_low: Vec  # (B,) each
    box_high: Vec
    spheres: Tensor  # (Ks,) local sphere indices
    sphere_centre: Vec  # (Ks,) each
    sphere_radius: Tensor  # (Ks,)
    capsules: Tensor  # (Kc,) local capsule indices
    capsule_start: Vec  # (Kc,) each
    capsule_axis: Vec  # (Kc,) each: end - start
    capsule_radius: Tensor  # (Kc,)
    material: Tensor  # (planes + boxes + Ks + Kc,) material index of each hit column


@dataclass
class _MovingGroup:
    """One character's spheres and capsules, with a bounding sphere per frame that holds them all.

    A ray is tested against the group's primitives only where it passes through the bounding sphere
    before anything nearer it has already hit.
    """

    spheres: Tensor  # (3, F, Ks): centre components
    sphere_radius: Tensor  # (Ks,)
    capsules: Tensor  # (6, F, Kc): start and axis (end - start) components
    capsule_radius: Tensor  # (Kc,)
    material: Tensor  # (Ks + Kc,)
    bound_centre: Tensor  # (F, 3)
    bound_radius: Tensor  # (F,)


@dataclass
class _Groups:
    fixed: _FixedGroup
    moving: list[_MovingGroup]


def _is_still(values: Tensor) -> Tensor:
    """Per primitive: whether its (F, K, 3) parameters are the same at every frame."""
    return (values == values[:1]).all(dim=2).all(dim=0)


def _group_primitives(scene: RenderScene) -> _Groups:
    """Split the scene: characters (and anything else that moves) get bounding spheres, the rest does not."""
    planes, boxes, spheres, _ = scene.group_sizes
    device = scene.box_low.device
    sphere_owner = scene.character[planes + boxes : planes + boxes + spheres]
    capsule_owner = scene.character[planes + boxes + spheres :]
    sphere_still = _is_still(scene.sphere_centre) & (sphere_owner == 0)
    capsule_still = _is_still(scene.capsule_start) & _is_still(scene.capsule_end) & (capsule_owner == 0)
    # Moving primitives of no character share one group (id 0); each character has its own.
    sphere_owner = torch.where(sphere_still, torch.full_like(sphere_owner, -1), sphere_owner)
    capsule_owner = torch.where(capsule_still, torch.full_like(capsule_owner, -1), capsule_owner)

    fixed_spheres = sphere_still.nonzero().flatten()
    fixed_capsules = capsule_still.nonzero().flatten()
    empty = scene.box_low[:0]
    capsule_start = scene.capsule_start[0, fixed_capsules] if len(scene.capsule_start) else empty
    capsule_end = scene.capsule_end[0, fixed_capsules] if len(scene.capsule_end) else empty
    fixed = _FixedGroup(
        box_low=_columns(scene.box_low),
        box_high=_columns(scene.box_high),
        spheres=fixed_spheres,
        sphere_centre=_columns(scene.sphere_centre[0, fixed_spheres] if len(scene.sphere_centre) else empty),
        sphere_radius=scene.sphere_radius[fixed_spheres],
        capsules=fixed_capsules,
        capsule_start=_columns(capsule_start),
        capsule_axis=_columns(capsule_end - capsule_start),
        capsule_radius=scene.capsule_radius[fixed_capsules],
        material=torch.cat(
            [
                torch.arange(planes + boxes, device=device),
                fixed_spheres + planes + boxes,
                fixed_capsules + planes + boxes + spheres,
            ]
        ),
    )
    moving = []
    owners = sorted((set(sphere_owner.tolist()) | set(capsule_owner.tolist())) - {-1})
    for owner in owners:
        local_spheres = (sphere_owner == owner).nonzero().flatten()
        local_capsules = (capsule_owner == owner).nonzero().flatten()
        centres = scene.sphere_centre[:, local_spheres]
        starts, ends = scene.capsule_start[:, local_capsules], scene.capsule_end[:, local_capsules]
        radius = scene.sphere_radius[local_spheres]
        capsule_radius = scene.capsule_radius[local_capsules]
        frames = max(len(centres), len(starts))
        points = torch.cat([centres.expand(frames, -1, -1), starts.expand(frames, -1, -1),
                            ends.expand(frames, -1, -1)], dim=1)  # fmt: skip
        reach = torch.cat([radius, capsule_radius, capsule_radius])
        middle = (points.amax(dim=1) + points.amin(dim=1)) / 2
        bound = ((points - middle[:, None]).norm(dim=-1) + reach).amax(dim=1)
        moving.append(
            _MovingGroup(
                spheres=torch.movedim(centres.expand(frames, -1, -1), -1, 0).contiguous(),
                sphere_radius=radius,
                capsules=torch.movedim(
                    torch.cat([starts, ends - starts], dim=-1).expand(frames, -1, -1), -1, 0
                ).contiguous(),
                capsule_radius=capsule_radius,
                material=torch.cat([local_spheres + planes + boxes, local_capsules + planes + boxes + spheres]),
                bound_centre=middle,
                bound_radius=bound * (1 + 1e-4) + 1e-3,  # a margin against rounding: the test must not miss
            )
        )
    return _Groups(fixed, moving)


def _fixed_hits(scene: RenderScene, fixed: _FixedGroup, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest distance (N,) and material index (N,) among the fixed primitives; inf and 0 for a miss."""
    o_vec, d_vec = _ray_columns(o), _ray_columns(d)
    columns = []
    if len(scene.plane_axis):
        columns.append(_plane_hits(o, d, scene.plane_axis, scene.plane_position))
    if len(scene.box_low):
        inverse = _ray_columns(1.0 / _safe(d))
        columns.append(_box_hits(o_vec, inverse, fixed.box_low, fixed.box_high))
    if len(fixed.spheres):
        columns.append(_sphere_hits(o_vec, d_vec, fixed.sphere_centre, fixed.sphere_radius))
    if len(fixed.capsules):
        columns.append(_capsule_hits(o_vec, d_vec, fixed.capsule_start, fixed.capsule_axis, fixed.capsule_radius))
    if not columns:
        return torch.full_like(o[:, 0], math.inf), torch.zeros_like(o[:, 0], dtype=torch.int64)
    t, column = (columns[0] if len(columns) == 1 else torch.cat(columns, dim=-1)).min(-1)
    return t, fixed.material[column]


def _ray_columns(v: Tensor) -> Vec:
    """(N, 3) -> three (N, 1) contiguous tensors, to broadcast against (K,) or (N, K) parameters."""
    x, y, z = _columns(v)
    return x[:, None], y[:, None], z[:, None]


def _bound_entry(o: Tensor, d: Tensor, centre: Tensor, radius: Tensor) -> Tensor:
    """Distance (N,) at which rays enter a ball (0 if they start inside), inf where they miss it."""
    offset = o - centre
    half_b = (offset * d).sum(-1)
    c = (offset * offset).sum(-1) - radius * radius
    discriminant = half_b * half_b - c
    root = torch.sqrt(discriminant.clamp(min=0.0))
    enter = (-half_b - root).clamp(min=0.0)
    return torch.where((discriminant >= 0) & (root - half_b > EPSILON), enter, torch.full_like(enter, math.inf))


def _trace(
    scene: RenderScene, groups: _Groups, o: Tensor, d: Tensor, frame: Tensor, limit: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Nearest hit distance (N,) and material index (N,) of rays o, d (N, 3) at frames ``frame`` (N,).

    Hits farther than ``limit`` (N,) may be missed: shadow rays only ask whether anything is nearer
    than the light.
    """
    t, index = _fixed_hits(scene, groups.fixed, o, d)
    for group in groups.moving:
        nearest = t if limit is None else torch.minimum(t, limit)
        enter = _bound_entry(o, d, group.bound_centre[frame], group.bound_radius[frame])
        rays = (enter < nearest).nonzero().flatten()
        if not len(rays):
            continue
        ro, rd, rf = _ray_columns(o[rays]), _ray_columns(d[rays]), frame[rays]
        columns = []
        if group.sphere_radius.numel():
            x, y, z = group.spheres[:, rf]  # each (n, Ks): this ray's frame
            columns.append(_sphere_hits(ro, rd, (x, y, z), group.sphere_radius))
        if group.capsule_radius.numel():
            sx, sy, sz, ax, ay, az = group.capsules[:, rf]
            columns.append(_capsule_hits(ro, rd, (sx, sy, sz), (ax, ay, az), group.capsule_radius))
        group_t, column = (columns[0] if len(columns) == 1 else torch.cat(columns, dim=-1)).min(-1)
        current = t[rays]
        closer = group_t < current
        t[rays] = torch.where(closer, group_t, current)
        index[rays] = torch.where(closer, group.material[column], index[rays])
    return t, index


def _normals(scene: RenderScene, index: Tensor, frame: Tensor, points: Tensor, d: Tensor) -> Tensor:
    """Unit normals (N, 3) of the primitives ``index`` at ``points``, facing the incoming rays."""
    planes, boxes, spheres, capsules = scene.group_sizes
    normal = torch.zeros_like(points)
    offset = 0
    if planes:
        local = index.clamp(offset, offset + planes - 1) - offset
        plane_normal = torch.nn.functional.one_hot(scene.plane_axis[local], 3).to(points.dtype)
        normal = torch.where(((index >= offset) & (index < offset + planes))[..., None], plane_normal, normal)
    offset += planes
    if boxes:
        local = index.clamp(offset, offset + boxes - 1) - offset
        low, high = scene.box_low[local], scene.box_high[local]  # (N, 3)
        # The face a point lies on is the one it is closest to, relative to the box's half-size; its sign
        # comes from turning the normal towards the ray below.
        centre, half = (low + high) / 2, (high - low) / 2
        relative = ((points - centre) / half).abs()
        face = torch.nn.functional.one_hot(relative.argmax(-1), 3).to(points.dtype)
        normal = torch.where(((index >= offset) & (index < offset + boxes))[..., None], face, normal)
    offset += boxes
    if spheres:
        local = index.clamp(offset, offset + spheres - 1) - offset
        centre = scene.sphere_centre[frame, local]
        normal = torch.where(((index >= offset) & (index < offset + spheres))[..., None], points - centre, normal)
    offset += spheres
    if capsules:
        local = index.clamp(offset, offset + capsules - 1) - offset
        start, end = scene.capsule_start[frame, local], scene.capsule_end[frame, local]
        axis = end - start
        along = ((points - start) * axis).sum(-1, keepdim=True) / (axis * axis).sum(-1, keepdim=True).clamp(min=1e-12)
        nearest = start + along.clamp(0.0, 1.0) * axis
        normal = torch.where(((index >= offset) & (index < offset + capsules))[..., None], points - nearest, normal)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    facing = (normal * d).sum(-1, keepdim=True) > 0
    return torch.where(facing, -normal, normal)


# ---------------------------------------------------------------------------
# Textures and shading
# ---------------------------------------------------------------------------


def _hash(ix: Tensor, iy: Tensor) -> Tensor:
    """A fixed pseudo-random value in [0, 1] per integer lattice point (integer mixing, no state)."""
    h = ix * 374761393 + iy * 668265263
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF).to(torch.float32) / 65535.0


def _value_noise(u: Tensor, v: Tensor) -> Tensor:
    iu, iv = torch.floor(u), torch.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)  # smoothstep between lattice values
    iu, iv = iu.to(torch.int64), iv.to(torch.int64)
    top = torch.lerp(_hash(iu, iv), _hash(iu + 1, iv), fu)
    bottom = torch.lerp(_hash(iu, iv + 1), _hash(iu + 1, iv + 1), fu)
    return torch.lerp(top, bottom, fv)


def _albedo(scene: RenderScene, index: Tensor, points: Tensor, normal: Tensor, footprint: Tensor) -> Tensor:
    """Texture colour (I, P, 3) at the hit points; ``footprint`` is the metres one pixel covers there."""
    scale = scene.scale[index]
    # Texture coordinates: the two world axes along the surface (the normal's dominant axis dropped).
    dominant = normal.abs().argmax(-1, keepdim=True)
    keep = torch.tensor([[1, 2], [0, 2], [0, 1]], device=points.device)[dominant[..., 0]]
    uv = torch.gather(points, -1, keep) / scale[..., None]
    u, v = uv[..., 0], uv[..., 1]
    checker = torch.remainder(torch.floor(u) + torch.floor(v), 2.0)
    stripes = torch.remainder(torch.floor(u), 2.0)
    noise = 0.65 * _value_noise(2 * u, 2 * v) + 0.35 * _value_noise(7 * u + 13.1, 7 * v + 5.7)
    kind = scene.texture[index]
    pattern = torch.where(kind == 1, checker, torch.where(kind == 2, stripes, torch.where(kind == 3, noise, 0.0)))
    # Tiles smaller than about two pixels fade to the mean of both colours (0.5 for all patterns here).
    contrast = (1.5 - footprint / scale).clamp(0.0, 1.0) * (kind > 0)
    mix = 0.5 + (pattern - 0.5) * contrast
    return torch.lerp(scene.colour[index], scene.colour2[index], mix[..., None])


def _sky(scene: RenderScene, d: Tensor) -> Tensor:
    blend = d[..., 2].clamp(0.0, 1.0).pow(0.6)[..., None]
    colour = torch.lerp(scene.sky_horizon.expand_as(d), scene.sky_zenith.expand_as(d), blend)
    if scene.light_kind == "sun":
        sun = (d * scene.light_vector).sum(-1, keepdim=True)
        glow = ((sun - 0.95) / 0.05).clamp(0.0, 1.0) ** 4 * 0.35
        colour = torch.where(sun > SUN_DISK_COS, torch.ones_like(colour), colour + glow)
    return colour


def _shade_hits(scene: RenderScene, groups: _Groups, o: Tensor, d: Tensor, frame: Tensor, t: Tensor,
                index: Tensor, pixel_angle: float) -> Tensor:  # fmt: skip
    """Colours (N, 3) of rays that hit primitive ``index`` at distance ``t``: texture, sun or lamp, shadow."""
    points = o + t[..., None] * d
    normal = _normals(scene, index, frame, points, d)
    cosine = (-(normal * d).sum(-1)).clamp(min=0.05)
    albedo = _albedo(scene, index, points, normal, t * pixel_angle / cosine)

    if scene.light_kind == "sun":
        to_light = scene.light_vector.expand_as(points)
        light_distance = torch.full_like(t, math.inf)
        falloff = torch.ones_like(t)
    else:
        towards = scene.light_vector - points
        light_distance = towards.norm(dim=-1)
        to_light = towards / light_distance[..., None].clamp(min=1e-6)
        falloff = 1.0 / (1.0 + (light_distance / 8.0) ** 2)
    lambert = (normal * to_light).sum(-1).clamp(min=0.0)
    # Only surfaces that face the light can be shadowed; the others get no direct light anyway.
    blocked = torch.zeros_like(t, dtype=torch.bool)
    lit = (lambert > 0).nonzero().flatten()
    if len(lit):
        shadow_origin = points[lit] + SHADOW_OFFSET * normal[lit]
        distance = light_distance[lit]
        shadow_t, _ = _trace(scene, groups, shadow_origin, to_light[lit], frame[lit], limit=distance)
        blocked[lit] = shadow_t < distance
    direct = (lambert * falloff * (~blocked))[..., None] * scene.light_colour
    colour = albedo * (scene.ambient + (1.0 - scene.ambient) * direct)
    if math.isfinite(scene.fog_distance):
        fog = (1.0 - torch.exp(-t / scene.fog_distance))[..., None]
        colour = torch.lerp(colour, scene.sky_horizon.expand_as(colour), fog)
    return colour


def _shade_rays(scene: RenderScene, groups: _Groups, o: Tensor, d: Tensor, frame: Tensor, pixel_angle: float):
    """Colours (N, 3), hit distances and character ids (N,) of rays o, d (N, 3) at frames ``frame`` (N,)."""
    t, index = _trace(scene, groups, o, d, frame)
    colour = _sky(scene, d)
    character = torch.zeros_like(index)
    hits = torch.isfinite(t).nonzero().flatten()
    if len(hits):
        hit_index = index[hits]
        colour[hits] = _shade_hits(scene, groups, o[hits], d[hits], frame[hits], t[hits], hit_index, pixel_angle)
        character[hits] = scene.character[hit_index]
    return colour, t, character


# ---------------------------------------------------------------------------
# Cameras -> images
# ---------------------------------------------------------------------------


def _height_width(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def camera_rays(size: int | tuple[int, int], intrinsics: Array, factor: int = 1) -> Tensor:
    """Unit camera-frame ray directions (H*W*factor^2, 3) through (sub)pixel centres, row-major.

    ``size`` is a square image's side or ``(height, width)``.
    """
    height, width = _height_width(size)
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    rows = (torch.arange(height * factor, dtype=torch.float64) + 0.5) / factor
    columns = (torch.arange(width * factor, dtype=torch.float64) + 0.5) / factor
    v, u = torch.meshgrid(rows, columns, indexing="ij")
    directions = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u)], dim=-1).reshape(-1, 3)
    return directions / directions.norm(dim=-1, keepdim=True)


@dataclass
class RenderTensors:
    """What :func:`render_tensors` gives: everything on the render device."""

    images: Tensor  # (cameras, frames, H, W, 3) uint8
    depth: Tensor | None  # (cameras, frames, H, W) float32
    masks: Tensor | None  # (cameras, frames, H, W) uint8


# Elementwise helpers that torch.compile fuses into few GPU kernels: about 2x at 128x128 and 1.4x at 256x256 on
# an H100 (benchmarks/RESULTS.md). They are swapped for their compiled versions once per process, the first
# time a render asks for it (by default: renders on CUDA).
FUSED_KERNELS = ("_capsule_hits", "_sphere_hits", "_box_hits", "_plane_hits", "_bound_entry", "_albedo", "_sky",
                 "_value_noise", "_normals")  # fmt: skip
_kernels_fused = False


def fuse_kernels() -> None:
    """Replace the :data:`FUSED_KERNELS` by ``torch.compile``-d versions (idempotent, process-wide)."""
    global _kernels_fused
    if not _kernels_fused:
        namespace = globals()
        for name in FUSED_KERNELS:
            namespace[name] = torch.compile(namespace[name], dynamic=True)
        _kernels_fused = True


def default_chunk_rays(device: torch.device | str) -> int:
    """Rays cast together: small enough for CPU caches, large enough to keep a GPU busy."""
    return 1 << 21 if torch.device(device).type == "cuda" else DEFAULT_CHUNK_RAYS  # 2^21: fastest on an H100


def render_tensors(
    scene: RenderScene,
    poses: Array | Tensor,
    intrinsics: Array,
    size: int | tuple[int, int],
    *,
    device: str | torch.device = "cpu",
    supersample: bool = False,
    depth: bool = False,
    masks: bool = False,
    chunk_rays: int | None = None,
    progress=None,
    fused: bool | None = None,
) -> RenderTensors:
    """Like :func:`render`, but the results stay tensors on ``device`` (nothing is copied back).

    ``fused`` compiles the elementwise kernels first (:func:`fuse_kernels`); by default on CUDA only.
    """
    device = torch.device(device)
    if device.type == "cuda" if fused is None else fused:
        fuse_kernels()
    poses = torch.as_tensor(np.asarray(poses, dtype=np.float64) if not isinstance(poses, Tensor) else poses)
    cameras, frames = poses.shape[:2]
    height, width = _height_width(size)
    factor = 2 if supersample else 1
    pixels_per_image = height * width * factor * factor
    directions = camera_rays((height, width), intrinsics, factor)
    camera_z = directions[:, 2].to(torch.float32).to(device)
    directions = directions.to(torch.float32).to(device)
    pixel_angle = 1.0 / (float(intrinsics[0, 0]) * factor)
    scene = scene.to(device)
    groups = _group_primitives(scene)
    # Frame-major order: the images of one chunk mostly share a frame.
    flat_poses = poses.transpose(0, 1).reshape(frames * cameras, 4, 4).to(torch.float32).to(device)
    frame_of = torch.arange(frames, device=device).repeat_interleave(cameras)
    camera_of = torch.arange(cameras, device=device).repeat(frames)
    chunk_rays = default_chunk_rays(device) if chunk_rays is None else chunk_rays
    per_chunk = max(1, chunk_rays // pixels_per_image)

    images = torch.empty((cameras, frames, height, width, 3), dtype=torch.uint8, device=device)
    depth_out = torch.empty((cameras, frames, height, width), dtype=torch.float32, device=device) if depth else None
    masks_out = torch.empty((cameras, frames, height, width), dtype=torch.uint8, device=device) if masks else None
    with torch.no_grad():
        for begin in range(0, frames * cameras, per_chunk):
            chunk = slice(begin, min(begin + per_chunk, frames * cameras))
            rotation, origin = flat_poses[chunk, :3, :3], flat_poses[chunk, :3, 3]
            count = rotation.shape[0]
            d = torch.einsum("iab,pb->ipa", rotation, directions).reshape(-1, 3)  # world directions
            o = origin.repeat_interleave(pixels_per_image, dim=0)
            frame = frame_of[chunk].repeat_interleave(pixels_per_image)
            colour, t, character = _shade_rays(scene, groups, o, d, frame, pixel_angle)
            colour = colour.reshape(count, height, factor, width, factor, 3).mean(dim=(2, 4))
            target = (camera_of[chunk], frame_of[chunk])
            images[target] = (colour.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
            if depth_out is not None:
                z = (t.reshape(count, -1) * camera_z).reshape(count, height, factor, width, factor)
                depth_out[target] = z[:, :, 0, :, 0]
            if masks_out is not None:
                ids = character.reshape(count, height, factor, width, factor)[:, :, 0, :, 0]
                masks_out[target] = ids.to(torch.uint8)
            if progress is not None:
                progress(count)
    return RenderTensors(images, depth_out, masks_out)


def render(
    scene: RenderScene,
    poses: Array,
    intrinsics: Array,
    size: int | tuple[int, int],
    *,
    device: str | torch.device = "cpu",
    supersample: bool = False,
    depth: bool = False,
    masks: bool = False,
    chunk_rays: int | None = None,
    progress=None,
) -> RenderOutput:
    """Render every camera at every frame: ``poses`` (cameras, frames, 4, 4) OpenCV camera-to-world.

    ``intrinsics`` is the 3x3 pinhole matrix of the image, ``size`` its side (square) or ``(height,
    width)``. Images are cast frame by frame (all cameras of a frame together), about ``chunk_rays``
    rays at a time (default :func:`default_chunk_rays`). With ``supersample`` each pixel averages 2x2
    rays; depth and masks then come from one of them (the upper-left, a quarter pixel off the centre).
    ``progress`` is called with the number of images done.
    """
    out = render_tensors(scene, poses, intrinsics, size, device=device, supersample=supersample, depth=depth,
                         masks=masks, chunk_rays=chunk_rays, progress=progress)  # fmt: skip
    return RenderOutput(
        out.images.cpu().numpy(),
        None if out.depth is None else out.depth.cpu().numpy(),
        None if out.masks is None else out.masks.cpu().numpy(),
    )
