"""Procedural scenes for the synthetic MultiCamVideo: environment, characters, cameras, and a caption.

A MultiCamVideo scene is {3D environment, character, animation, camera} (seed README, "Dataset
Introduction"). Here the environment is an outdoor ground with buildings, walls and props under a sky
and a sun, or an indoor room (floor, four walls, optional ceiling) lit by a lamp; one to three
characters of :mod:`recammaster.data.synth.characters` act near the origin; ten cameras follow the
MultiCamVideo rules (:func:`recammaster.cameras.sampling.sample_scene_cameras`) around the first one.

World: right-handed, z up, metres, ground z = 0. Everything is drawn from one numpy Generator, so a
seed fixes the whole scene. The cameras are drawn before the props, and no prop may contain a camera
or stand between a camera and a character, so every video shows its characters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recammaster.cameras.lens import Lens
from recammaster.cameras.sampling import RADII_M, SampledCamera, sample_camera, sample_scene_cameras
from recammaster.cameras.trajectory import Trajectory
from recammaster.data.synth.characters import (
    ANIMATIONS,
    BUILD_RANGE,
    HEIGHT_RANGE_M,
    TEMPO_RANGE,
    WALK_RADIUS_RANGE_M,
    CharacterSpec,
)
from recammaster.errors import TrajectoryError

Array = np.ndarray
RGB = tuple[float, float, float]

NUM_FRAMES = 81
CAMERA_TARGET_HEIGHT_M = 1.0  # cameras aim at the main character's middle
CHARACTER_COUNT_PROBABILITIES = (0.5, 0.3, 0.2)  # one, two, three characters
OUTDOOR_PROBABILITY = 0.6
INDOOR_RADII_M = (3.0, 5.0)  # rooms are the README's "smaller 3D scenes"
MAX_PLACEMENT_TRIES = 40

# Named colours, so captions can say what they show.
PALETTE: dict[str, RGB] = {
    "red": (0.80, 0.12, 0.10),
    "orange": (0.92, 0.50, 0.12),
    "yellow": (0.92, 0.80, 0.18),
    "green": (0.20, 0.62, 0.25),
    "teal": (0.10, 0.55, 0.55),
    "blue": (0.15, 0.30, 0.80),
    "navy": (0.08, 0.12, 0.35),
    "purple": (0.48, 0.20, 0.62),
    "pink": (0.92, 0.50, 0.62),
    "white": (0.90, 0.90, 0.88),
    "grey": (0.50, 0.50, 0.50),
    "black": (0.08, 0.08, 0.09),
    "brown": (0.45, 0.28, 0.14),
    "beige": (0.80, 0.72, 0.56),
}
CLOTHES = ("red", "orange", "yellow", "green", "teal", "blue", "navy", "purple", "pink", "white", "grey", "black")
TROUSERS = ("blue", "navy", "black", "grey", "brown", "beige", "green")
SKIN: dict[str, RGB] = {"pale": (0.95, 0.80, 0.70), "tan": (0.85, 0.64, 0.48), "brown": (0.55, 0.36, 0.24)}
SURFACE_COLOURS = ("grey", "beige", "brown", "white", "red", "orange", "teal", "green", "blue", "yellow")
TEXTURES = ("flat", "checker", "stripes", "noise")  # ids 0..3 in the renderer
TEXTURE_WORDS = {"flat": "plain", "checker": "checkered", "stripes": "striped", "noise": "mottled"}


@dataclass(frozen=True)
class Material:
    """A procedural surface: ``texture`` mixes ``colour`` and ``colour2`` in tiles of ``scale`` metres."""

    texture: str
    colour: str
    colour2: str
    scale: float = 1.0


@dataclass(frozen=True)
class Plane:
    """The plane where world coordinate ``axis`` (0 x, 1 y, 2 z) equals ``position``."""

    axis: int
    position: float
    material: Material


@dataclass(frozen=True)
class Box:
    """An axis-aligned box from ``low`` to ``high``; ``kind`` is building, wall or crate (for captions)."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    material: Material
    kind: str


@dataclass(frozen=True)
class Sphere:
    centre: tuple[float, float, float]
    radius: float
    material: Material


@dataclass(frozen=True)
class Pillar:
    """A vertical capsule standing on the ground."""

    position: tuple[float, float]
    radius: float
    height: float
    material: Material


@dataclass(frozen=True)
class Light:
    """A sun (``direction`` towards it) or a lamp at ``position``; ``ambient`` lights shadows too."""

    kind: str  # "sun" or "point"
    vector: tuple[float, float, float]  # sun: unit direction towards the sun; point: position
    ambient: float
    colour: RGB = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class SceneSpec:
    """Everything one synthetic scene holds; :func:`sample_scene` draws it from a generator."""

    environment: str  # "outdoor" or "indoor"
    place: str  # plaza, park, hall, studio ...: caption word
    planes: tuple[Plane, ...]  # the ground first; indoors also walls and the ceiling
    boxes: tuple[Box, ...]
    spheres: tuple[Sphere, ...]
    pillars: tuple[Pillar, ...]
    characters: tuple[CharacterSpec, ...]
    cameras: tuple[SampledCamera, ...]
    trajectories: tuple[Trajectory, ...]  # the cameras' paths, all with the scene's lens
    lens: Lens
    light: Light
    sky: tuple[RGB, RGB]  # horizon, zenith
    num_frames: int
    has_ceiling: bool = False

    @property
    def target(self) -> tuple[float, float, float]:
        """The point every camera was sampled around: the main character's middle."""
        x, y = self.characters[0].position
        return (x, y, CAMERA_TARGET_HEIGHT_M)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def sample_material(rng: np.random.Generator, textures=TEXTURES, colours=SURFACE_COLOURS) -> Material:
    texture = _pick(rng, textures)
    colour = _pick(rng, colours)
    colour2 = _pick(rng, [c for c in ("white", "grey", "black", "beige", "brown") if c != colour])
    return Material(texture, colour, colour2, float(rng.uniform(0.5, 2.0)))


def sample_character(rng: np.random.Generator, position: tuple[float, float], action: str) -> CharacterSpec:
    tempo = float(rng.uniform(*TEMPO_RANGE[action]))
    return CharacterSpec(
        figure=_pick(rng, ("man", "woman")),
        height=float(rng.uniform(*HEIGHT_RANGE_M)),
        build=float(rng.uniform(*BUILD_RANGE)),
        skin=_pick(rng, tuple(SKIN)),
        shirt=_pick(rng, CLOTHES),
        trousers=_pick(rng, TROUSERS),
        action=action,
        position=position,
        heading=float(rng.uniform(0.0, 2 * math.pi)),
        phase=float(rng.uniform(0.0, 2 * math.pi)),
        tempo=tempo,
        walk_radius=float(rng.uniform(*WALK_RADIUS_RANGE_M)) if action == "walk" else 0.0,
    )


def _sample_action(rng: np.random.Generator, walk_share: float | None) -> str:
    """An animation: any of them alike, or with ``walk_share`` a walk and otherwise one of the others."""
    actions = list(ANIMATIONS)
    if walk_share is None:
        return _pick(rng, actions)
    return "walk" if rng.random() < walk_share else _pick(rng, [a for a in actions if a != "walk"])


def sample_characters(rng: np.random.Generator, walk_share: float | None = None) -> tuple[CharacterSpec, ...]:
    """One to three characters near the origin whose reach circles never overlap.

    ``walk_share``: the chance that a character walks (default: every animation alike, 1 in 6). Walkers are
    the characters whose place changes, so a training set that needs the source's later frames asks for more.
    """
    count = 1 + int(rng.choice(3, p=CHARACTER_COUNT_PROBABILITIES))
    characters = [sample_character(rng, (float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5))),
                                   _sample_action(rng, walk_share))]  # fmt: skip
    for _ in range(count - 1):
        action = _sample_action(rng, walk_share)
        for _ in range(MAX_PLACEMENT_TRIES):
            distance, angle = rng.uniform(1.2, 4.5), rng.uniform(0.0, 2 * math.pi)
            position = (float(distance * math.cos(angle)), float(distance * math.sin(angle)))
            candidate = sample_character(rng, position, action)
            if all(_gap(candidate, other) > 0.2 for other in characters):
                characters.append(candidate)
                break
    return tuple(characters)


def _gap(a: CharacterSpec, b: CharacterSpec) -> float:
    return math.dist(a.position, b.position) - a.reach - b.reach


def _segments_hit_box(starts: Array, ends: Array, low: Array, high: Array) -> bool:
    """Whether any segment starts[i] -> ends[i] (n, 3) passes through the box (slab method)."""
    direction = ends - starts
    with np.errstate(divide="ignore", invalid="ignore"):
        t_low, t_high = (low - starts) / direction, (high - starts) / direction
    t_low, t_high = np.nan_to_num(t_low, nan=-np.inf), np.nan_to_num(t_high, nan=np.inf)
    enter = np.minimum(t_low, t_high).max(axis=1)
    leave = np.maximum(t_low, t_high).min(axis=1)
    inside_now = np.all((starts >= low) & (starts <= high), axis=1)
    return bool(np.any(((enter <= leave) & (leave >= 0.0) & (enter <= 1.0)) | inside_now))


class _Placer:
    """Accepts props whose bounds keep clear of the characters and of every camera's view of them."""

    def __init__(self, characters: tuple[CharacterSpec, ...], cameras: tuple[SampledCamera, ...]) -> None:
        positions = np.concatenate([c.trajectory.positions[::4] for c in cameras])
        targets = [(*c.position, h) for c in characters for h in (0.3, 1.0, 1.6)]
        self.starts = np.repeat(positions, len(targets), axis=0)
        self.ends = np.tile(np.array(targets), (len(positions), 1))
        self.characters = characters

    def fits(self, low, high, margin: float = 0.25) -> bool:
        low, high = np.asarray(low) - margin, np.asarray(high) + margin
        for character in self.characters:
            nearest = np.clip(character.position, low[:2], high[:2])
            if math.dist(nearest, character.position) < character.reach + 0.1:
                return False
        return not _segments_hit_box(self.starts, self.ends, low, high)


def _sample_props(rng: np.random.Generator, placer: _Placer, area: float, counts: tuple[int, int, int]):
    boxes, spheres, pillars = [], [], []
    for _ in range(counts[0]):
        for _ in range(MAX_PLACEMENT_TRIES):
            x, y = rng.uniform(-area, area, size=2)
            size = rng.uniform(0.4, 1.2, size=3)
            low, high = (x - size[0] / 2, y - size[1] / 2, 0.0), (x + size[0] / 2, y + size[1] / 2, size[2])
            if placer.fits(low, high):
                boxes.append(Box(low, high, sample_material(rng), "crate"))
                break
    for _ in range(counts[1]):
        for _ in range(MAX_PLACEMENT_TRIES):
            x, y = rng.uniform(-area, area, size=2)
            r = rng.uniform(0.2, 0.6)
            if placer.fits((x - r, y - r, 0.0), (x + r, y + r, 2 * r)):
                spheres.append(Sphere((float(x), float(y), float(r)), float(r), sample_material(rng, ("flat",))))
                break
    for _ in range(counts[2]):
        for _ in range(MAX_PLACEMENT_TRIES):
            x, y = rng.uniform(-area, area, size=2)
            r, height = rng.uniform(0.12, 0.3), rng.uniform(2.0, 4.0)
            if placer.fits((x - r, y - r, 0.0), (x + r, y + r, height)):
                pillars.append(Pillar((float(x), float(y)), float(r), float(height), sample_material(rng, ("flat",))))
                break
    return boxes, spheres, pillars


def _sample_outdoor(rng, placer: _Placer):
    ground = Plane(2, 0.0, sample_material(rng, ("checker", "stripes", "noise")))
    boxes = []
    for kind, count in (("building", int(rng.integers(1, 5))), ("wall", int(rng.integers(0, 3)))):
        for _ in range(count):
            for _ in range(MAX_PLACEMENT_TRIES):
                distance, angle = rng.uniform(8.0, 25.0), rng.uniform(0.0, 2 * math.pi)
                x, y = distance * math.cos(angle), distance * math.sin(angle)
                if kind == "building":
                    size = (rng.uniform(3.0, 8.0), rng.uniform(3.0, 8.0), rng.uniform(4.0, 15.0))
                else:
                    length = rng.uniform(5.0, 12.0)
                    along_x = rng.random() < 0.5
                    size = (length, 0.3, rng.uniform(1.5, 3.0)) if along_x else (0.3, length, rng.uniform(1.5, 3.0))
                low = (float(x - size[0] / 2), float(y - size[1] / 2), 0.0)
                high = (float(x + size[0] / 2), float(y + size[1] / 2), float(size[2]))
                if placer.fits(low, high, margin=0.5):
                    material = sample_material(rng, ("flat", "stripes", "noise") if kind == "building" else TEXTURES)
                    boxes.append(Box(low, high, material, kind))
                    break
    counts = (int(rng.integers(0, 4)), int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    crates, spheres, pillars = _sample_props(rng, placer, 8.0, counts)
    elevation, azimuth = math.radians(rng.uniform(25.0, 65.0)), rng.uniform(0.0, 2 * math.pi)
    sun = (math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation))
    warmth = rng.uniform(0.0, 0.15)
    light = Light("sun", sun, float(rng.uniform(0.3, 0.45)), (1.0, 1.0 - 0.3 * warmth, 1.0 - warmth))
    horizon = tuple(float(v) for v in np.clip(np.array([0.80, 0.86, 0.93]) + rng.uniform(-0.06, 0.06, 3), 0, 1))
    zenith = tuple(float(v) for v in np.clip(np.array([0.25, 0.45, 0.80]) + rng.uniform(-0.08, 0.08, 3), 0, 1))
    place = _pick(rng, ("plaza", "courtyard", "square", "yard"))
    return place, (ground,), (*boxes, *crates), spheres, pillars, light, (horizon, zenith), False


def _sample_indoor(rng, placer: _Placer, cameras: tuple[SampledCamera, ...]):
    positions = np.concatenate([c.trajectory.positions for c in cameras])
    half_x = max(5.0, float(np.abs(positions[:, 0]).max()) + rng.uniform(0.8, 3.0))
    half_y = max(5.0, float(np.abs(positions[:, 1]).max()) + rng.uniform(0.8, 3.0))
    has_ceiling = bool(rng.random() < 0.6)
    ceiling = max(3.5, float(positions[:, 2].max()) + rng.uniform(0.8, 2.0))
    floor = sample_material(rng, ("checker", "stripes", "noise"))
    wall = sample_material(rng, ("flat", "stripes", "noise"))
    planes = [Plane(2, 0.0, floor), Plane(0, -half_x, wall), Plane(0, half_x, wall), Plane(1, -half_y, wall),
              Plane(1, half_y, wall)]  # fmt: skip
    if has_ceiling:
        planes.append(Plane(2, ceiling, Material("flat", "white", "grey")))
    counts = (int(rng.integers(1, 5)), int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    crates, spheres, pillars = _sample_props(rng, placer, min(half_x, half_y) - 0.5, counts)
    lamp = (float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-1.5, 1.5)), ceiling - 0.3 if has_ceiling else 4.0)
    light = Light("point", lamp, float(rng.uniform(0.35, 0.5)), (1.0, 0.95, 0.85))
    sky = ((0.70, 0.76, 0.84), (0.35, 0.45, 0.65))  # seen only through a missing ceiling
    place = _pick(rng, ("hall", "studio", "gym", "warehouse"))
    return place, tuple(planes), crates, spheres, pillars, light, sky, has_ceiling


def sample_scene(rng: np.random.Generator, num_frames: int = NUM_FRAMES, walk_share: float | None = None) -> SceneSpec:
    """Draw one scene: characters, then ten MultiCamVideo cameras around the first, then the environment."""
    environment = "outdoor" if rng.random() < OUTDOOR_PROBABILITY else "indoor"
    characters = sample_characters(rng, walk_share)
    radius = float(_pick(rng, RADII_M if environment == "outdoor" else INDOOR_RADII_M))
    x, y = characters[0].position
    cameras = sample_scene_cameras(
        rng, 10, character=(x, y, CAMERA_TARGET_HEIGHT_M), num_frames=num_frames, radius=radius
    )
    # MultiCamVideo files a scene under one lens folder, so all ten cameras share the first one's lens.
    lens = cameras[0].lens
    trajectories = tuple(
        Trajectory(c.trajectory.poses, name=c.trajectory.name, lens=lens, metadata=dict(c.trajectory.metadata))
        for c in cameras
    )
    placer = _Placer(characters, cameras)
    parts = _sample_outdoor(rng, placer) if environment == "outdoor" else _sample_indoor(rng, placer, cameras)
    place, planes, boxes, spheres, pillars, light, sky, has_ceiling = parts
    return SceneSpec(
        environment=environment,
        place=place,
        planes=tuple(planes),
        boxes=tuple(boxes),
        spheres=tuple(spheres),
        pillars=tuple(pillars),
        characters=characters,
        cameras=cameras,
        trajectories=trajectories,
        lens=lens,
        light=light,
        sky=sky,
        num_frames=num_frames,
        has_ceiling=has_ceiling,
    )


# ---------------------------------------------------------------------------
# Re-filming requests
# ---------------------------------------------------------------------------

REFILM_DRAWS = 20  # motions tried from one start before settling for a still camera there
ROOM_MARGIN_M = 0.3  # a re-filming camera keeps this far inside an indoor room's walls and ceiling


def _inside_room(spec: SceneSpec, positions: np.ndarray) -> bool:
    """Whether every camera centre is inside the room (outdoors: always)."""
    for plane in spec.planes[1:]:  # the ground is first; the cameras keep above it already
        coordinate = positions[:, plane.axis]
        if plane.position > 0 and coordinate.max() > plane.position - ROOM_MARGIN_M:
            return False
        if plane.position < 0 and coordinate.min() < plane.position + ROOM_MARGIN_M:
            return False
    return True


def refilm_trajectories(spec: SceneSpec, rng: np.random.Generator, per_camera: int,
                        still_share: float = 0.0) -> tuple[Trajectory, ...]:  # fmt: skip
    """``per_camera`` more trajectories from each camera's first pose: the scene re-filmed as a user asks.

    At inference the requested trajectory starts at the source camera's first pose (``render`` places
    presets there), while the ten cameras of a MultiCamVideo scene start anywhere on the hemisphere. A
    camera and its re-filmings share frame 0 and differ by motions drawn with the same rules (kind,
    size, speed), kept inside an indoor room. Camera c's k-th re-filming is item ``c * per_camera + k``.

    ``still_share``: the chance that a re-filming is a camera standing still at the first pose instead. Paired
    with a moving camera it makes a request whose characters can only come from the source frame of the same
    time, seen from where frame 0 was (MultiCamVideo has no still cameras; a training choice, off by default).
    """
    trajectories = []
    for camera in spec.cameras:
        start = camera.trajectory.poses[0]
        for _ in range(per_camera):
            if still_share and rng.random() < still_share:
                trajectories.append(_still(spec, start))
            else:
                trajectories.append(_refilm(spec, camera, start, rng))
    return tuple(trajectories)


def still_trajectories(spec: SceneSpec) -> tuple[Trajectory, ...]:
    """One camera standing still at each camera's first pose: a source filmed from a tripod, whose frame of a
    time shows where the characters are then, seen from where every re-filming starts."""
    return tuple(_still(spec, camera.trajectory.poses[0]) for camera in spec.cameras)


def _still(spec: SceneSpec, start: np.ndarray) -> Trajectory:
    return Trajectory(np.broadcast_to(start, (spec.num_frames, 4, 4)).copy(), name="static", lens=spec.lens)


def _refilm(spec: SceneSpec, camera: SampledCamera, start: np.ndarray, rng: np.random.Generator) -> Trajectory:
    for _ in range(REFILM_DRAWS):
        try:
            drawn = sample_camera(rng, character=camera.character, radius=camera.radius,
                                  num_frames=spec.num_frames, start=start).trajectory  # fmt: skip
        except TrajectoryError:  # this kind cannot leave this start (an arc at the ground, say)
            continue
        if _inside_room(spec, drawn.positions):
            return Trajectory(drawn.poses, name=drawn.name, lens=spec.lens, metadata=dict(drawn.metadata))
    return _still(spec, start)


# ---------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------

ACTION_PHRASES = {
    "walk": "walks in a circle",
    "wave": "waves",
    "dance": "dances",
    "jump": "jumps up and down",
    "cheer": "cheers with both arms raised",
    "turn": "turns around on the spot",
}
_NUMBERS = ("no", "one", "two", "three", "four", "five", "six")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _surface(material: Material) -> str:
    if material.texture == "flat":
        return material.colour
    return f"{material.colour} and {material.colour2} {TEXTURE_WORDS[material.texture]}"


def _count(number: int, noun: str) -> str:
    return f"{_NUMBERS[number]} {noun}{'' if number == 1 else 's'}"


def describe_character(character: CharacterSpec) -> str:
    """e.g. 'a tall slim man in a red shirt and blue trousers'."""
    words = []
    if character.height >= 1.8:
        words.append("tall")
    elif character.height <= 1.6:
        words.append("short")
    if character.build >= 1.12:
        words.append("stocky")
    elif character.build <= 0.9:
        words.append("slim")
    words.append(character.figure)
    phrase = " ".join(words)
    return f"{_article(phrase)} {phrase} in {_article(character.shirt)} {character.shirt} shirt and " \
        f"{character.trousers} trousers"  # fmt: skip


def describe_scene(spec: SceneSpec) -> str:
    """A caption of the scene: environment, then who does what, then the light."""
    ground = spec.planes[0].material
    if spec.environment == "outdoor":
        sentence = f"An outdoor {spec.place} with {_article(_surface(ground))} {_surface(ground)} ground"
        buildings = [b for b in spec.boxes if b.kind == "building"]
        walls = [b for b in spec.boxes if b.kind == "wall"]
        extras = []
        if buildings:
            colours = sorted({b.material.colour for b in buildings})
            extras.append(f"{_count(len(buildings), 'building')} in {' and '.join(colours)}")
        if walls:
            extras.append(_count(len(walls), "wall"))
        sentence += (", " + " and ".join(extras) if extras else "") + "."
    else:
        wall = spec.planes[1].material
        sentence = (f"An indoor {spec.place} with {_article(_surface(ground))} {_surface(ground)} floor and "
                    f"{_surface(wall)} walls{'' if spec.has_ceiling else ', open to the sky'}.")  # fmt: skip
    props = [("crate", sum(b.kind == "crate" for b in spec.boxes)), ("ball", len(spec.spheres)),
             ("pillar", len(spec.pillars))]  # fmt: skip
    props = [_count(n, noun) for noun, n in props if n]
    if props:
        sentence += f" There {'is' if props[0].startswith('one ') else 'are'} {', '.join(props)} around."
    actors = [f"{describe_character(c)} {ACTION_PHRASES[c.action]}" for c in spec.characters]
    if len(actors) == 1:
        people = actors[0]
    elif len(actors) == 2:
        people = f"{actors[0]} while {actors[1]}"
    else:
        people = f"{', '.join(actors[:-1])}, and {actors[-1]}"
    light = "The sun casts hard shadows." if spec.light.kind == "sun" else "A single lamp lights the room."
    return f"{sentence} {people[0].upper()}{people[1:]}. {light}"
