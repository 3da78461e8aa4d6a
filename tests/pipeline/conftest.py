"""A tiny ReCamMaster pipeline with random weights, built in code in a second or two."""

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan
from transformers import UMT5EncoderModel

from recammaster.models.configs import transformer_config
from recammaster.models.text_encoder import umt5_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.vae import WAN_VAE_CONFIG
from recammaster.pipeline import ReCamMasterPipeline

TINY_VAE = {**WAN_VAE_CONFIG, "base_dim": 8, "num_res_blocks": 1}


def tiny_components(tokenizer, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(umt5_config(vocab_size=128, d_model=16, d_kv=4, num_heads=4, d_ff=32, num_layers=2))
    transformer = ReCamMasterTransformer3DModel(**transformer_config("tiny"))
    with torch.no_grad():  # random camera layers, so that the camera matters
        for block in transformer.blocks:
            block.cam_encoder.weight.normal_(0, 0.5)
            block.projector.weight.add_(torch.randn_like(block.projector.weight) * 0.1)
    vae = AutoencoderKLWan(**TINY_VAE)
    return {"tokenizer": tokenizer, "text_encoder": text_encoder.eval(), "vae": vae.eval(),
            "transformer": transformer.eval()}  # fmt: skip


@pytest.fixture(scope="module")
def pipeline(tokenizer) -> ReCamMasterPipeline:
    return ReCamMasterPipeline(**tiny_components(tokenizer))


@pytest.fixture(scope="module")
def source_video() -> np.ndarray:
    """11 frames of 40 x 56 moving colour gradients, uint8."""
    t, y, x = np.meshgrid(np.arange(11), np.arange(40), np.arange(56), indexing="ij")
    frames = np.stack([(x * 4 + t * 9) % 256, (y * 6) % 256, (x + y + t * 20) % 256], axis=-1)
    return frames.astype(np.uint8)


@pytest.fixture(scope="session")
def pipeline_dir(tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``save_pretrained`` folder of a tiny random pipeline, checked to load back with the same weights."""
    folder = tmp_path_factory.mktemp("tiny-pipeline")
    components = tiny_components(tokenizer)
    ReCamMasterPipeline(**components).save_pretrained(folder)
    loaded = ReCamMasterPipeline.load(folder, torch_dtype=torch.float32)
    for name in ("text_encoder", "vae", "transformer"):
        saved, back = components[name].state_dict(), getattr(loaded, name).state_dict()
        assert saved.keys() == back.keys(), name
        assert all(torch.equal(saved[key], back[key]) for key in saved), name
    return folder


@pytest.fixture(scope="session")
def tiny_pipeline(pipeline_dir: Path) -> ReCamMasterPipeline:
    """The saved pipeline loaded back in float32 on the CPU, as ``train data-process --device cpu`` loads it."""
    return ReCamMasterPipeline.load(pipeline_dir, torch_dtype=torch.float32)
