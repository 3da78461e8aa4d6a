"""Memory modes: keep a model resident on the accelerator, or stream its blocks in with group offloading.

diffusers' group offloading (``diffusers.hooks.apply_group_offloading``) keeps the weights on the CPU and
moves one group of blocks at a time to the device, overlapping the copy with compute on a CUDA stream.
It works for any module made of block lists: the ReCamMaster transformer and transformers' umT5 encoder
alike, which is how the 1.3B model fits 12 GB cards (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import torch
from diffusers.hooks import apply_group_offloading
from torch import nn

MEMORY_MODES = ("resident", "group-offload")


def place(
    module: nn.Module, device: str | torch.device, mode: str = "resident", blocks_per_group: int = 1
) -> nn.Module:
    """Put ``module`` on ``device`` whole ('resident') or stream it from the CPU ('group-offload')."""
    device = torch.device(device)
    if mode == "resident":
        return module.to(device)
    if mode != "group-offload":
        raise ValueError(f"unknown memory mode {mode!r}; choose one of: {', '.join(MEMORY_MODES)}")
    module.to("cpu")
    # Block-level groups need the block list as a direct child (diffusers' transformers); other models,
    # such as transformers' umT5 whose blocks sit one level down, stream their leaf layers instead.
    has_block_list = any(isinstance(child, nn.ModuleList) for child in module.children())
    apply_group_offloading(
        module,
        onload_device=device,
        offload_device=torch.device("cpu"),
        offload_type="block_level" if has_block_list else "leaf_level",
        num_blocks_per_group=blocks_per_group if has_block_list else None,
        use_stream=device.type == "cuda",
    )
    return module
