"""The source conditionings of the paper's Table 3 comparison: what each lets reach the target, and loading.

The three share the frame-concatenated input (target first) and output layout; ``frame`` is ReCamMaster
itself, tested against the reference in test_transformer.py.
"""

import pytest
import torch

from recammaster.errors import ReCamMasterError
from recammaster.models.configs import transformer_config
from recammaster.models.transformer import VIEWS, ReCamMasterTransformer3DModel, ViewAttention
from recammaster.models.weights import (
    infer_transformer_config,
    load_transformer,
    save_official_checkpoint,
    state_conditioning,
)
from recammaster.training.fit import FitConfig

TINY = transformer_config("tiny")
FRAMES = 3  # latent frames of each video


def _model(conditioning: str, layers: int = 2, seed: int = 0) -> ReCamMasterTransformer3DModel:
    torch.manual_seed(seed)
    model = ReCamMasterTransformer3DModel(**{**TINY, "num_layers": layers}, conditioning=conditioning).eval()
    with torch.no_grad():  # camera layers and view attention start neutral; randomise them so that they act
        for name, parameter in model.named_parameters():
            if "cam_encoder" in name or "view_attention" in name:
                parameter.normal_(0, 0.2)
    return model


def _inputs(seed: int = 1) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(2, 16, 2 * FRAMES, 4, 6, generator=generator)
    text = torch.randn(2, 5, TINY["text_dim"], generator=generator)
    camera = torch.randn(2, FRAMES, 12, generator=generator)
    return latents, torch.tensor([900.0, 250.0]), text, camera


def _target_output(model, latents, timestep, text, camera) -> torch.Tensor:
    with torch.no_grad():
        return model(latents, timestep, text, camera).sample[:, :, :FRAMES]


def _with_source_frame_changed(latents: torch.Tensor, frame: int) -> torch.Tensor:
    changed = latents.clone()
    changed[:, :, FRAMES + frame] += 1.0
    return changed


@pytest.mark.parametrize("conditioning", ["frame", "channel", "view"])
def test_every_conditioning_lets_the_source_reach_the_target(conditioning):
    model = _model(conditioning)
    latents, *rest = _inputs()
    with torch.no_grad():
        output = model(latents, *rest).sample
    assert output.shape == latents.shape
    changed = _target_output(model, _with_source_frame_changed(latents, 1), *rest)
    assert (changed - output[:, :, :FRAMES]).abs().amax() > 1e-3


def test_channel_conditioning_reads_both_videos_in_one_patch_and_leaves_the_source_still():
    model = _model("channel")
    assert model.patch_embedding.in_channels == 2 * TINY["in_channels"]
    latents, *rest = _inputs()
    with torch.no_grad():
        output = model(latents, *rest).sample
    assert torch.equal(output[:, :, FRAMES:], torch.zeros_like(output[:, :, FRAMES:]))


def test_view_attention_joins_only_the_same_frame_of_the_two_videos():
    """Changing one token of the source at frame 1 changes the view attention's output at frame 1 in both
    videos, and nothing at other frames or in other batch items."""
    torch.manual_seed(0)
    attention = ViewAttention(dim=24, num_heads=2, eps=1e-6)
    with torch.no_grad():
        for parameter in attention.parameters():
            parameter.normal_(0, 0.3)
    tokens_per_frame = 4
    hidden = torch.randn(2 * VIEWS, FRAMES * tokens_per_frame, 24)  # batch 2, views innermost
    changed = hidden.clone()
    changed[1, tokens_per_frame + 2] += torch.randn(24)  # batch 0, source, frame 1, token 2
    with torch.no_grad():
        difference = (attention(changed, tokens_per_frame) - attention(hidden, tokens_per_frame)).abs()
    per_frame = difference.unflatten(1, (FRAMES, tokens_per_frame)).amax(dim=(2, 3))  # (batch x views, frames)
    assert (per_frame[:2, 1] > 1e-3).all()  # both videos of batch 0 at frame 1
    assert per_frame[:2, [0, 2]].max() == 0
    assert per_frame[2:].max() == 0  # batch 1 untouched


def test_fresh_view_attention_keeps_the_videos_apart():
    """Its output projection starts at zero: a fresh view model sees each video alone."""
    torch.manual_seed(0)
    model = ReCamMasterTransformer3DModel(**TINY, conditioning="view").eval()
    latents, *rest = _inputs()
    before = _target_output(model, latents, *rest)
    after = _target_output(model, _with_source_frame_changed(latents, 0), *rest)
    assert torch.equal(before, after)


@pytest.mark.parametrize("conditioning", ["frame", "channel", "view"])
def test_checkpoints_say_their_conditioning_when_loaded(tmp_path, conditioning):
    """``train export`` and ``--checkpoint`` load a step{N}.ckpt with the base model's (frame) config: the
    weights decide the conditioning, and the loaded model computes what the saved one did."""
    model = _model(conditioning)
    path = save_official_checkpoint(model, tmp_path / "step10.ckpt", dtype=torch.float32)
    loaded = load_transformer(path, config=TINY, torch_dtype=torch.float32)
    assert loaded.config.conditioning == conditioning
    assert state_conditioning(loaded.state_dict()) == conditioning
    inputs = _inputs()
    torch.testing.assert_close(_target_output(loaded, *inputs), _target_output(model, *inputs), rtol=0, atol=0)


def test_a_channel_models_size_is_read_off_its_weights():
    """Its patch embedding reads 32 channels: 16 latent channels of each video."""
    shapes = {"patch_embedding.weight": (128, 32, 1, 2, 2), "proj_out.weight": (64, 128),
              "condition_embedder.text_embedder.linear_1.weight": (128, 4096),
              "condition_embedder.time_embedder.linear_1.weight": (128, 256),
              "blocks.0.ffn.net.0.proj.weight": (512, 128)}  # fmt: skip
    config = infer_transformer_config({key: torch.empty(shape) for key, shape in shapes.items()})
    assert (config["in_channels"], config["out_channels"], config["num_attention_heads"]) == (16, 16, 1)


def test_unknown_conditionings_are_refused():
    with pytest.raises(ValueError, match="conditioning must be one of frame, channel, view, got 'depth'"):
        ReCamMasterTransformer3DModel(**TINY, conditioning="depth")
    with pytest.raises(ReCamMasterError, match="conditioning must be one of frame, channel, view, got 'depth'"):
        FitConfig(from_scratch=True, model_config="tiny", conditioning="depth", data="synthetic",
                  model_dir="base").check()  # fmt: skip
    with pytest.raises(ReCamMasterError, match="conditioning: view needs from_scratch"):
        FitConfig(model_dir="base", conditioning="view", data="synthetic").check()
