"""The embedded default's parts that are not trained by ``train fit``: its text path, and its packaging.

The small model trained here from scratch (docs/embedded.md) has the full architecture at a small size: a
Wan-style VAE (``train vae``), a ReCamMaster transformer of the ``embedded`` config (``train fit``), and a
text path: a SentencePiece tokenizer learned from the synthetic engine's captions and a 128-wide umT5
encoder with random weights, kept frozen (the synthetic captions matter little next to the source video,
and a frozen random encoder still tells captions apart). ``build_base_pipeline`` puts these parts
together into a pipeline folder that ``train fit --from-scratch --model-dir`` starts from;
``export_pipeline`` makes the folder that ships, with half-precision weights and the render settings the
model was trained for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLWan
from transformers import UMT5EncoderModel

from recammaster.data.synth.engine import make_scene
from recammaster.data.synth.scene import describe_scene
from recammaster.errors import OutputExistsError, ReCamMasterError
from recammaster.models.configs import transformer_config
from recammaster.models.text_encoder import load_tokenizer, train_tokenizer, umt5_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.vae import spatial_factor
from recammaster.models.weights import load_transformer
from recammaster.pipeline.recammaster_pipeline import RENDER_DEFAULTS_FILE, ReCamMasterPipeline

EMBEDDED_TEXT_ENCODER = {"d_model": 128, "d_kv": 32, "num_heads": 4, "d_ff": 256, "num_layers": 2}
# the transformer size for a VAE's (spatial factor, latent channels): its patches span 16 pixels, so 128x128 frames
# make 8x8 tokens
EMBEDDED_SIZES = {(8, 16): "embedded", (4, 16): "embedded-4x", (4, 4): "embedded-4x4c"}


def caption_corpus(seed: int, count: int) -> list[str]:
    """Captions of the synthetic engine's scenes 1..count of ``seed`` (what the tokenizer learns from)."""
    return [describe_scene(make_scene(seed, index, 5)) for index in range(1, count + 1)]


def build_base_pipeline(
    vae_folder: str | Path, output: str | Path, *, seed: int = 0, vocab_size: int = 512, corpus_scenes: int = 2000,
    text_from: str | Path | None = None, overwrite: bool = False,
) -> Path:  # fmt: skip
    """A pipeline folder with the trained VAE, the learned tokenizer, the frozen random text encoder and a
    fresh transformer of the size for the VAE's latents (``EMBEDDED_SIZES``): the starting point of the
    embedded default's training.

    ``text_from``: a saved pipeline whose tokenizer and text encoder are reused instead. The learned
    tokenizer and the random encoder depend on the sentencepiece and transformers versions, so training on
    from a model (the shipped one) needs its own text path, not a rebuilt one.
    """
    output = Path(output)
    if (output / "model_index.json").exists() and not overwrite:
        raise OutputExistsError(output, "holds a pipeline already")
    if text_from is not None:
        tokenizer = load_tokenizer(Path(text_from) / "tokenizer")
        text_encoder = UMT5EncoderModel.from_pretrained(Path(text_from) / "text_encoder", torch_dtype=torch.float32)
        text_encoder.eval()
    else:
        tokenizer = train_tokenizer(caption_corpus(seed + 7, corpus_scenes), output / "tokenizer", vocab_size)
        torch.manual_seed(seed)
        text_encoder = UMT5EncoderModel(umt5_config(vocab_size=len(tokenizer), **EMBEDDED_TEXT_ENCODER)).eval()
    vae = AutoencoderKLWan.from_pretrained(vae_folder)
    layout = spatial_factor(vae.config), vae.config.z_dim
    if layout not in EMBEDDED_SIZES:
        raise ReCamMasterError(f"{vae_folder}: a VAE of {layout[0]}x latents of {layout[1]} channels; the embedded "
                               f"sizes are for {', '.join(f'{f}x of {c}' for f, c in EMBEDDED_SIZES)}")  # fmt: skip
    transformer = ReCamMasterTransformer3DModel(**transformer_config(EMBEDDED_SIZES[layout]))
    ReCamMasterPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer
    ).save_pretrained(output)
    return output


def export_pipeline(
    base: str | Path, checkpoint: str | Path, output: str | Path, *, render_defaults: dict[str, Any],
    dtype: torch.dtype = torch.float16, overwrite: bool = False, model_config: str | None = None,
) -> Path:  # fmt: skip
    """The shippable folder: ``base``'s tokenizer, text encoder and VAE, the transformer weights of
    ``checkpoint`` (official format, from ``train fit``), all in ``dtype``, and ``render_defaults``
    (height, width, num_frames, num_inference_steps, guidance_scale) for ``recammaster render``. ``model_config``:
    the named size the run trained (``models.configs``), when it is not the base's."""
    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise OutputExistsError(output, "exists and is not empty")
    pipeline = ReCamMasterPipeline.load(base, torch_dtype=torch.float32)
    size = {key: value for key, value in pipeline.transformer.config.items() if not key.startswith("_")}
    if model_config is not None:
        size.update(transformer_config(model_config))
    pipeline.transformer = load_transformer(checkpoint, config=size, torch_dtype=torch.float32)
    pipeline.to(dtype).save_pretrained(output)
    (output / RENDER_DEFAULTS_FILE).write_text(json.dumps(render_defaults, indent=1) + "\n")
    return output
