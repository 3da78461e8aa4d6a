"""The embedded default shipped in the package: what the model card promises about its files."""

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from recammaster.hub import EMBEDDED_MODEL_DIR, embedded_model_dir
from recammaster.models.configs import transformer_config
from recammaster.models.vae import spatial_factor
from recammaster.pipeline import ReCamMasterPipeline
from recammaster.pipeline.loading import choose_model

MODEL_CARD = Path(__file__).parents[2] / "docs" / "embedded.md"
WEIGHTS = sorted(EMBEDDED_MODEL_DIR.glob("*/*.safetensors"))


def test_the_shipped_model_fits_the_size_budget_in_float16_safetensors():
    assert [path.relative_to(EMBEDDED_MODEL_DIR).as_posix() for path in WEIGHTS] == [
        "text_encoder/model.safetensors", "transformer/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ]  # fmt: skip
    assert sum(path.stat().st_size for path in EMBEDDED_MODEL_DIR.rglob("*") if path.is_file()) <= 25 * 2**20
    for path in WEIGHTS:
        with safe_open(path, "pt") as weights:
            assert {weights.get_slice(key).get_dtype() for key in weights.keys()}  # noqa: SIM118 - safe_open is no dict == {"F16"}, path


def test_the_model_card_names_the_shipped_files_by_their_hashes():
    card = MODEL_CARD.read_text()
    for path in WEIGHTS:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        name = path.relative_to(EMBEDDED_MODEL_DIR).as_posix()
        assert re.search(rf"`{re.escape(name)}`[^\n]*`{digest}`", card), f"{name}: sha256 {digest} not in {MODEL_CARD}"


def test_without_official_weights_render_takes_the_shipped_model_at_its_settings(monkeypatch):
    monkeypatch.setattr("recammaster.hub.find_official_weights", lambda *a, **k: None)
    assert embedded_model_dir() == EMBEDDED_MODEL_DIR
    folder, defaults = choose_model(None)
    assert folder == EMBEDDED_MODEL_DIR
    assert defaults == json.loads((EMBEDDED_MODEL_DIR / "render_defaults.json").read_text()) == {
        "height": 128, "width": 128, "num_inference_steps": 16, "guidance_scale": 1.0, "motion_guidance": 1.0,
        "whole_clip_vae": True,
    }  # fmt: skip


def test_the_shipped_pipeline_loads_as_the_embedded_architecture():
    """Since the third release: 4x4 patches of the VAE's 4 channels over latents 4x smaller than the frames."""
    pipeline = ReCamMasterPipeline.load(EMBEDDED_MODEL_DIR, torch_dtype=torch.float32)
    assert (spatial_factor(pipeline.vae.config), pipeline.vae.config.z_dim) == (4, 4)
    config = {key: value for key, value in pipeline.transformer.config.items() if not key.startswith("_")}
    expected = transformer_config("embedded-4x4c")
    assert {key: config[key] for key in expected} == {key: value if not isinstance(value, tuple) else list(value)
                                                      for key, value in expected.items()}  # fmt: skip
    assert sum(p.numel() for p in pipeline.transformer.parameters()) == pytest.approx(7.4e6, rel=0.02)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in pipeline.transformer.parameters())
