"""What a training run reads, in an order that survives interruption.

:class:`TrainingOrder` numbers every sample a run will ever see: this rank's q-th sample is the run's
sample g = q * world_size + rank, which is item g % n of the permutation for epoch g // n (seeded by the
run's seed and the epoch). A run resumed at optimizer step s starts at q = s * accumulation * batch size,
so it sees exactly the samples the uninterrupted run would have. Datasets here take the sampler's
``(index, epoch)`` keys; the epoch also seeds the random choice of source camera, as upstream redraws it.

Three sources of pairs: :class:`CachedPairs` (MultiCamVideo clips encoded once by ``train data-process``),
the synthetic engine's :class:`recammaster.data.synth.SyntheticPairs` (rendered on the fly, encoded by the
module), and :class:`SyntheticLatentPool` (a fixed set of synthetic scenes rendered and encoded once, on
the GPU, whose ordered camera pairs, upstream's or those sharing frame 0, are then drawn at no rendering cost).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from recammaster.cameras.conventions import camera_condition
from recammaster.data.multicam import DatasetError
from recammaster.data.pairs import MultiCamPairs
from recammaster.data.synth import SyntheticPairStream
from recammaster.data.synth.engine import CAMERAS, make_scene
from recammaster.data.synth.scene import describe_scene, refilm_trajectories, still_trajectories
from recammaster.fileio import atomic_output
from recammaster.models.text_encoder import encode_prompt
from recammaster.models.vae import encode_video, latent_coverage, spatial_factor
from recammaster.training.cache import find_cached_clip, read_cache_settings, read_cached_clip, read_empty_prompt


class TrainingOrder(Sampler):
    """An endless sequence of sample keys for one rank, starting at this rank's sample ``start``.

    With ``num_items`` the keys are ``(index, epoch)`` (a new permutation every epoch); without (an
    endless source such as the synthetic engine) the key is the run's sample number g itself.
    """

    def __init__(
        self, num_items: int | None, *, seed: int = 0, start: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if num_items is not None and num_items < 1:
            raise ValueError("the dataset is empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        self.num_items, self.seed, self.start, self.rank, self.world_size = num_items, seed, start, rank, world_size

    @lru_cache(maxsize=2)  # noqa: B019 - one sampler per run; the cache holds two permutations
    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_items)

    def key(self, sample: int) -> int | tuple[int, int]:
        """The key of the run's sample number ``sample``."""
        if self.num_items is None:
            return sample
        epoch, offset = divmod(sample, self.num_items)
        return int(self.permutation(epoch)[offset]), epoch

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        position = self.start
        while True:
            yield self.key(position * self.world_size + self.rank)
            position += 1


class CachedPairs(Dataset):
    """MultiCamVideo pairs (upstream's pairing, see :class:`MultiCamPairs`) from cached latents.

    Args:
        dataset: the MultiCamVideo root (for the scenes and their camera files).
        cache_dir: where ``train data-process`` wrote the latents; None looks only for upstream's
            ``<video>.tensors.pth`` beside each video.
        seed: seeds the source-camera draws together with the key.

    Items: ``target_latents``, ``source_latents`` (C, F, h, w), ``text`` (L, D) the target caption's
    embedding, ``camera`` (F, 12) float32. A clip without a cache file is an error naming it. Clips are
    as long as the cache says (upstream's files beside the videos: 81 frames).
    """

    def __init__(self, dataset: str | Path, cache_dir: str | Path | None, *, seed: int = 0) -> None:
        num_frames = 81 if cache_dir is None else int(read_cache_settings(cache_dir)["num_frames"])
        self.pairs = MultiCamPairs(dataset, seed=seed, num_frames=num_frames)
        self.dataset_root = self.pairs.root or Path(dataset)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    def __len__(self) -> int:
        return len(self.pairs)

    def empty_text(self) -> torch.Tensor | None:
        """The empty caption's embedding when the cache has it (for text dropout and sample guidance)."""
        return None if self.cache_dir is None else read_empty_prompt(self.cache_dir)

    def _latents(self, video: Path):
        path = find_cached_clip(self.cache_dir, self.dataset_root, video)
        if path is None:
            where = f"in {self.cache_dir}" if self.cache_dir is not None else "beside the video"
            raise DatasetError(f"{video}: no cached latents {where}; run `recammaster train data-process` first")
        return read_cached_clip(path)

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        pair = self.pairs.describe(index, epoch)
        target, source = self._latents(pair.target_video), self._latents(pair.source_video)
        return {
            "target_latents": target.latents,
            "source_latents": source.latents,
            "text": target.context,
            "camera": torch.from_numpy(pair.camera),
        }


STILL_SOURCES = ("none", "only", "also")  # SyntheticLatentPool's tripod sources: none, every pair's, or added
POOL_PART_SCENES = 25  # a pool being rendered is kept this many scenes at a time, to go on after a stop
_REFILM_STREAM = 3  # a seed word of its own: re-filming draws share no generator with the scene's draws


def _part_name(first: int) -> str:
    """The file of a pool's scenes ``first`` .. ``first + POOL_PART_SCENES - 1`` (counted from 0), while rendering."""
    return f"scenes-{first:05d}.pt"


def _load_pool_file(path: Path, settings: dict, device: torch.device | str) -> dict:
    """A pool file or part, checked to hold a pool of ``settings``."""
    saved = torch.load(path, map_location=device, weights_only=False)
    kept = saved.get("settings", settings)  # pools written before settings were kept pass
    if kept != settings:
        differences = ", ".join(f"{key} {kept.get(key)} (asked {settings.get(key)})"
                                for key in dict.fromkeys([*settings, *kept])
                                if kept.get(key) != settings.get(key))  # fmt: skip
        raise DatasetError(f"{path}: a scene pool of other settings: {differences}; name another pool file")
    return saved


class SyntheticLatentPool(Dataset):
    """Scenes ``first_scene`` .. ``first_scene + num_scenes - 1`` of a seed, every camera rendered and encoded
    once on ``device``, paired within groups of cameras; the target camera is relative to the source's frame 0.

    - ``refilm=0``, upstream's pairs: one group, the scene's ten cameras, 90 ordered pairs per scene; pair p
      has target camera ``p // 9`` and as source the ``p % 9``-th of the others.
    - ``refilm=R``: R more cameras start at each camera's first pose
      (:func:`recammaster.data.synth.scene.refilm_trajectories`), making ten groups of 1 + R cameras that
      share frame 0, as a request and its source video do; pairs are the ordered pairs within a group,
      numbered group by group in the same way, (1 + R) R of them per group.
    - ``refilm=R, still_sources="only"``: each group also gets a camera standing still at its first pose (a
      tripod), and it is every pair's source: 1 + R pairs per group, pair p targets member ``p % (1 + R)`` of
      group ``p // (1 + R)``. A tripod's frame of a time shows the characters where the target sees them then,
      so only reading that frame re-films them; moving its first frame by the camera, the shortcut that pairs
      of two moving cameras allow, loses every character that moves.
    - ``still_sources="also"``: the tripod pairs, then the moving cameras' pairs as with ``refilm=R``
      ((1 + R) (1 + R) pairs per group; with R = 1 half of them have a tripod source).
    - ``twin_speeds=(s1, s2, ...)``: every camera is rendered once more for each speed, the characters' time running
      that many times as fast (:func:`recammaster.data.synth.engine.to_render_scene`; 0 holds them as at frame 0):
      clips ``kC .. (k + 1)C - 1`` of a scene's C for the k-th. A scene's pairs above come first, then their twins
      speed by speed in the same order: the same cameras on those clips (``(1 + K) P`` pairs a scene for ``P`` and K
      speeds). A pair and its twins share the caption, the cameras and the source's first frame; only the source's
      later frames tell how the target's characters move, so the first-frame shortcut costs loss on all but one, and
      with two speeds or more neither the caption nor frame 0 tells the motion that is not held still.

    Item ``index`` is pair ``index % pairs_per_scene`` of scene ``index // pairs_per_scene``. Items are on the
    device: load them without workers. Memory: at 128x128 x 81 frames one latent clip takes 172 KB (bf16),
    a scene's caption 128 KB.

    ``walk_share`` and ``still_share`` change the scenes' mix (:func:`recammaster.data.synth.scene.sample_characters`)
    and the re-filmings' (:func:`recammaster.data.synth.scene.refilm_trajectories`); their defaults keep the engine's.

    Items also hold ``target_characters`` (F, h, w): the share of each target latent value's pixels that show a
    character (:func:`recammaster.models.vae.latent_coverage` of the renderer's masks), for a loss that weighs
    characters more. Pool files written before these were kept load without them.
    """

    def __init__(self, vae, tokenizer, text_encoder, *, seed: int, num_scenes: int, height: int, width: int,
                 num_frames: int, device: torch.device | str, first_scene: int = 1, max_sequence_length: int = 512,
                 progress: bool = True, cache: Path | None = None, refilm: int = 0, walk_share: float | None = None,
                 still_share: float = 0.0, still_sources: str = "none",
                 twin_speeds: Sequence[float] = ()) -> None:  # fmt: skip
        """``cache``: a file the pool is read from when it exists and written to when not, so that a resumed
        run, or another run of the same pool, skips the rendering. It records the pool's settings; a file of
        other settings is an error. It does not record the VAE and text encoder: one file, one model_dir.
        While rendering, every ``POOL_PART_SCENES`` scenes are also kept in ``<cache>.parts/``, so that a render
        stopped by a device's time limit goes on from its last part; the parts are removed once ``cache`` is."""
        if num_scenes < 1:
            raise ValueError(f"a pool needs at least one scene, got {num_scenes}")
        if refilm < 0:
            raise ValueError(f"refilm must not be negative, got {refilm}")
        if still_share and not refilm:
            raise ValueError("still_share needs re-filmings (refilm > 0): the still cameras are re-filmings")
        if still_sources not in STILL_SOURCES:
            raise ValueError(f"still_sources must be one of {', '.join(STILL_SOURCES)}, got {still_sources!r}")
        if still_sources != "none" and not refilm:
            raise ValueError("still_sources needs re-filmings (refilm > 0): the sources stand at their groups' start")
        self.refilm = refilm
        self.group_size = 1 + refilm if refilm else CAMERAS
        moving_pairs = (CAMERAS if refilm else 1) * self.group_size * (self.group_size - 1)
        self.tripod_pairs = 0 if still_sources == "none" else CAMERAS * self.group_size
        self.pairs_per_twin = self.tripod_pairs + (0 if still_sources == "only" else moving_pairs)
        self.pairs_per_scene = self.pairs_per_twin * (1 + len(twin_speeds))
        settings = {"seed": seed, "first_scene": first_scene, "num_scenes": num_scenes, "height": height,
                    "width": width, "num_frames": num_frames, "refilm": refilm,
                    "max_sequence_length": max_sequence_length}  # fmt: skip
        # the mix is recorded only when it is not the engine's, so that pool files written before it existed match
        if walk_share is not None:
            settings["walk_share"] = walk_share
        if still_share:
            settings["still_share"] = still_share
        if still_sources != "none":
            settings["still_sources"] = still_sources
        if twin_speeds:
            settings["twin_speeds"] = [float(speed) for speed in twin_speeds]
        if cache is not None and cache.is_file():
            saved = _load_pool_file(cache, settings, device)
            self.latents, self.poses, self.text = saved["latents"], saved["poses"], saved["text"]
            self._empty_text, self.characters = saved["empty_text"], saved.get("characters")
            return
        parts = None if cache is None else cache.with_name(cache.name + ".parts")
        self._render(vae, tokenizer, text_encoder, seed, range(first_scene, first_scene + num_scenes), height, width,
                     num_frames, device, max_sequence_length, progress, walk_share, still_share, twin_speeds,
                     parts, settings)  # fmt: skip
        if cache is not None:
            with atomic_output(cache, overwrite=True) as partial:  # ranks of one host write the same pool
                torch.save({"latents": self.latents, "poses": self.poses, "text": self.text,
                            "empty_text": self._empty_text, "characters": self.characters, "settings": settings},
                           partial)  # fmt: skip
            shutil.rmtree(parts, ignore_errors=True)  # another rank may be removing them too

    def _render(self, vae, tokenizer, text_encoder, seed, scenes, height, width, num_frames, device,
                max_sequence_length, progress, walk_share, still_share, twin_speeds, parts,
                settings) -> None:  # fmt: skip
        from tqdm import tqdm

        renderer = SyntheticPairStream(seed, num_frames=num_frames, height=height, width=width, device=device)
        self.latents, self.poses, self.text, self.characters = [], [], [], []
        while parts is not None and (parts / _part_name(len(self.latents))).is_file():  # an earlier render's parts
            saved = _load_pool_file(parts / _part_name(len(self.latents)), settings, device)
            for name in ("latents", "poses", "text", "characters"):
                getattr(self, name).extend(saved[name])
        spatial = spatial_factor(vae.config)
        with torch.no_grad():
            for index in tqdm(scenes[len(self.latents) :], desc="rendering and encoding the scene pool", unit="scene",
                              initial=len(self.latents), total=len(scenes), disable=not progress):  # fmt: skip
                spec = make_scene(seed, index, num_frames, walk_share)
                if self.refilm:
                    refilm_rng = np.random.default_rng([seed, index, _REFILM_STREAM])
                    extra = refilm_trajectories(spec, refilm_rng, self.refilm, still_share)
                    if self.tripod_pairs:  # after the re-filmings, which then draw as without them
                        extra += still_trajectories(spec)
                    spec = dataclasses.replace(spec, trajectories=spec.trajectories + extra)
                latents, characters = [], []
                for speed in (1.0, *twin_speeds):
                    images, masks = renderer.render_with_masks(spec, character_speed=speed)
                    videos = renderer.to_video(images).to(vae.dtype)  # (cameras, 3, T, H, W)
                    latents.append(encode_video(vae, videos).to(torch.bfloat16))
                    characters.append(latent_coverage(masks > 0, spatial).to(torch.bfloat16))
                self.latents.append(torch.cat(latents))
                self.characters.append(torch.cat(characters))
                self.poses.append(np.stack([trajectory.poses for trajectory in spec.trajectories]))
                text = encode_prompt(tokenizer, text_encoder, [describe_scene(spec)], max_length=max_sequence_length,
                                     device=device)  # fmt: skip
                self.text.append(text[0].to(torch.bfloat16))
                done = len(self.latents)
                if parts is not None and (done % POOL_PART_SCENES == 0 or done == len(scenes)):
                    first = (done - 1) // POOL_PART_SCENES * POOL_PART_SCENES
                    with atomic_output(parts / _part_name(first), overwrite=True) as partial:
                        torch.save({name: getattr(self, name)[first:]
                                    for name in ("latents", "poses", "text", "characters")}
                                   | {"settings": settings}, partial)  # fmt: skip
            self._empty_text = encode_prompt(tokenizer, text_encoder, [""], max_length=max_sequence_length,
                                             device=device)[0]  # fmt: skip

    def __len__(self) -> int:
        return len(self.latents) * self.pairs_per_scene

    def empty_text(self) -> torch.Tensor:
        return self._empty_text

    def clip(self, group: int, member: int) -> int:
        """The clip of a group's member: member 0 is the scene's camera ``group``, then its re-filmings."""
        if not self.refilm:
            return member
        return group if member == 0 else CAMERAS + group * self.refilm + member - 1

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        index = key[0] if isinstance(key, tuple) else key
        scene, pair = divmod(index, self.pairs_per_scene)
        twin, pair = divmod(pair, self.pairs_per_twin)
        if pair < self.tripod_pairs:
            group, member = divmod(pair, self.group_size)
            target, source = self.clip(group, member), CAMERAS * self.group_size + group
        else:
            group, pair = divmod(pair - self.tripod_pairs, self.group_size * (self.group_size - 1))
            target, other = divmod(pair, self.group_size - 1)
            target, source = self.clip(group, target), self.clip(group, other + (other >= target))
        poses = self.poses[scene]
        condition = camera_condition(poses[target], reference=poses[source][0])
        latents = self.latents[scene]
        offset = twin * len(poses)  # a twin's clips follow the scene's own and the earlier twins'
        target, source = target + offset, source + offset
        item = {
            "target_latents": latents[target],
            "source_latents": latents[source],
            "text": self.text[scene],
            "camera": torch.from_numpy(condition).to(latents.device),
        }
        if self.characters is not None:
            item["target_characters"] = self.characters[scene][target]
        return item
