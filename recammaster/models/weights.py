"""Transformer weights: the official Wan2.1/ReCamMaster key layout <-> diffusers, strict loading, export.

Official files (Wan2.1 ``diffusion_pytorch_model.safetensors``, ReCamMaster ``step20000.ckpt``) use the
original Wan module names (spec §1.2); diffusers renames them (ecosystem notes §1). One table maps
module paths both ways; ReCamMaster's ``cam_encoder`` and ``projector`` keep their names. Loading is
strict: every missing, unknown or mis-shaped key is an error that names it. A plain Wan2.1 file has no
camera layers; they start as zero encoder and identity projector, exactly as upstream attaches them.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights

from recammaster.errors import WeightsError
from recammaster.models.checkpoints import check_keys, read_state_dict, save_state_dict
from recammaster.models.configs import transformer_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel

logger = logging.getLogger(__name__)

# Official module path -> diffusers module path; parameter names (weight, bias) follow unchanged.
TOP_LEVEL_MODULES = {
    "patch_embedding": "patch_embedding",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "head.head": "proj_out",
}
TOP_LEVEL_PARAMETERS = {"head.modulation": "scale_shift_table"}
BLOCK_MODULES = {
    **{f"{official}.{part}": f"{ours}.{name}" for official, ours in (("self_attn", "attn1"), ("cross_attn", "attn2"))
       for part, name in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0"),
                          ("norm_q", "norm_q"), ("norm_k", "norm_k"))},
    "norm3": "norm2",  # the affine cross-attention norm
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
    "cam_encoder": "cam_encoder",
    "projector": "projector",
    "view_attention.to_qkv": "view_attention.to_qkv",  # ours: the Table 3 comparison's view conditioning
    "view_attention.to_out": "view_attention.to_out",
}  # fmt: skip
BLOCK_PARAMETERS = {"modulation": "scale_shift_table", "view_attention.view_embedding": "view_attention.view_embedding"}
CAMERA_MODULES = ("cam_encoder", "projector")

_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)")


def _rename(
    key: str,
    modules: Mapping[str, str],
    parameters: Mapping[str, str],
    block_modules: Mapping[str, str],
    block_parameters: Mapping[str, str],
) -> str | None:
    match = _BLOCK_KEY.fullmatch(key)
    prefix, rest = (f"blocks.{match.group(1)}.", match.group(2)) if match else ("", key)
    modules, parameters = (block_modules, block_parameters) if match else (modules, parameters)
    if rest in parameters:
        return prefix + parameters[rest]
    module, _, parameter = rest.rpartition(".")
    if module in modules and parameter in ("weight", "bias"):
        return f"{prefix}{modules[module]}.{parameter}"
    return None


def _convert(state: Mapping[str, torch.Tensor], source: str, *, to_diffusers: bool) -> dict[str, torch.Tensor]:
    tables = (TOP_LEVEL_MODULES, TOP_LEVEL_PARAMETERS, BLOCK_MODULES, BLOCK_PARAMETERS)
    if not to_diffusers:
        tables = tuple({value: key for key, value in table.items()} for table in tables)
    converted, unknown = {}, []
    for key, value in state.items():
        new_key = _rename(key, *tables)
        if new_key is None:
            unknown.append(key)
        else:
            converted[new_key] = value
    if unknown:
        shown = ", ".join(unknown[:5]) + (f", ... ({len(unknown)} in all)" if len(unknown) > 5 else "")
        layout = "official Wan" if to_diffusers else "diffusers"
        raise WeightsError(f"{source}: keys not in the {layout} transformer layout: {shown}")
    return converted


def official_to_diffusers(state: Mapping[str, torch.Tensor], source: str = "state dict") -> dict[str, torch.Tensor]:
    """Rename an official Wan2.1/ReCamMaster state dict to diffusers' names; unknown keys are an error."""
    return _convert(state, source, to_diffusers=True)


def diffusers_to_official(state: Mapping[str, torch.Tensor], source: str = "state dict") -> dict[str, torch.Tensor]:
    """Rename a diffusers state dict to the official layout that upstream ReCamMaster loads."""
    return _convert(state, source, to_diffusers=False)


def is_diffusers_layout(state: Mapping[str, torch.Tensor]) -> bool:
    return any(key.startswith("condition_embedder.") or key == "proj_out.weight" for key in state)


def state_conditioning(state: Mapping[str, torch.Tensor]) -> str:
    """How the source video enters a diffusers-layout model (see :mod:`recammaster.models.transformer`): view
    attention weights mean ``view``; a patch embedding that reads twice the output channels means ``channel``."""
    if any(".view_attention." in key for key in state):
        return "view"
    patch, head = state.get("patch_embedding.weight"), state.get("proj_out.weight")
    if patch is not None and head is not None and patch.shape[1] * math.prod(patch.shape[2:]) == 2 * head.shape[0]:
        return "channel"
    return "frame"


def infer_transformer_config(state: Mapping[str, torch.Tensor], source: str = "weights") -> dict[str, Any]:
    """Constructor arguments read off a diffusers-layout state dict (Wan's heads have 128 channels)."""
    try:
        patch = state["patch_embedding.weight"]
        dim, in_channels, *patch_size = patch.shape
        num_layers = 1 + max(int(m.group(1)) for key in state if (m := _BLOCK_KEY.fullmatch(key)))
        out_channels = state["proj_out.weight"].shape[0] // math.prod(patch_size)
        config = {
            "patch_size": tuple(patch_size),
            "in_channels": out_channels if state_conditioning(state) == "channel" else in_channels,
            "out_channels": out_channels,
            "text_dim": state["condition_embedder.text_embedder.linear_1.weight"].shape[1],
            "freq_dim": state["condition_embedder.time_embedder.linear_1.weight"].shape[1],
            "ffn_dim": state["blocks.0.ffn.net.0.proj.weight"].shape[0],
            "num_layers": num_layers,
        }
    except (KeyError, ValueError) as error:
        raise WeightsError(f"{source}: cannot tell the model size from the weights ({error})") from error
    if dim % 128:
        raise WeightsError(f"{source}: width {dim} is not a multiple of Wan's 128-channel heads; pass a config")
    return {**transformer_config("wan2.1-t2v-1.3b"), **config, "num_attention_heads": dim // 128}


def _read_transformer_state(source: str | Path | Iterable[str | Path]) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Diffusers-named tensors of a file, files or diffusers folder, and the folder's config if any."""
    if isinstance(source, str | Path) and Path(source).is_dir():
        folder = Path(source)
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise WeightsError(f"{folder}: not a diffusers model folder (no config.json)")
        index = sorted(folder.glob("*.safetensors.index.json"))
        files = index[:1] or sorted(folder.glob("*.safetensors"))
        if not files:
            raise WeightsError(f"{folder}: no .safetensors weights in the folder")
        config = {k: v for k, v in json.loads(config_path.read_text()).items() if not k.startswith("_")}
        return read_state_dict(files), config
    state = read_state_dict(source)
    return (state if is_diffusers_layout(state) else official_to_diffusers(state, str(source))), None


def load_transformer(
    weights: str | Path | Iterable[str | Path],
    *,
    recammaster_checkpoint: str | Path | None = None,
    config: str | Mapping[str, Any] | None = None,
    torch_dtype: torch.dtype = torch.bfloat16,
) -> ReCamMasterTransformer3DModel:
    """Build the ReCamMaster transformer from the files users download.

    ``weights`` is a Wan2.1 DiT (``diffusion_pytorch_model.safetensors``, shards or their index), a full
    ReCamMaster checkpoint, or a diffusers folder. ``recammaster_checkpoint`` (``step20000.ckpt``, all
    945 keys) then replaces every weight, as upstream's strict load does. Without camera layers in the
    files they start at zero/identity, i.e. the model is plain Wan2.1. Modules diffusers keeps in
    float32 (norms, time embedding, modulation tables) stay float32; the rest becomes ``torch_dtype``.
    """
    state, folder_config = _read_transformer_state(weights)
    source = str(weights)
    if recammaster_checkpoint is not None:
        state, _ = _read_transformer_state(recammaster_checkpoint)
        source = str(recammaster_checkpoint)
    if isinstance(config, str):
        config = transformer_config(config)
    arguments = dict(config or folder_config or infer_transformer_config(state, source))
    arguments["conditioning"] = state_conditioning(state)  # the weights tell, whatever folder config came with them
    with init_empty_weights():
        model = ReCamMasterTransformer3DModel(**arguments)

    expected = model.state_dict()
    camera_keys = [key for key in expected if key.split(".")[2:3] and key.split(".")[2] in CAMERA_MODULES]
    if not any(key in state for key in camera_keys):
        logger.info("%s: no camera layers in the weights; starting them at zero encoder and identity projector", source)
        state = {**state, **_fresh_camera_layers(model, camera_keys)}
    check_keys(source, {key: value.shape for key, value in expected.items()}, state)

    keep_fp32 = model._keep_in_fp32_modules
    typed = {
        key: value.to(torch.float32 if any(part in keep_fp32 for part in key.split(".")) else torch_dtype)
        for key, value in state.items()
    }
    model.load_state_dict(typed, strict=True, assign=True)
    return model.eval()


# A block's outputs into the residual stream: zeroed, the block passes its input on unchanged.
RESIDUAL_OUTPUTS = ("attn1.to_out.0", "attn2.to_out.0", "ffn.net.2")


def warm_start(model: ReCamMasterTransformer3DModel, weights: str | Path) -> list[str]:
    """Copy into ``model`` every tensor of ``weights`` (any :func:`load_transformer` source) whose name and shape
    match; return the names of the model's tensors left as they were, sorted.

    For a model that differs from the weights' in a few layers only, a patch size say (the patch embedding and
    output layer change shape, every block stays): training starts from what the blocks learned. A block the
    weights lack entirely (a deeper model) starts as the identity, its outputs into the residual stream zeroed
    (:data:`RESIDUAL_OUTPUTS`), so the deeper model starts computing what the weights did. Raises naming the file
    when no tensor matches.
    """
    state, _ = _read_transformer_state(weights)
    fresh = copy_matching_tensors(model, state, str(weights))
    for index, block in enumerate(model.blocks):
        if not any(key.startswith(f"blocks.{index}.") for key in state):
            with torch.no_grad():
                for name in RESIDUAL_OUTPUTS:
                    for parameter in block.get_submodule(name).parameters():
                        parameter.zero_()
    return fresh


def copy_matching_tensors(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> list[str]:
    """Copy the tensors of ``state`` whose name and shape match ``model``'s (in its dtypes); return the names of the
    model's tensors left as they were, sorted. Raises naming ``source`` when none matches."""
    own = model.state_dict()
    matched = {key: value.to(own[key].dtype) for key, value in state.items()
               if key in own and own[key].shape == value.shape}  # fmt: skip
    if not matched:
        raise WeightsError(f"{source}: no tensor matches the model's names and shapes; nothing to start from")
    model.load_state_dict(matched, strict=False)
    return sorted(set(own) - set(matched))


def _fresh_camera_layers(model: ReCamMasterTransformer3DModel, keys: list[str]) -> dict[str, torch.Tensor]:
    dim = model.config.num_attention_heads * model.config.attention_head_dim
    fresh = {"cam_encoder.weight": torch.zeros(dim, 12), "cam_encoder.bias": torch.zeros(dim),
             "projector.weight": torch.eye(dim), "projector.bias": torch.zeros(dim)}  # fmt: skip
    return {key: fresh[".".join(key.split(".")[2:])].clone() for key in keys}


def official_state_dict(
    model: ReCamMasterTransformer3DModel, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """The model's weights under the official names (945 keys for 1.3B), optionally cast."""
    state = diffusers_to_official(model.state_dict(), type(model).__name__)
    return {key: value if dtype is None else value.to(dtype) for key, value in state.items()}


def save_official_checkpoint(
    model: ReCamMasterTransformer3DModel,
    path: str | Path,
    *,
    dtype: torch.dtype | None = torch.bfloat16,
    overwrite: bool = False,
) -> Path:
    """Write a flat official-layout checkpoint (like ``step20000.ckpt``) that upstream loads with strict=True."""
    return save_state_dict(official_state_dict(model, dtype), path, overwrite=overwrite)
