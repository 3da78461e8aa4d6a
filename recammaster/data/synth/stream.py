"""Training batches straight from the ray caster: synthetic scenes rendered on the fly, never on disk.

:class:`SyntheticPairStream` draws scene 1, 2, 3 ... of a seed exactly as
:func:`recammaster.data.synth.engine.synthesize` does, renders all ten cameras of each scene once on
``device``, and draws several (source, target) pairs from it, as upstream's training set does (spec
``upstream-recammaster.md`` §3.5, §3.3; see :mod:`recammaster.data.pairs`): a target camera of the
scene, and a source camera uniform among the scene's other cameras; the camera condition is the target
trajectory relative to the *source* camera's frame 0.

Frames have the values :class:`recammaster.data.pairs.MultiCamPairs` gives for the same scene written
to files, less the video codec: for a ``height`` x ``width`` that is not square the renderer draws the
centre crop of a square render directly (the same lens, a wider or taller image), which is what the
resize-and-centre-crop of a square video shows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from recammaster.cameras.conventions import camera_condition, latent_frame_indices
from recammaster.cameras.lens import Lens
from recammaster.data.synth.engine import CAMERAS, make_scene, to_render_scene
from recammaster.data.synth.render import RenderTensors, render_tensors
from recammaster.data.synth.scene import NUM_FRAMES, SceneSpec, describe_scene

_PAIR_STREAM = 1  # a third seed word, so pair draws never share a generator with scene draws


def crop_intrinsics(lens: Lens, height: int, width: int) -> np.ndarray:
    """Pinhole matrix of the centre ``height`` x ``width`` crop of a square render of side max(height, width)."""
    side = max(height, width)
    focal_px = lens.focal_length_mm / lens.sensor_size_mm * side
    return np.array([[focal_px, 0.0, width / 2], [0.0, focal_px, height / 2], [0.0, 0.0, 1.0]])


def draw_pairs(seed: int, scene_index: int, count: int) -> list[tuple[int, int]]:
    """(source, target) camera indices (0-based) of a scene: distinct targets, each with another source."""
    generator = np.random.default_rng([seed, scene_index, _PAIR_STREAM])
    targets = generator.permutation(CAMERAS)[: min(count, CAMERAS)]
    pairs = []
    for target in targets.tolist():
        choice = int(generator.integers(CAMERAS - 1))
        pairs.append((choice + (choice >= target), target))  # skip the target camera itself
    return pairs


class SyntheticPairStream:
    """An endless (or ``num_scenes`` long) iterable of training batches rendered on ``device``.

    Args:
        seed: the run's seed: scene N is ``make_scene(seed, N)``, as in the files ``synthesize`` writes.
        size: side of square frames, unless ``height`` and ``width`` are given.
        num_frames: frames per clip, 4k+1 (default 81).
        batch_size: pairs per batch; a batch may mix scenes.
        device: where rendering happens and where the batches are.
        height, width: a non-square frame size (both or neither), e.g. 480 x 832.
        pairs_per_scene: pairs drawn from each rendered scene (at most 10: distinct target cameras).
        num_scenes: stop after this many scenes (the last batch may be smaller); None never stops.
        supersample: 2x2 rays per pixel.
        first_scene: number of the first scene (scenes are numbered from 1).

    Each batch is a dict: ``source_video`` and ``target_video`` (B, 3, T, H, W) float32 in [-1, 1],
    ``camera`` (B, latent frames, 12) float32, all on ``device``; ``caption`` (list of B str), and
    ``scene`` (list of scene numbers), ``source_camera`` and ``target_camera`` (lists of 0-based indices).
    """

    def __init__(
        self,
        seed: int = 0,
        size: int = 64,
        num_frames: int = NUM_FRAMES,
        batch_size: int = 4,
        device: str | torch.device = "cpu",
        height: int | None = None,
        width: int | None = None,
        *,
        pairs_per_scene: int = CAMERAS,
        num_scenes: int | None = None,
        supersample: bool = False,
        first_scene: int = 1,
    ) -> None:
        latent_frame_indices(num_frames)  # raises for counts that are not 4k+1
        if (height is None) != (width is None):
            raise ValueError("give both height and width, or neither")
        self.height, self.width = (size, size) if height is None else (int(height), int(width))
        if self.height < 1 or self.width < 1:
            raise ValueError(f"frame size must be positive, got {self.height}x{self.width}")
        if batch_size < 1 or pairs_per_scene < 1:
            raise ValueError("batch_size and pairs_per_scene must be at least 1")
        self.seed, self.num_frames, self.batch_size = seed, num_frames, batch_size
        self.device = torch.device(device)
        self.pairs_per_scene = min(pairs_per_scene, CAMERAS)
        self.num_scenes, self.supersample, self.first_scene = num_scenes, supersample, first_scene

    def render(self, spec: SceneSpec) -> torch.Tensor:
        """All ten cameras of a scene as uint8 (cameras, T, H, W, 3) on the device."""
        return self._render(spec, masks=False).images

    def render_with_masks(self, spec: SceneSpec, *, character_speed: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """All ten cameras' images, as :meth:`render`, and where the characters are: uint8 (cameras, T, H, W),
        0 for none, k for the k-th character (from one ray of each pixel when supersampling). Masks cost no
        extra rays. ``character_speed``: see :func:`recammaster.data.synth.engine.to_render_scene`."""
        out = self._render(spec, masks=True, character_speed=character_speed)
        return out.images, out.masks

    def _render(self, spec: SceneSpec, *, masks: bool, character_speed: float = 1.0) -> RenderTensors:
        poses = np.stack([t.poses for t in spec.trajectories])
        intrinsics = crop_intrinsics(spec.lens, self.height, self.width)
        scene = to_render_scene(spec, character_speed=character_speed)
        return render_tensors(scene, poses, intrinsics, (self.height, self.width), device=self.device,
                              supersample=self.supersample, masks=masks)  # fmt: skip

    @staticmethod
    def to_video(images: torch.Tensor) -> torch.Tensor:
        """uint8 (..., T, H, W, 3) -> float32 (..., 3, T, H, W) in [-1, 1], as upstream scales frames."""
        pixels = torch.movedim(images, -1, -4).float()
        return pixels.div(255).sub(0.5).div(0.5)

    def scene_pairs(self, index: int) -> Iterator[dict]:
        """The pairs of scene ``index``, one dict each (videos on the device, unbatched)."""
        spec = make_scene(self.seed, index, self.num_frames)
        images = self.render(spec)
        for source, target in draw_pairs(self.seed, index, self.pairs_per_scene):
            yield self.pair(spec, images, index, source, target)

    def pair(self, spec: SceneSpec, images: torch.Tensor, index: int, source: int, target: int) -> dict:
        """One training pair of a rendered scene: the target camera relative to the source's frame 0."""
        condition = camera_condition(spec.trajectories[target].poses, reference=spec.trajectories[source].poses[0])
        return {
            "source_video": self.to_video(images[source]),
            "target_video": self.to_video(images[target]),
            "camera": torch.from_numpy(condition).to(self.device),
            "caption": describe_scene(spec),
            "scene": index,
            "source_camera": source,
            "target_camera": target,
        }

    def __iter__(self) -> Iterator[dict]:
        pending: list[dict] = []
        index = self.first_scene
        while self.num_scenes is None or index < self.first_scene + self.num_scenes:
            for pair in self.scene_pairs(index):
                pending.append(pair)
                if len(pending) == self.batch_size:
                    yield self._collate(pending)
                    pending = []
            index += 1
        if pending:
            yield self._collate(pending)

    @staticmethod
    def _collate(pairs: list[dict]) -> dict:
        batch = {key: torch.stack([p[key] for p in pairs]) for key in ("source_video", "target_video", "camera")}
        for key in ("caption", "scene", "source_camera", "target_camera"):
            batch[key] = [p[key] for p in pairs]
        return batch


class SyntheticPairs(SyntheticPairStream):
    """The stream's pairs by number, for samplers: pair ``key`` is pair ``key % pairs_per_scene`` of scene
    ``first_scene + key // pairs_per_scene``, the same pair the stream yields at that position.

    There is no end and no ``len``. The last rendered scene is kept, so consecutive keys of one scene
    render it once. Items are unbatched dicts on ``device`` (use a DataLoader without workers on a GPU).
    """

    def __init__(self, seed: int = 0, size: int = 64, num_frames: int = NUM_FRAMES, **options) -> None:
        super().__init__(seed, size, num_frames, **options)
        self._rendered: tuple[int, SceneSpec, torch.Tensor] | None = None

    def __getitem__(self, key: int) -> dict:
        if key < 0:
            raise IndexError(f"pair numbers start at 0, got {key}")
        index, offset = self.first_scene + key // self.pairs_per_scene, key % self.pairs_per_scene
        if self._rendered is None or self._rendered[0] != index:
            spec = make_scene(self.seed, index, self.num_frames)
            self._rendered = (index, spec, self.render(spec))
        _, spec, images = self._rendered
        source, target = draw_pairs(self.seed, index, self.pairs_per_scene)[offset]
        return self.pair(spec, images, index, source, target)
