"""What a training run reads, in an order that survives interruption.

:class:`TrainingOrder` numbers every sample a run will ever see: this rank's q-th sample is the run's
sample g = q * world_size + rank, which is item g % n of the permutation for epoch g // n (seeded by the
run's seed and the epoch). A run resumed at optimizer step s starts at q = s * accumulation * batch size,
so it sees exactly the samples the uninterrupted run would have. Datasets here take the sampler's
``(index, epoch)`` keys; the epoch also seeds the random choice of source camera, as upstream redraws it.

Three sources of pairs: :class:`CachedPairs` (MultiCamVideo clips encoded once by ``train data-process``),
the synthetic engine's :class:`recammaster.data.synth.SyntheticPairs` (rendered on the fly, encoded by the
module), and :class:`SyntheticLatentPool` (a fixed set of synthetic scenes rendered and encoded once, on
the GPU, whose 90 ordered camera pairs per scene are then drawn at no rendering cost).
"""

from __future__ import annotations

from collections.abc import Iterator
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
from recammaster.data.synth.scene import describe_scene
from recammaster.models.text_encoder import encode_prompt
from recammaster.models.vae import encode_video
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


class SyntheticLatentPool(Dataset):
    """Scenes ``first_scene`` .. ``first_scene + num_scenes - 1`` of a seed, every camera rendered and encoded
    once on ``device``; item ``index`` is ordered pair ``index % 90`` of scene ``index // 90`` (target camera
    ``p // 9``, source the ``p % 9``-th of the others), with the target camera relative to the source's
    frame 0 as upstream pairs them. Items are on the device: load them without workers.

    Memory: at 128x128 x 81 frames a scene's ten latent clips take 1.7 MB (bf16), its caption 128 KB.
    """

    PAIRS = CAMERAS * (CAMERAS - 1)

    def __init__(self, vae, tokenizer, text_encoder, *, seed: int, num_scenes: int, height: int, width: int,
                 num_frames: int, device: torch.device | str, first_scene: int = 1, max_sequence_length: int = 512,
                 progress: bool = True) -> None:  # fmt: skip
        from tqdm import tqdm

        if num_scenes < 1:
            raise ValueError(f"a pool needs at least one scene, got {num_scenes}")
        renderer = SyntheticPairStream(seed, num_frames=num_frames, height=height, width=width, device=device)
        self.latents, self.poses, self.text = [], [], []
        scenes = range(first_scene, first_scene + num_scenes)
        with torch.no_grad():
            for index in tqdm(scenes, desc="rendering and encoding the scene pool", unit="scene", disable=not progress):
                spec = make_scene(seed, index, num_frames)
                videos = renderer.to_video(renderer.render(spec)).to(vae.dtype)  # (10, 3, T, H, W)
                self.latents.append(encode_video(vae, videos).to(torch.bfloat16))
                self.poses.append(np.stack([trajectory.poses for trajectory in spec.trajectories]))
                text = encode_prompt(tokenizer, text_encoder, [describe_scene(spec)], max_length=max_sequence_length,
                                     device=device)  # fmt: skip
                self.text.append(text[0].to(torch.bfloat16))
            self._empty_text = encode_prompt(tokenizer, text_encoder, [""], max_length=max_sequence_length,
                                             device=device)[0]  # fmt: skip

    def __len__(self) -> int:
        return len(self.latents) * self.PAIRS

    def empty_text(self) -> torch.Tensor:
        return self._empty_text

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        index = key[0] if isinstance(key, tuple) else key
        scene, pair = divmod(index, self.PAIRS)
        target, other = divmod(pair, CAMERAS - 1)
        source = other + (other >= target)
        poses = self.poses[scene]
        condition = camera_condition(poses[target], reference=poses[source][0])
        latents = self.latents[scene]
        return {
            "target_latents": latents[target],
            "source_latents": latents[source],
            "text": self.text[scene],
            "camera": torch.from_numpy(condition).to(latents.device),
        }
