"""Reading and writing state dicts in the file formats users download.

Official Wan2.1 and ReCamMaster files come as ``.safetensors`` (possibly sharded with an index),
``.pth``/``.ckpt`` pickles of plain tensors, or wrapped in a ``state_dict``/``model_state`` entry and
prefixed by a training framework (``module.``, ``model.``, ``model.diffusion_model.``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from recammaster.errors import WeightsError
from recammaster.fileio import atomic_output

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
_WRAPPERS = ("state_dict", "model_state", "module")
_PREFIXES = ("model.diffusion_model.", "module.", "model.")


def read_state_dict(paths: str | Path | Iterable[str | Path]) -> dict[str, torch.Tensor]:
    """Tensors of one or more weight files (or a safetensors index), merged, wrappers and prefixes removed."""
    paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    state: dict[str, torch.Tensor] = {}
    for path in paths:
        for key, tensor in _read_one(path).items():
            if key in state:
                raise WeightsError(f"{path}: key {key!r} appears in more than one file")
            state[key] = tensor
    return strip_prefix(state)


def _read_one(path: Path) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if path.name.endswith(".safetensors.index.json"):
        shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        return read_state_dict([path.parent / shard for shard in shards])
    if path.suffix == ".safetensors":
        return load_file(path)
    if path.suffix in PICKLE_SUFFIXES:
        try:  # mmap: a multi-GB file is paged in as tensors are used, not read up front
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # files written without the zip format cannot be memory-mapped
            state = _load_pickle(path)
        except Exception as error:  # torch raises many types for a bad pickle
            raise WeightsError(f"{path}: not a readable PyTorch weights file ({error})") from error
        while isinstance(state, Mapping) and len(state) == 1 and next(iter(state)) in _WRAPPERS:
            state = next(iter(state.values()))
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise WeightsError(f"{path}: expected a flat dict of tensors (a state dict)")
        return state
    raise WeightsError(f"{path}: unknown weights format {path.suffix!r}; use .safetensors or {PICKLE_SUFFIXES}")


def _load_pickle(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"{path}: not a readable PyTorch weights file ({error})") from error


def strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a prefix that every key shares (``model.``, ``module.``, ``model.diffusion_model.``)."""
    for prefix in _PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            return {key[len(prefix) :]: value for key, value in state.items()}
    return dict(state)


def check_keys(source: str, expected: Mapping[str, torch.Size], found: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`WeightsError` naming missing, unknown and mis-shaped keys (first few of each, with counts)."""
    problems = []
    missing = [key for key in expected if key not in found]
    unknown = [key for key in found if key not in expected]
    shapes = [
        f"{key} {tuple(found[key].shape)} (expected {tuple(expected[key])})"
        for key in expected
        if key in found and tuple(found[key].shape) != tuple(expected[key])
    ]
    for label, keys in (("missing", missing), ("unknown", unknown), ("wrong shape", shapes)):
        if keys:
            shown = ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise WeightsError(f"{source}: weights do not fit the model; " + "; ".join(problems))


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a flat state dict atomically: ``.safetensors``, or a ``torch.save`` pickle for other suffixes."""
    path = Path(path)
    tensors = {key: value.detach().contiguous().cpu() for key, value in state.items()}
    with atomic_output(path, overwrite=overwrite) as temporary:
        if path.suffix == ".safetensors":
            save_file(tensors, temporary)
        else:
            torch.save(tensors, temporary)
    return path
