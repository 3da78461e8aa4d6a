"""Which attention kernel the transformer's self- and cross-attention run on.

diffusers' attention backends cover the kernels torch ships (``native`` SDPA, which picks cuDNN's flash kernel
on an H100, ``_native_cudnn``, ``_native_flash``, ...). One more is worth its name here: ``flash4``, the
FlashAttention-4 kernels (CuTe DSL, Hopper and Blackwell) of the ``flash-attn-4`` package, which torch's flash
attention registry puts behind SDPA's flash kernel (:mod:`recammaster.models.flash4` adapts the package to what
torch calls); diffusers' ``_native_flash`` backend then reaches them, compiled blocks included. Same bf16 inputs and
float32 accumulation as the other kernels: an exact mode (benchmarks/RESULTS.md has its speed and its distance
to float32).
"""

from __future__ import annotations

import importlib.util
from functools import partial

import torch
from diffusers.models.attention_dispatch import AttentionBackendName
from torch import nn

from recammaster.errors import ReCamMasterError

FLASH4 = "flash4"
DEFAULT_ATTENTION = "native"
# the names ``--attention`` takes: diffusers' kernels that run without extra packages, and flash4
ATTENTION_KERNELS = (DEFAULT_ATTENTION, "_native_cudnn", "_native_flash", "_native_efficient", FLASH4)


def enable_flash_attention_4() -> None:
    """Route torch's flash SDPA kernel to FlashAttention-4, for the whole process (idempotent)."""
    from torch.nn import attention

    if getattr(attention, "current_flash_attention_impl", lambda: None)() == "FA4":
        return
    if importlib.util.find_spec("flash_attn") is None or importlib.util.find_spec("flash_attn.cute") is None:
        raise ReCamMasterError(
            "attention 'flash4' needs the flash-attn-4 package (pip install 'flash-attn-4[cu13]==4.0.0b36', "
            "the recammaster[flash4] extra), which is not installed"
        )
    if not hasattr(attention, "register_flash_attention_impl"):
        raise ReCamMasterError(f"attention 'flash4' needs torch's flash attention registry (torch 2.11 or later); "
                               f"this is torch {torch.__version__}")  # fmt: skip
    from torch.nn.attention import _fa4

    register = partial(_fa4.register_flash_attention_fa4, module_path="recammaster.models.flash4")
    attention.register_flash_attention_impl("FA4", register_fn=register)
    attention.activate_flash_attention_impl("FA4")


def set_attention(transformer: nn.Module, kernel: str) -> None:
    """Run ``transformer``'s attention on ``kernel``, one of :data:`ATTENTION_KERNELS` (``flash4``: the
    self-attention). As diffusers does, this also becomes the process's default for models that never chose one."""
    if kernel not in ATTENTION_KERNELS:
        raise ReCamMasterError(f"attention must be one of {', '.join(ATTENTION_KERNELS)}, got {kernel!r}")
    if kernel != FLASH4:
        transformer.set_attention_backend(kernel)
        return
    enable_flash_attention_4()
    transformer.set_attention_backend("_native_flash")
    # The cross-attention (512 keys, under 1% of the time) stays on torch's choice: a compiled selective checkpoint
    # replays it through torch's random-state wrapper, where FlashAttention-4 refused torch's output buffer.
    for block in transformer.blocks:
        block.attn2.processor._attention_backend = AttentionBackendName.NATIVE
