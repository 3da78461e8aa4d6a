"""Which model to render with, and loading it onto a device in a memory mode.

Shared by every front end that renders (``recammaster render``, ``eval``, the web service's worker): the user's
``--model-dir``, else the official files in the Hugging Face cache, else the small model shipped in the package.
"""

from __future__ import annotations

from pathlib import Path

import torch

from recammaster.errors import ModelFilesNotFoundError
from recammaster.hub import embedded_model_dir, find_official_weights
from recammaster.models.memory import place
from recammaster.models.weights import load_transformer
from recammaster.pipeline.recammaster_pipeline import ReCamMasterPipeline, read_render_defaults

OFFLOAD_MODES = ("none", "model", "group")


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


def load_pipeline(model_dir: Path | None, device: str, offload: str, checkpoint: Path | None = None):
    """The pipeline in ``model_dir`` (None: the official files in the hub cache), placed on ``device`` in the
    asked memory mode.

    ``checkpoint``: transformer weights in the official flat format (a ``step{N}.ckpt`` of ``train fit``)
    replace the loaded ones, as upstream's ``--ckpt_path`` does.
    """
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    pipeline = ReCamMasterPipeline.load(model_dir, torch_dtype=dtype)  # with --model-dir: errors name what is missing
    if checkpoint is not None:
        size = {key: value for key, value in pipeline.transformer.config.items() if not key.startswith("_")}
        pipeline.transformer = load_transformer(checkpoint, config=size, torch_dtype=dtype)
    if offload == "model":
        pipeline.enable_model_cpu_offload(device=device)
    elif offload == "group":
        for module in (pipeline.text_encoder, pipeline.transformer, pipeline.vae):
            place(module, device, "group-offload")
    else:
        pipeline.to(device)
    return pipeline
