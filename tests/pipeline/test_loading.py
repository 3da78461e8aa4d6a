"""The memory modes of ``load_pipeline``: which models stream by blocks, and that the output does not change."""

import json
import shutil
from unittest.mock import patch

import numpy as np
import pytest
import torch

from recammaster.errors import ReCamMasterError
from recammaster.pipeline.loading import load_pipeline
from recammaster.pipeline.recammaster_pipeline import RENDER_DEFAULTS_FILE


def streamed(model) -> bool:
    return any(hasattr(module, "_diffusers_hook") for module in model.modules())


@pytest.mark.parametrize(("offload", "expected"), [("none", (False, False, False)), ("text", (True, False, False)),
                                                    ("group", (True, True, True)),
                                                    ("group-tiled", (True, True, True))])  # fmt: skip
def test_offload_modes_stream_their_models_and_render_the_resident_result(pipeline_dir, source_video, offload,
                                                                          expected):  # fmt: skip
    def render(pipeline) -> np.ndarray:
        return pipeline(source_video[:9], "pan-left", "a scene", height=32, width=32, num_frames=9,
                        num_inference_steps=2, guidance_scale=3.0).frames  # fmt: skip

    pipeline = load_pipeline(pipeline_dir, "cpu", offload)
    assert tuple(streamed(m) for m in (pipeline.text_encoder, pipeline.transformer, pipeline.vae)) == expected
    assert pipeline.vae.use_tiling == (offload == "group-tiled")  # 32x32 frames fit one tile: the same output
    np.testing.assert_array_equal(render(pipeline), render(load_pipeline(pipeline_dir, "cpu", "none")))


@pytest.mark.parametrize(("asked", "offload", "expected"), [(True, "none", True), (True, "text", True),
                                                          (True, "group", False), (False, "none", False)])  # fmt: skip
def test_a_model_that_asks_for_whole_clips_renders_them_and_the_same_video(pipeline_dir, source_video, tmp_path, asked,
                                                                         offload, expected):  # fmt: skip
    folder = tmp_path / "model"
    shutil.copytree(pipeline_dir, folder)
    (folder / RENDER_DEFAULTS_FILE).write_text(json.dumps({"whole_clip_vae": asked}))
    pipeline = load_pipeline(folder, "cpu", offload)
    assert pipeline.whole_clip_vae == expected
    chunked = load_pipeline(pipeline_dir, "cpu", "none")
    assert not chunked.whole_clip_vae  # a model without the setting: upstream's chunks
    calls = []
    for model in (pipeline, chunked):
        with patch.object(type(model.vae), "decode", side_effect=type(model.vae).decode, autospec=True) as decode:
            frames = model(source_video[:9], "pan-left", "a scene", height=32, width=32, num_frames=9,
                           num_inference_steps=2, output_type="pt").frames  # fmt: skip
        calls.append((frames, decode.call_count))
    torch.testing.assert_close(calls[0][0], calls[1][0], rtol=0, atol=1e-5)
    assert (calls[0][1], calls[1][1]) == (0 if expected else 1, 1)


def test_an_unknown_mode_names_the_choices(pipeline_dir):
    with pytest.raises(ValueError, match="offload must be one of none, text, model, group, group-tiled, got 'disk'"):
        load_pipeline(pipeline_dir, "cpu", "disk")


@pytest.mark.parametrize("source_reuse", [1, 2])
def test_compiled_blocks_render_what_the_plain_model_renders(pipeline_dir, source_video, source_reuse):
    def latents(pipeline) -> torch.Tensor:
        return pipeline(source_video[:9], "pan-left", "a scene", height=32, width=32, num_frames=9,
                        num_inference_steps=3, guidance_scale=3.0, source_reuse=source_reuse,
                        output_type="latent").frames  # fmt: skip

    compiled = load_pipeline(pipeline_dir, "cpu", "none", compile_blocks=True)
    assert all(block._compiled_call_impl is not None for block in compiled.transformer.blocks)
    try:
        result = latents(compiled)
    finally:  # the block's variants (first, middle and last blocks, source reuse) count towards a recompile limit
        torch._dynamo.reset()
    torch.testing.assert_close(result, latents(load_pipeline(pipeline_dir, "cpu", "none")), rtol=1e-4, atol=1e-5)


def test_attention_kernel_is_set_on_every_block_and_checked(pipeline_dir):
    pipeline = load_pipeline(pipeline_dir, "cpu", "none", attention="_native_cudnn")
    backends = {block.attn1.processor._attention_backend for block in pipeline.transformer.blocks}
    backends |= {block.attn2.processor._attention_backend for block in pipeline.transformer.blocks}
    assert backends == {"_native_cudnn"}
    with pytest.raises(ReCamMasterError, match=r"attention must be one of native, .*, got 'fast'"):
        load_pipeline(pipeline_dir, "cpu", "none", attention="fast")
