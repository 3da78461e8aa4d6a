"""Scenes -> files: the synthetic MultiCamVideo data set, in the official layout.

For scene N (numbered from 1) this writes, exactly as the seed README's "File Structure" shows::

    out_dir/train/<lens folder, e.g. f24_aperture5>/sceneN/videos/cam01.mp4 ... cam10.mp4
    out_dir/train/<lens folder>/sceneN/cameras/camera_extrinsics.json

plus, when asked, ``depth/camNN.npz`` (``depth``: float16 (frames, H, W) metres along the camera z
axis, inf for sky) and ``masks/camNN.npz`` (``masks``: uint8 (frames, H, W), 0 background, k the k-th
character of the caption), and ``out_dir/metadata.csv`` (``file_name,text``; file names relative to
``out_dir/train/``, one row per video, the scene's caption as text).

Scene N is drawn from a generator seeded by (seed, N), so it does not depend on how many scenes are
made, and a run is resumable: a scene whose files all exist is skipped. Every file is written
atomically, and the same seed gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from recammaster.cameras.files import write_multicam_json
from recammaster.cameras.multicam_json import camera_name
from recammaster.data.synth.characters import PART_CLOTHING, frame_times, pose_character
from recammaster.data.synth.render import TEXTURE_IDS, RenderOutput, RenderScene, render
from recammaster.data.synth.scene import NUM_FRAMES, PALETTE, SKIN, Material, SceneSpec, describe_scene, sample_scene
from recammaster.fileio import atomic_output, write_text_atomic
from recammaster.video import write_video

FPS = 15  # MultiCamVideo clips are 81 frames at 15 fps
CAMERAS = 10
SIZE_MULTIPLE = 16  # the VAE and patching downsample by 16 overall
OUTDOOR_FOG_M = 80.0
VIDEO_CRF = 18
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps keep .npz files byte-identical across runs


# ---------------------------------------------------------------------------
# Scene -> tensors
# ---------------------------------------------------------------------------


def scene_generator(seed: int, index: int) -> np.random.Generator:
    """The generator of scene ``index`` of run ``seed``; independent of every other scene."""
    return np.random.default_rng([seed, index])


def make_scene(seed: int, index: int, num_frames: int = NUM_FRAMES, walk_share: float | None = None) -> SceneSpec:
    """Scene ``index`` of run ``seed``; ``walk_share``: see :func:`recammaster.data.synth.scene.sample_characters`."""
    return sample_scene(scene_generator(seed, index), num_frames=num_frames, walk_share=walk_share)


def _rgb(name: str) -> tuple[float, float, float]:
    return SKIN[name] if name in SKIN else PALETTE[name]


def to_render_scene(spec: SceneSpec, *, character_speed: float = 1.0) -> RenderScene:
    """The scene's primitives and materials as tensors, characters posed at every frame. ``character_speed``: how
    many times as fast the characters' time runs; 0 holds them as they stand at frame 0 in every frame (what a
    model that only moves the first frame would show), 0.5 plays their motion at half speed from the same start."""
    frames = spec.num_frames
    materials: list[tuple[int, tuple, tuple, float, int]] = []  # texture, colour, colour2, scale, character

    def add(material: Material, character: int = 0) -> None:
        colour, colour2 = _rgb(material.colour), _rgb(material.colour2)
        materials.append((TEXTURE_IDS[material.texture], colour, colour2, material.scale, character))

    for plane in spec.planes:
        add(plane.material)
    for box in spec.boxes:
        add(box.material)
    centres = [np.broadcast_to(s.centre, (frames, 3)) for s in spec.spheres]
    sphere_radii = [s.radius for s in spec.spheres]
    for sphere in spec.spheres:
        add(sphere.material)
    starts = [np.broadcast_to((*p.position, p.radius), (frames, 3)) for p in spec.pillars]
    ends = [np.broadcast_to((*p.position, p.height - p.radius), (frames, 3)) for p in spec.pillars]
    capsule_radii = [p.radius for p in spec.pillars]
    times = frame_times(frames) * character_speed
    poses = [pose_character(c, times) for c in spec.characters]
    for number, (character, body) in enumerate(zip(spec.characters, poses, strict=True), start=1):
        centres.append(body.head)
        sphere_radii.append(body.head_radius)
        add(Material("flat", character.skin, character.skin), number)
    capsule_materials = []
    for number, (character, body) in enumerate(zip(spec.characters, poses, strict=True), start=1):
        starts.extend(body.starts.transpose(1, 0, 2))
        ends.extend(body.ends.transpose(1, 0, 2))
        capsule_radii.extend(body.radii.tolist())
        clothes = {"skin": character.skin, "shirt": character.shirt, "trousers": character.trousers}
        capsule_materials.extend((Material("flat", clothes[part], clothes[part]), number) for part in PART_CLOTHING)
    for pillar in spec.pillars:
        add(pillar.material)
    for material, number in capsule_materials:
        add(material, number)

    def tensor(values, shape) -> torch.Tensor:
        return torch.tensor(np.asarray(values, dtype=np.float32).reshape(shape))

    texture, colour, colour2, scale, character = zip(*materials, strict=True)
    light = spec.light
    return RenderScene(
        plane_axis=torch.tensor([p.axis for p in spec.planes], dtype=torch.int64),
        plane_position=tensor([p.position for p in spec.planes], (-1,)),
        box_low=tensor([b.low for b in spec.boxes], (-1, 3)),
        box_high=tensor([b.high for b in spec.boxes], (-1, 3)),
        sphere_centre=tensor(np.stack(centres, axis=1), (frames, -1, 3)),
        sphere_radius=tensor(sphere_radii, (-1,)),
        capsule_start=tensor(np.stack(starts, axis=1), (frames, -1, 3)),
        capsule_end=tensor(np.stack(ends, axis=1), (frames, -1, 3)),
        capsule_radius=tensor(capsule_radii, (-1,)),
        texture=torch.tensor(texture, dtype=torch.int64),
        colour=tensor(colour, (-1, 3)),
        colour2=tensor(colour2, (-1, 3)),
        scale=tensor(scale, (-1,)),
        character=torch.tensor(character, dtype=torch.int64),
        light_kind=light.kind,
        light_vector=tensor(light.vector, (3,)),
        light_colour=tensor(light.colour, (3,)),
        ambient=light.ambient,
        sky_horizon=tensor(spec.sky[0], (3,)),
        sky_zenith=tensor(spec.sky[1], (3,)),
        fog_distance=OUTDOOR_FOG_M if spec.environment == "outdoor" else float("inf"),
    )


def render_scene(
    spec: SceneSpec,
    size: int,
    *,
    device: str = "cpu",
    supersample: bool = False,
    depth: bool = False,
    masks: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RenderOutput:
    """All ten cameras of ``spec`` at every frame, ``size`` x ``size`` pixels, with the scene's lens."""
    poses = np.stack([t.poses for t in spec.trajectories])
    return render(
        to_render_scene(spec), poses, spec.lens.intrinsics(size, size), size,
        device=device, supersample=supersample, depth=depth, masks=masks, progress=progress,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def scene_folder(out_dir: str | Path, spec: SceneSpec, index: int) -> Path:
    return Path(out_dir) / "train" / spec.lens.folder_name / f"scene{index}"


def scene_files(folder: Path, *, depth: bool, masks: bool) -> list[Path]:
    """Every file a complete scene folder holds."""
    names = [camera_name(i + 1) for i in range(CAMERAS)]
    files = [folder / "videos" / f"{name}.mp4" for name in names]
    files.append(folder / "cameras" / "camera_extrinsics.json")
    if depth:
        files += [folder / "depth" / f"{name}.npz" for name in names]
    if masks:
        files += [folder / "masks" / f"{name}.npz" for name in names]
    return files


def write_npz(path: str | Path, overwrite: bool = False, **arrays: np.ndarray) -> Path:
    """A compressed .npz that np.load reads, with fixed timestamps so equal arrays give equal bytes."""
    with (
        atomic_output(path, overwrite=overwrite) as temporary,
        zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())
    return Path(path)


def write_scene(folder: Path, spec: SceneSpec, output: RenderOutput) -> None:
    """Write one rendered scene's videos, camera file and optional depth and masks (replacing old files)."""
    for camera in range(CAMERAS):
        name = camera_name(camera + 1)
        write_video(folder / "videos" / f"{name}.mp4", output.images[camera], FPS, crf=VIDEO_CRF, overwrite=True)
        if output.depth is not None:
            write_npz(folder / "depth" / f"{name}.npz", overwrite=True, depth=output.depth[camera].astype(np.float16))
        if output.masks is not None:
            write_npz(folder / "masks" / f"{name}.npz", overwrite=True, masks=output.masks[camera])
    # Written last: its presence with all the videos marks the scene as complete.
    write_multicam_json(spec.trajectories, folder / "cameras" / "camera_extrinsics.json", start_pose=None,
                        overwrite=True)  # fmt: skip


def write_metadata(out_dir: Path, rows: list[tuple[str, str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file_name", "text"])
    writer.writerows(rows)
    return write_text_atomic(out_dir / "metadata.csv", buffer.getvalue(), overwrite=True)


@dataclass(frozen=True)
class SynthResult:
    scene_folders: list[Path]
    rendered: int  # scenes rendered by this call
    skipped: int  # complete scenes found and kept
    metadata: Path


def synthesize(
    out_dir: str | Path,
    num_scenes: int,
    size: int = 256,
    seed: int = 0,
    device: str = "cpu",
    depth: bool = False,
    masks: bool = False,
    progress: bool = True,
    *,
    num_frames: int = NUM_FRAMES,
    supersample: bool = False,
    overwrite: bool = False,
) -> SynthResult:
    """Render scenes 1..num_scenes into ``out_dir`` in the MultiCamVideo layout; see the module doc.

    Complete scenes already there are kept unless ``overwrite``; ``metadata.csv`` is rewritten to list
    scenes 1..num_scenes.
    """
    if num_scenes < 1:
        raise ValueError(f"num_scenes must be at least 1, got {num_scenes}")
    if size < SIZE_MULTIPLE or size % SIZE_MULTIPLE:
        raise ValueError(f"size must be a positive multiple of {SIZE_MULTIPLE}, got {size}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be at least 2, got {num_frames}")
    out_dir = Path(out_dir)
    folders, rows = [], []
    rendered = skipped = 0
    scenes = tqdm(range(1, num_scenes + 1), desc="scenes", unit="scene", disable=not progress)
    for index in scenes:
        spec = make_scene(seed, index, num_frames)
        folder = scene_folder(out_dir, spec, index)
        if not overwrite and all(path.is_file() for path in scene_files(folder, depth=depth, masks=masks)):
            skipped += 1
        else:
            with tqdm(total=CAMERAS * num_frames, desc=f"scene{index}", unit="img", leave=False,
                      disable=not progress) as bar:  # fmt: skip
                output = render_scene(spec, size, device=device, supersample=supersample, depth=depth, masks=masks,
                                      progress=bar.update)  # fmt: skip
            write_scene(folder, spec, output)
            rendered += 1
        folders.append(folder)
        caption = describe_scene(spec)
        relative = folder.relative_to(out_dir / "train").as_posix()
        rows += [(f"{relative}/videos/{camera_name(i + 1)}.mp4", caption) for i in range(CAMERAS)]
    metadata = write_metadata(out_dir, rows)
    return SynthResult(folders, rendered, skipped, metadata)
