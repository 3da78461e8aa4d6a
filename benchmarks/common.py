"""Helpers shared by the GPU benchmarks: random models built fast, and timing with peak memory."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import torch
import torch.utils.data
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
from torch import nn


def random_model(build: Callable[[], nn.Module], device: torch.device, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """Build on the meta device, then fill with small random weights on ``device`` (seconds, not minutes).

    Matrices get N(0, 0.02); vectors are 1 for norm scales and 0 otherwise.
    """
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = build()
    model = model.to_empty(device=device)
    generator = torch.Generator(device).manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim > 1:
                parameter.normal_(0.0, 0.02, generator=generator)
            else:
                parameter.fill_(
                    1.0 if ("norm" in name or "gamma" in name) and name.endswith(("weight", "gamma")) else 0.0
                )
    rope = getattr(model, "rope", None)
    if isinstance(rope, WanRotaryPosEmbed):  # to_empty left the rotary tables uninitialised
        model.rope = WanRotaryPosEmbed(rope.attention_head_dim, rope.patch_size, rope.max_seq_len).to(device)
    if hasattr(model, "reset_camera_layers"):
        model.reset_camera_layers()
    return model.to(dtype).eval()


def timed(forward: Callable[[], object], repeats: int = 3) -> tuple[float, float]:
    """Minimum seconds over ``repeats`` runs after one warm-up, and peak GiB allocated during them."""
    cuda = torch.cuda.is_available()
    with torch.no_grad():
        forward()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            forward()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return min(times), (torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"))


def empty_cache(device: torch.device) -> None:
    """Free what dropped models held. A model that ran keeps a reference cycle (diffusers' hook registry, made
    when a pipeline resets its caches, and offloading hooks), so only a collection frees its weights; before
    one, they count in the next measurement's peak (benchmarks/RESULTS.md, 2026-11-26, memory modes)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


KERNEL_KINDS = {  # substrings of a kernel's name (lower case) -> its kind, first match
    "attention": ("flash", "fmha", "attention", "attn"),
    "matrix product": ("gemm", "nvjet", "xmma", "cutlass"),
    "fused elementwise (inductor)": ("triton",),
}


def kernel_rows(profiler, largest: int = 15) -> tuple[float, list[tuple]]:
    """The GPU kernels a ``torch.profiler`` run recorded: their total milliseconds, and rows (name, kind, calls, ms,
    share) by kind (:data:`KERNEL_KINDS`), then the ``largest`` kernels by name."""
    kernels: dict[str, list[float]] = {}
    for event in profiler.events():  # GPU events, less the ranges user annotations span (the optimizer step's)
        if event.device_type == torch.autograd.DeviceType.CUDA and not event.is_user_annotation:
            kernels.setdefault(event.name, []).append(event.device_time_total / 1000)
    total = sum(sum(times) for times in kernels.values())

    def kind(name: str) -> str:
        return next((kind for kind, marks in KERNEL_KINDS.items() if any(m in name.lower() for m in marks)), "other")

    by_kind: dict[str, float] = {}
    for name, times in kernels.items():
        by_kind[kind(name)] = by_kind.get(kind(name), 0.0) + sum(times)
    rows = [(name, "", 0, ms, ms / total) for name, ms in sorted(by_kind.items(), key=lambda item: -item[1])]
    top = sorted(kernels.items(), key=lambda item: -sum(item[1]))[:largest]
    rows += [(name[:90], kind(name), len(times), sum(times), sum(times) / total) for name, times in top]
    return total, rows


def report(title: str, columns: list[str], rows: list[tuple], formats: list[str], name: str, **extra: object) -> None:
    """Print a markdown table under ``title``; with $OUT set, also write the rows as $OUT/<name>.json."""
    import json
    import os

    print(f"\n{title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(format(value, spec) for value, spec in zip(row, formats, strict=True)) + " |")
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], f"{name}.json"), "w") as handle:
            json.dump({"title": title, "columns": columns, "rows": rows, **extra}, handle, indent=1)


LATENT_SHAPE_81x480x832 = (16, 21, 60, 104)


class RandomLatents(torch.utils.data.Dataset):
    """Cached-latent training items at 81 frames, 480x832, drawn from a generator seeded by the item index.

    Keys are indices or ``TrainingOrder``'s (index, epoch) pairs.
    """

    def __len__(self) -> int:
        return 4096

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        generator = torch.Generator().manual_seed(key[0] if isinstance(key, tuple) else key)
        return {
            "target_latents": torch.randn(LATENT_SHAPE_81x480x832, generator=generator).bfloat16(),
            "source_latents": torch.randn(LATENT_SHAPE_81x480x832, generator=generator).bfloat16(),
            "text": torch.randn(512, 4096, generator=generator).bfloat16(),
            "camera": torch.randn(21, 12, generator=generator) * 0.1,
        }
