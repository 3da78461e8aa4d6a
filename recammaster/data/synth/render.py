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
# Intersections: each returns hit distances (I, P, K), inf for a miss
# ---------------------------------------------------------------------------


def _safe(d: Tensor) -> Tensor:
    """Directions with no exact zeros, so divisions give huge values instead of nan."""
    return torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)


def _plane_hits(o: Tensor, d: Tensor, axis: Tensor, position: Tensor) -> Tensor:
    t = (position - o[..., axis]) / _safe(d)[..., axis]
    return torch.where(t > EPSILON, t, torch.full_like(t, math.inf))


def _slabs(o: Tensor, d: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-axis entry distances (I, P, K, 3), and overall entry and exit (I, P, K)."""
    inverse = 1.0 / _safe(d)[..., None, :]
    t_low = (low - o[..., None, :]) * inverse
    t_high = (high - o[..., None, :]) * inverse
    near = torch.minimum(t_low, t_high)
    return near, near.amax(-1), torch.maximum(t_low, t_high).amin(-1)


def _box_hits(o: Tensor, d: Tensor, low: Tensor, high: Tensor) -> Tensor:
    _, enter, leave = _slabs(o, d, low, high)
    return torch.where((enter <= leave) & (enter > EPSILON), enter, torch.full_like(enter, math.inf))


def _sphere_hits(o: Tensor, d: Tensor, centre: Tensor, radius: Tensor) -> Tensor:
    """Near roots of |o + t d - c| = r for unit d; o (I, P, 3), centre (I, 1, K, 3) or (K, 3)."""
    offset = o[..., None, :] - centre
    half_b = (offset * d[..., None, :]).sum(-1)
    c = (offset * offset).sum(-1) - radius * radius
    discriminant = half_b * half_b - c
    t = -half_b - torch.sqrt(discriminant.clamp(min=0.0))
    return torch.where((discriminant >= 0) & (t > EPSILON), t, torch.full_like(t, math.inf))


def _capsule_hits(o: Tensor, d: Tensor, start: Tensor, end: Tensor, radius: Tensor) -> Tensor:
    """Capsule: the cylinder part where the hit projects inside the segment, else the end spheres.

    For a ray starting outside, the nearest of the valid cylinder hit and both end-sphere hits is the
    capsule's entry point: a sphere hit inside the cylinder lies inside the capsule, so it is never
    the nearest.
    """
    axis = end - start  # (I, 1, K, 3)
    offset = o[..., None, :] - start  # (I, P, K, 3)
    dd = d[..., None, :]
    axis_axis = (axis * axis).sum(-1)
    axis_d = (axis * dd).sum(-1)
    axis_offset = (axis * offset).sum(-1)
    d_offset = (dd * offset).sum(-1)
    a = axis_axis - axis_d * axis_d
    b = axis_axis * d_offset - axis_offset * axis_d
    c = axis_axis * (offset * offset).sum(-1) - axis_offset * axis_offset - radius * radius * axis_axis
    discriminant = b * b - a * c
    t = (-b - torch.sqrt(discriminant.clamp(min=0.0))) / a.clamp(min=1e-12)
    along = axis_offset + t * axis_d
    body = (discriminant >= 0) & (a > 1e-12) & (along > 0) & (along < axis_axis) & (t > EPSILON)
    t = torch.where(body, t, torch.full_like(t, math.inf))
    caps = torch.minimum(_sphere_hits(o, d, start, radius), _sphere_hits(o, d, end, radius))
    return torch.minimum(t, caps)


def _frame_params(scene: RenderScene, frames: Tensor) -> dict[str, Tensor]:
    return {
        "sphere_centre": scene.sphere_centre[frames][:, None],  # (I, 1, S, 3)
        "capsule_start": scene.capsule_start[frames][:, None],
        "capsule_end": scene.capsule_end[frames][:, None],
    }


def _all_hits(scene: RenderScene, params: dict[str, Tensor], o: Tensor, d: Tensor) -> Tensor:
    """Distances (I, P, M) to every primitive, in material order."""
    return torch.cat(
        [
            _plane_hits(o, d, scene.plane_axis, scene.plane_position),
            _box_hits(o, d, scene.box_low, scene.box_high),
            _sphere_hits(o, d, params["sphere_centre"], scene.sphere_radius),
            _capsule_hits(o, d, params["capsule_start"], params["capsule_end"], scene.capsule_radius),
        ],
        dim=-1,
    )


def _take(values: Tensor, index: Tensor) -> Tensor:
    """values (I, 1, K, 3) per image, index (I, P) -> (I, P, 3)."""
    values = values[:, 0]
    return torch.gather(values, 1, index[..., None].expand(*index.shape, 3))


def _normals(scene: RenderScene, params: dict[str, Tensor], index: Tensor, points: Tensor, d: Tensor) -> Tensor:
    """Unit normals (I, P, 3) of the primitives ``index`` at ``points``, facing the incoming rays."""
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
        low, high = scene.box_low[local], scene.box_high[local]  # (I, P, 3)
        # The face a point lies on is the one it is closest to, relative to the box's half-size; its sign
        # comes from turning the normal towards the ray below.
        centre, half = (low + high) / 2, (high - low) / 2
        relative = ((points - centre) / half).abs()
        face = torch.nn.functional.one_hot(relative.argmax(-1), 3).to(points.dtype)
        normal = torch.where(((index >= offset) & (index < offset + boxes))[..., None], face, normal)
    offset += boxes
    if spheres:
        local = index.clamp(offset, offset + spheres - 1) - offset
        centre = _take(params["sphere_centre"], local)
        normal = torch.where(((index >= offset) & (index < offset + spheres))[..., None], points - centre, normal)
    offset += spheres
    if capsules:
        local = index.clamp(offset, offset + capsules - 1) - offset
        start, end = _take(params["capsule_start"], local), _take(params["capsule_end"], local)
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


def _shade_rays(scene: RenderScene, frames: Tensor, o: Tensor, d: Tensor, pixel_angle: float):
    """Colours (I, P, 3), hit distances and character ids (I, P) of rays o, d (I, P, 3)."""
    params = _frame_params(scene, frames)
    t, index = _all_hits(scene, params, o, d).min(-1)
    hit = torch.isfinite(t)
    index = torch.where(hit, index, torch.zeros_like(index))
    t_safe = torch.where(hit, t, torch.zeros_like(t))
    points = o + t_safe[..., None] * d
    normal = _normals(scene, params, index, points, d)
    cosine = (-(normal * d).sum(-1)).clamp(min=0.05)
    albedo = _albedo(scene, index, points, normal, t_safe * pixel_angle / cosine)

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
    shadow_origin = points + SHADOW_OFFSET * normal
    blocked = _all_hits(scene, params, shadow_origin, to_light).amin(-1) < light_distance
    direct = (lambert * falloff * (~blocked))[..., None] * scene.light_colour
    colour = albedo * (scene.ambient + (1.0 - scene.ambient) * direct)
    if math.isfinite(scene.fog_distance):
        fog = (1.0 - torch.exp(-t_safe / scene.fog_distance))[..., None]
        colour = torch.lerp(colour, scene.sky_horizon.expand_as(colour), fog)
    colour = torch.where(hit[..., None], colour, _sky(scene, d))
    character = torch.where(hit, scene.character[index], torch.zeros_like(index))
    return colour, t, character


# ---------------------------------------------------------------------------
# Cameras -> images
# ---------------------------------------------------------------------------


def camera_rays(size: int, intrinsics: Array, factor: int = 1) -> Tensor:
    """Unit camera-frame ray directions (size*factor squared, 3) through (sub)pixel centres, row-major."""
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    steps = (torch.arange(size * factor, dtype=torch.float64) + 0.5) / factor
    v, u = torch.meshgrid(steps, steps, indexing="ij")
    directions = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u)], dim=-1).reshape(-1, 3)
    return directions / directions.norm(dim=-1, keepdim=True)


def render(
    scene: RenderScene,
    poses: Array,
    intrinsics: Array,
    size: int,
    *,
    device: str | torch.device = "cpu",
    supersample: bool = False,
    depth: bool = False,
    masks: bool = False,
    chunk_rays: int = DEFAULT_CHUNK_RAYS,
    progress=None,
) -> RenderOutput:
    """Render every camera at every frame: ``poses`` (cameras, frames, 4, 4) OpenCV camera-to-world.

    ``intrinsics`` is the 3x3 pinhole matrix of a ``size`` x ``size`` image. Images are cast frame by
    frame (all cameras of a frame together), about ``chunk_rays`` rays at a time. With
    ``supersample`` each pixel averages 2x2 rays; depth and masks then come from one of them (the
    upper-left, a quarter pixel off the centre). ``progress`` is called with the number of images done.
    """
    device = torch.device(device)
    poses = np.asarray(poses, dtype=np.float64)
    cameras, frames = poses.shape[:2]
    factor = 2 if supersample else 1
    side = size * factor
    directions = camera_rays(size, intrinsics, factor)
    camera_z = directions[:, 2].to(torch.float32).to(device)
    directions = directions.to(torch.float32).to(device)
    pixel_angle = 1.0 / (float(intrinsics[0, 0]) * factor)
    scene = scene.to(device)
    # Frame-major order: the images of one chunk mostly share a frame, so moving primitives are cheap.
    order = [(c, f) for f in range(frames) for c in range(cameras)]
    flat_poses = torch.from_numpy(np.stack([poses[c, f] for c, f in order])).to(torch.float32).to(device)
    frame_index = torch.tensor([f for _, f in order], device=device)
    per_chunk = max(1, chunk_rays // (side * side))

    images = np.empty((cameras, frames, size, size, 3), dtype=np.uint8)
    depth_out = np.empty((cameras, frames, size, size), dtype=np.float32) if depth else None
    masks_out = np.empty((cameras, frames, size, size), dtype=np.uint8) if masks else None
    with torch.no_grad():
        for begin in range(0, len(order), per_chunk):
            chunk = slice(begin, min(begin + per_chunk, len(order)))
            rotation, origin = flat_poses[chunk, :3, :3], flat_poses[chunk, :3, 3]
            d = torch.einsum("iab,pb->ipa", rotation, directions)  # (I, P, 3) world directions
            o = origin[:, None].expand_as(d)
            colour, t, character = _shade_rays(scene, frame_index[chunk], o, d, pixel_angle)
            count = colour.shape[0]
            colour = colour.reshape(count, size, factor, size, factor, 3).mean(dim=(2, 4))
            pixels = (colour.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
            for slot, (c, f) in enumerate(order[chunk]):
                images[c, f] = pixels[slot]
            if depth_out is not None:
                z = (t * camera_z).reshape(count, size, factor, size, factor)[:, :, 0, :, 0].cpu().numpy()
                for slot, (c, f) in enumerate(order[chunk]):
                    depth_out[c, f] = z[slot]
            if masks_out is not None:
                ids = character.reshape(count, size, factor, size, factor)[:, :, 0, :, 0].to(torch.uint8).cpu()
                for slot, (c, f) in enumerate(order[chunk]):
                    masks_out[c, f] = ids[slot].numpy()
            if progress is not None:
                progress(count)
    return RenderOutput(images, depth_out, masks_out)
