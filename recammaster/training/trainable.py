"""Which transformer weights a run trains, and the weights it exports.

``camera-attention`` is upstream's set (spec ``upstream-recammaster.md`` §2.4): every parameter of the
self-attention (diffusers' ``attn1``, upstream's ``self_attn``: q, k, v, o and the q/k norms) and of the
camera encoder and projector; 354,816,000 parameters at 1.3B. ``full`` trains everything (training from
scratch). ``lora`` puts peft LoRA adapters (alpha = rank, so the delta is B @ A) on the self-attention
projections and trains them together with the camera layers, which are new and so are trained in full.
Exports are always plain weights: LoRA deltas are merged, so a checkpoint loads into upstream's inference
code and ours alike.
"""

from __future__ import annotations

import torch
from peft import LoraConfig
from torch import nn

TRAINABLE_SETS = ("camera-attention", "full", "lora")
CAMERA_ATTENTION_MODULES = ("attn1", "cam_encoder", "projector")
LORA_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0")
LORA_ADAPTER = "default"


def _in_modules(name: str, modules: tuple[str, ...]) -> bool:
    return any(part in modules for part in name.split("."))


def select_trainable(transformer: nn.Module, trainable: str = "camera-attention", lora_rank: int = 64) -> nn.Module:
    """Set ``requires_grad`` for the chosen set (adding LoRA adapters for ``lora``); returns the transformer."""
    if trainable not in TRAINABLE_SETS:
        raise ValueError(f"unknown trainable set {trainable!r}; choose one of: {', '.join(TRAINABLE_SETS)}")
    if trainable == "lora":
        if lora_rank < 1:
            raise ValueError(f"lora_rank must be at least 1, got {lora_rank}")
        transformer.requires_grad_(False)
        config = LoraConfig(
            r=lora_rank, lora_alpha=lora_rank, target_modules=list(LORA_TARGETS), init_lora_weights=True
        )
        transformer.add_adapter(config, adapter_name=LORA_ADAPTER)
        for name, parameter in transformer.named_parameters():
            parameter.requires_grad_("lora_" in name or _in_modules(name, ("cam_encoder", "projector")))
        return transformer
    for name, parameter in transformer.named_parameters():
        parameter.requires_grad_(trainable == "full" or _in_modules(name, CAMERA_ATTENTION_MODULES))
    return transformer


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def count_trainable(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in trainable_parameters(model))


@torch.no_grad()
def merged_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformer state dict with any LoRA deltas (B @ A, alpha = rank) added in, under the plain names."""
    merged = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        if ".base_layer." not in key:
            merged[key] = value
            continue
        module, parameter = key.split(".base_layer.")
        plain = f"{module}.{parameter}"
        down, up = (
            state.get(f"{module}.lora_A.{LORA_ADAPTER}.weight"),
            state.get(f"{module}.lora_B.{LORA_ADAPTER}.weight"),
        )
        if parameter == "weight" and down is not None and up is not None:
            merged[plain] = (value.float() + up.float() @ down.float()).to(value.dtype)
        else:
            merged[plain] = value
    return merged
