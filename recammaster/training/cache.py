"""Latent caching (``recammaster train data-process``): every clip VAE-encoded and its caption umT5-encoded, once.

Upstream's first training stage (spec ``upstream-recammaster.md`` §5.1) encodes each MultiCamVideo clip
(frames 0..80, scaled to cover 480x832 and centre-cropped) with the VAE and its caption with umT5, and
saves ``<video>.tensors.pth`` = ``{"latents": (16, 21, 60, 104) bf16, "prompt_emb": {"context": (1, 512,
4096) bf16}, "image_emb": {}}``, so training never runs the two frozen encoders. We keep the content and
change the container:

- one safetensors file per clip under a cache folder that mirrors the dataset,
  ``<cache>/train/f18_aperture10/scene1/videos/cam01.mp4.safetensors``, holding ``latents`` (C, F, h, w)
  and ``context`` (n, D) in bf16 plus the caption and the settings as metadata. The context keeps only
  its first n rows: encode_prompt zeroes every row past the caption's tokens, and :func:`pad_context`
  puts those zeros back on reading, exactly; that is about 95% of upstream's bytes;
- ``cache.json`` records the settings, and a later run with other settings is refused instead of
  mixing clips of two sizes; ``empty_prompt.safetensors`` holds the empty caption's embedding (text
  dropout, guidance);
- a clip that cannot be read is reported with its reason, never skipped silently (upstream moves on
  to the next index), and the other clips are still cached; cached clips are skipped, so a run resumes;
- clip i of the dataset belongs to shard i % num_shards, so several processes or GPUs share the work.

:func:`read_cached_clip` reads our files and upstream's ``.tensors.pth`` alike.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from recammaster.data.multicam import (
    CAMERA_NAMES,
    METADATA_FILE,
    DatasetError,
    find_scenes,
    is_scene_folder,
    locate_root,
)
from recammaster.data.pairs import lookup_caption, read_captions
from recammaster.errors import ReCamMasterError
from recammaster.fileio import atomic_output, write_text_atomic
from recammaster.models.text_encoder import encode_prompt
from recammaster.models.vae import TEMPORAL_FACTOR, encode_video, spatial_factor
from recammaster.pipeline import ReCamMasterPipeline
from recammaster.pipeline.recammaster_pipeline import check_video_size
from recammaster.video import VideoError, preprocess_frames, read_video

CACHE_SUFFIX = ".safetensors"  # appended to the video's name: cam01.mp4.safetensors
UPSTREAM_SUFFIX = ".tensors.pth"  # upstream's file, beside the video
SETTINGS_FILE = "cache.json"
EMPTY_PROMPT_FILE = "empty_prompt.safetensors"
REPORT_STEM = "data_process_report"
CACHE_DTYPE = torch.bfloat16  # upstream's; the encoders' outputs lose nothing the DiT would see in bf16
DEFAULT_MAX_SEQUENCE_LENGTH = 512
DEFAULT_SPLITS = ("train",)  # what training draws from; the validation scenes are not trained on


class CacheError(ReCamMasterError, ValueError):
    """A latent cache that cannot be made or read as asked: bad settings, a damaged file, another run's settings."""


# ---------------------------------------------------------------------------
# Where things live
# ---------------------------------------------------------------------------


def cache_path(cache_dir: str | Path, dataset_root: str | Path, video: str | Path) -> Path:
    """``<cache_dir>/<video relative to dataset_root>.safetensors``; the root is the folder holding ``train/``
    (or a lone scene folder)."""
    video, dataset_root = Path(video), Path(dataset_root)
    try:
        relative = video.relative_to(dataset_root)
    except ValueError:
        raise DatasetError(f"{video}: not inside the dataset folder {dataset_root}") from None
    return Path(cache_dir) / relative.with_name(relative.name + CACHE_SUFFIX)


def find_cached_clip(cache_dir: str | Path | None, dataset_root: str | Path, video: str | Path) -> Path | None:
    """Our cache file of ``video`` (when there is a cache folder), else upstream's ``<video>.tensors.pth`` beside
    it, else None."""
    if cache_dir is not None and (ours := cache_path(cache_dir, dataset_root, video)).is_file():
        return ours
    upstream = Path(video).with_name(Path(video).name + UPSTREAM_SUFFIX)
    return upstream if upstream.is_file() else None


def report_path(cache_dir: str | Path, shard_index: int = 0, num_shards: int = 1) -> Path:
    """``data_process_report.json``, or ``data_process_report.shard{i}.json`` when the work is sharded."""
    shard = f".shard{shard_index}" if num_shards > 1 else ""
    return Path(cache_dir) / f"{REPORT_STEM}{shard}.json"


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def trim_context(context: torch.Tensor) -> torch.Tensor:
    """(L, D) -> (n, D) without the all-zero rows at the end, which are the padding encode_prompt zeroes.

    Lossless whatever the rows hold: :func:`pad_context` restores exactly the zeros removed here.
    """
    rows = context.ne(0).any(dim=1).nonzero()
    return context[: int(rows[-1]) + 1 if len(rows) else 0]


def pad_context(context: torch.Tensor, length: int) -> torch.Tensor:
    """(n, D) -> (length, D) with zero rows appended, as the DiT's cross-attention expects (it takes no mask)."""
    return torch.nn.functional.pad(context, (0, 0, 0, length - len(context)))


def _write_entry(path: Path, tensors: dict[str, torch.Tensor], metadata: Mapping[str, Any]) -> None:
    tensors = {name: value.detach().to("cpu", CACHE_DTYPE).contiguous() for name, value in tensors.items()}
    with atomic_output(path, overwrite=True) as temporary:  # identical content if two runs race
        save_file(tensors, temporary, metadata={key: str(value) for key, value in metadata.items()})


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(path, framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}, dict(handle.metadata() or {})  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise CacheError(f"{path}: damaged or not a safetensors file ({error}); delete it and cache it again") from None


def _tensor(tensors: object, key: str, ndim: int, path: Path, name: str | None = None) -> torch.Tensor:
    """``tensors[key]``, checked to be a tensor of ``ndim`` dimensions; ``name`` is how the error calls it."""
    value = tensors.get(key) if isinstance(tensors, Mapping) else None
    name = name or repr(key)
    if not isinstance(value, torch.Tensor):
        raise CacheError(f"{path}: lacks the tensor {name}")
    if value.ndim != ndim:
        raise CacheError(f"{path}: the tensor {name} has shape {tuple(value.shape)}, expected {ndim} dimensions")
    return value


def _read_context(path: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor, str]:
    """Our file's tensors, its context padded back to full length, and its caption."""
    tensors, metadata = _read_safetensors(path)
    context = _tensor(tensors, "context", 2, path)
    try:
        length = int(metadata["max_sequence_length"])
    except (KeyError, ValueError):
        raise CacheError(f"{path}: lacks the metadata max_sequence_length (an integer)") from None
    if len(context) > length:
        raise CacheError(f"{path}: the context has {len(context)} rows, more than max_sequence_length {length}")
    return tensors, pad_context(context, length), metadata.get("caption", "")


@dataclass
class CachedClip:
    """One cached clip: normalised VAE latents (C, F, h, w), the caption's embedding (max_sequence_length, D)
    zero past its tokens, and the caption ("" for upstream's files, which do not keep it)."""

    latents: torch.Tensor
    context: torch.Tensor
    caption: str


def read_cached_clip(path: str | Path) -> CachedClip:
    """Read our ``.safetensors`` or upstream's ``.tensors.pth``; a damaged or incomplete file raises a CacheError."""
    path = Path(path)
    if path.name.endswith(UPSTREAM_SUFFIX):
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
            raise CacheError(f"{path}: damaged or not a torch file ({type(error).__name__})") from None
        if not isinstance(data, Mapping):
            raise CacheError(f"{path}: holds a {type(data).__name__}, not upstream's dict of latents and prompt_emb")
        context = _tensor(data.get("prompt_emb"), "context", 3, path, name="prompt_emb['context']")
        return CachedClip(_tensor(data, "latents", 4, path), context[0], "")
    tensors, context, caption = _read_context(path)
    return CachedClip(_tensor(tensors, "latents", 4, path), context, caption)


def read_empty_prompt(cache_dir: str | Path) -> torch.Tensor:
    """The empty caption's embedding (max_sequence_length, D), for text dropout and guidance in training."""
    path = Path(cache_dir) / EMPTY_PROMPT_FILE
    if not path.is_file():
        raise CacheError(f"{path}: not found; shard 0 of `recammaster train data-process` writes it")
    return _read_context(path)[1]


# ---------------------------------------------------------------------------
# Settings and inputs
# ---------------------------------------------------------------------------


def read_cache_settings(cache_dir: str | Path) -> dict[str, Any]:
    """The settings ``cache.json`` records (height, width, num_frames, ...), for readers of the cache."""
    path = Path(cache_dir) / SETTINGS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise CacheError(f"{path}: not found; is {cache_dir} a `recammaster train data-process` output?") from error
    except (OSError, json.JSONDecodeError) as error:
        raise CacheError(f"{path}: unreadable ({error})") from error


def _check_settings(cache_dir: Path, settings: Mapping[str, Any]) -> None:
    """Refuse a cache folder whose ``cache.json`` disagrees with ``settings`` on any setting both hold."""
    path = cache_dir / SETTINGS_FILE
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CacheError(f"{path}: damaged ({error}); delete it only if all clips were cached alike") from None
    for key, value in settings.items():
        if key in recorded and recorded[key] != value:
            raise CacheError(
                f"{cache_dir}: this cache was made with {key} {recorded[key]!r}, not {value!r}; "
                "use the same settings to resume it, or another output folder"
            )


def check_cache_inputs(
    dataset_root: str | Path,
    cache_dir: str | Path,
    *,
    height: int = 480,
    width: int = 832,
    num_frames: int = 81,
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
    splits: Sequence[str] = DEFAULT_SPLITS,
) -> tuple[Path, list[Path]]:
    """Everything that can be refused before a model loads: sizes, the dataset, a cache made otherwise.

    Returns the dataset root (the folder holding ``train/``, or a lone scene folder) and every clip in order:
    camera i % 10 of scene i // 10, as :class:`~recammaster.data.MultiCamPairs` numbers its items.
    """
    try:
        check_video_size(num_frames, height, width)  # 4k+1 frames (its own error), sides multiples of 16
    except ValueError as error:
        raise CacheError(str(error)) from error
    if max_sequence_length < 1:
        raise CacheError(f"max_sequence_length must be at least 1, got {max_sequence_length}")
    root = Path(dataset_root) if is_scene_folder(Path(dataset_root)) else locate_root(dataset_root)
    scenes = find_scenes(root, splits)
    if not scenes:
        raise DatasetError(f"{root}: holds no scenes in {', '.join(splits)}")
    _check_settings(Path(cache_dir), _settings(root, height, width, num_frames, max_sequence_length))
    return root, [scene.video_path(camera) for scene in scenes for camera in CAMERA_NAMES]


def _settings(root: Path, height: int, width: int, num_frames: int, max_sequence_length: int) -> dict[str, Any]:
    return {"height": height, "width": width, "num_frames": num_frames, "max_sequence_length": max_sequence_length,
            "dataset_root": str(root.resolve())}  # fmt: skip


# ---------------------------------------------------------------------------
# Caching
# ---------------------------------------------------------------------------


@dataclass
class CacheReport:
    """What one run (one shard) did: clips encoded, skipped as already cached, failed with their reason, and
    the clips without a caption (encoded with "")."""

    shard_index: int = 0
    num_shards: int = 1
    clips: int = 0  # the shard's share of the dataset
    encoded: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    missing_captions: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard_index": self.shard_index, "num_shards": self.num_shards, "clips": self.clips,
            "encoded": self.encoded, "skipped": self.skipped,
            "failed": [{"path": str(path), "reason": reason} for path, reason in self.failed],
            "missing_captions": [str(path) for path in self.missing_captions],
        }  # fmt: skip


class _ClipReader(Dataset):
    """Decodes clips as MultiCamPairs does, in DataLoader workers if asked, so decoding overlaps encoding.

    A clip that cannot be read comes back as its reason instead of raising: one broken file must not stop
    the loader, and the run reports it at the end.
    """

    def __init__(self, videos: Sequence[Path], num_frames: int, height: int, width: int) -> None:
        self.videos, self.num_frames, self.height, self.width = list(videos), num_frames, height, width

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            frames = read_video(self.videos[index], self.num_frames)
        except VideoError as error:
            return index, None, str(error).removeprefix(f"{error.path}: ")
        return index, preprocess_frames(frames, self.height, self.width), None


def cache_dataset(
    pipeline: ReCamMasterPipeline,
    dataset_root: str | Path,
    cache_dir: str | Path,
    *,
    height: int = 480,
    width: int = 832,
    num_frames: int = 81,
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
    device: torch.device | str,
    shard_index: int = 0,
    num_shards: int = 1,
    num_workers: int = 0,
    splits: Sequence[str] = DEFAULT_SPLITS,
    progress: bool = True,
) -> CacheReport:
    """Cache the latents and caption embeddings of this shard's clips; write and return the report.

    Only ``pipeline.tokenizer``, ``text_encoder`` and ``vae`` are used; they must already sit on ``device``
    (or be offloaded to it). Captions come from ``<dataset root>/metadata.csv`` when it exists. ``num_workers``
    processes decode videos ahead of the encoder.
    """
    if not 0 <= shard_index < num_shards:
        raise CacheError(f"shard index {shard_index} is outside 0..{num_shards - 1} (num_shards {num_shards})")
    root, clips = check_cache_inputs(dataset_root, cache_dir, height=height, width=width, num_frames=num_frames,
                                     max_sequence_length=max_sequence_length, splits=splits)  # fmt: skip
    cache_dir = Path(cache_dir)
    factor = spatial_factor(pipeline.vae.config)
    latent_shape = [pipeline.vae.config.z_dim, (num_frames - 1) // TEMPORAL_FACTOR + 1,
                    height // factor, width // factor]  # fmt: skip
    settings = {**_settings(root, height, width, num_frames, max_sequence_length), "latent_shape": latent_shape,
                "context_dim": pipeline.text_encoder.config.d_model}  # fmt: skip
    _check_settings(cache_dir, settings)  # now with the models' numbers too
    clip_metadata = {"num_frames": num_frames, "height": height, "width": width,
                     "max_sequence_length": max_sequence_length}  # fmt: skip

    def encode_text(caption: str) -> torch.Tensor:
        context = encode_prompt(pipeline.tokenizer, pipeline.text_encoder, [caption],
                                max_length=max_sequence_length, device=device)  # fmt: skip
        return trim_context(context[0])  # (max_sequence_length, D) -> (n, D)

    if shard_index == 0:  # the shared files; idempotent and atomic, so no other shard waits for them
        if not (cache_dir / SETTINGS_FILE).is_file():
            write_text_atomic(cache_dir / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n", overwrite=True)
        if not (cache_dir / EMPTY_PROMPT_FILE).is_file():
            _write_entry(cache_dir / EMPTY_PROMPT_FILE, {"context": encode_text("")}, {**clip_metadata, "caption": ""})

    metadata_file = root / METADATA_FILE
    captions = read_captions(metadata_file) if metadata_file.is_file() else {}
    shard = clips[shard_index::num_shards]
    report = CacheReport(shard_index, num_shards, clips=len(shard))
    todo, caption_of = [], {}
    for video in shard:
        caption = lookup_caption(captions, root, video)
        if caption is None:
            report.missing_captions.append(video)
        if cache_path(cache_dir, root, video).is_file():
            report.skipped += 1
        else:
            todo.append(video)
            caption_of[video] = caption or ""

    loader = DataLoader(_ClipReader(todo, num_frames, height, width), batch_size=None, num_workers=num_workers)
    last_caption, context = None, None  # neighbouring clips often share a caption (or have none)
    with tqdm(total=len(shard), initial=report.skipped, desc="caching clips", unit="clip", disable=not progress) as bar:
        for index, pixels, problem in loader:
            video = todo[index]
            if pixels is None:
                report.failed.append((video, problem))
            else:
                caption = caption_of[video]
                if caption != last_caption:
                    last_caption, context = caption, encode_text(caption)
                latents = encode_video(pipeline.vae, pixels[None].to(device))[0]  # (1, 3, T, H, W) -> (C, F, h, w)
                _write_entry(cache_path(cache_dir, root, video), {"latents": latents, "context": context},
                             {**clip_metadata, "caption": caption})  # fmt: skip
                report.encoded += 1
            bar.update()

    write_text_atomic(report_path(cache_dir, shard_index, num_shards), json.dumps(report.to_dict(), indent=2) + "\n",
                      overwrite=True)  # fmt: skip
    return report
