"""Which model to render with, and loading it onto a device in a memory mode.

Shared by every front end that renders (``recammaster render``, ``eval``, the web service's worker): the user's
``--model-dir``, else the official files in the Hugging Face cache, else the small model shipped in the package.
"""

from __future__ import annotations

from pathlib import Path

import torch

from recammaster.errors import ModelFilesNotFoundError
from recammaster.hub import embedded_model_dir, find_official_weights
from recammaster.models.attention import DEFAULT_ATTENTION, set_attention
from recammaster.models.memory import place
from recammaster.models.weights import load_transformer
from recammaster.pipeline.recammaster_pipeline import ReCamMasterPipeline, read_render_defaults

# none: all resident; text: umT5-XXL (10.6 of 17 GiB) streamed by blocks, the rest resident; model: diffusers'
# model CPU offload; group: every component streamed by blocks; group-tiled: and the VAE works in spatial tiles
# (the least memory, a slower VAE, outputs not bit-equal). benchmarks/RESULTS.md has each one's peak and time.
OFFLOAD_MODES = ("none", "text", "model", "group", "group-tiled")


def choose_model(model_dir: Path | None) -> tuple[Path | None, dict]:
    """What ``render`` runs: ``model_dir``, else the official files in the hub cache (None), else the small
    model shipped in the package; and that model's render defaults (size, steps, guidance)."""
    if model_dir is not None:
        return model_dir, read_render_defaults(model_dir)
    if find_official_weights(None) is not None:
        return None, read_render_defaults(None)
    embedded = embedded_model_dir()
    if embedded is None:
        raise ModelFilesNotFoundError(
            "no model to render with: the official weights (Wan2.1-T2V-1.3B and ReCamMaster step20000.ckpt) "
            "are not in the Hugging Face cache and this build has no embedded model; run `recammaster download`, "
            "or pass --model-dir with the files."
        )
    return embedded, read_render_defaults(embedded)


def load_pipeline(
    model_dir: Path | None,
    device: str,
    offload: str,
    checkpoint: Path | None = None,
    *,
    compile_blocks: bool = False,
    attention: str = DEFAULT_ATTENTION,
):
    """The pipeline in ``model_dir`` (None: the official files in the hub cache), placed on ``device`` in the
    asked memory mode.

    ``checkpoint``: transformer weights in the official flat format (a ``step{N}.ckpt`` of ``train fit``)
    replace the loaded ones, as upstream's ``--ckpt_path`` does. ``compile_blocks``: ``torch.compile`` the
    transformer's blocks, one graph for all of them (it fuses their elementwise work: 10% a step at 1.3B on an
    H100; the first video waits for the compiler). ``attention``: the kernel, one of :data:`ATTENTION_KERNELS`.
    On a GPU the projectors are folded into the self-attention (``fold_projectors``: one product less a block), the
    feed-forward's GELU runs in its product's epilogue (``fuse_feedforward_activations``) and the queries' and keys'
    norm and rotation in one kernel (``fuse_norm_rotations``).
    """
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    pipeline = ReCamMasterPipeline.load(model_dir, torch_dtype=dtype)  # with --model-dir: errors name what is missing
    # the model's own choice, but not where offloading hooks wrap the VAE's forward, which whole clips bypass
    pipeline.whole_clip_vae = offload in ("none", "text") and bool(read_render_defaults(model_dir)["whole_clip_vae"])
    if checkpoint is not None:
        size = {key: value for key, value in pipeline.transformer.config.items() if not key.startswith("_")}
        pipeline.transformer = load_transformer(checkpoint, config=size, torch_dtype=dtype)
    if device.startswith("cuda"):  # bf16 noise; on the CPU (float32, the embedded model) it would save nothing
        pipeline.transformer.fold_projectors()
        pipeline.transformer.fuse_feedforward_activations()
        pipeline.transformer.fuse_norm_rotations()
    if attention != DEFAULT_ATTENTION:  # diffusers' default already
        set_attention(pipeline.transformer, attention)
    if compile_blocks:
        pipeline.transformer.compile_repeated_blocks()
    return place_pipeline(pipeline, device, offload)


def place_pipeline(pipeline, device: str, offload: str):
    """Put ``pipeline``'s components on ``device`` in one of :data:`OFFLOAD_MODES`."""
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"offload must be one of {', '.join(OFFLOAD_MODES)}, got {offload!r}")
    if offload == "model":
        pipeline.enable_model_cpu_offload(device=device)
        return pipeline
    models = (pipeline.text_encoder, pipeline.transformer, pipeline.vae)
    streamed = {"none": 0, "text": 1}.get(offload, len(models))  # the first this many stream
    for index, module in enumerate(models):
        place(module, device, "group-offload" if index < streamed else "resident")
    if offload == "group-tiled":
        pipeline.vae.enable_tiling()
    return pipeline
