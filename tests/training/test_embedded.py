"""The embedded default's assembly and export: text path from synthetic captions, half-precision folder."""

import torch
from diffusers import AutoencoderKLWan
from safetensors import safe_open

from recammaster.hub import embedded_model_dir
from recammaster.models.configs import transformer_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.vae import WAN_VAE_CONFIG
from recammaster.models.weights import save_official_checkpoint, warm_start
from recammaster.pipeline import ReCamMasterPipeline
from recammaster.pipeline.recammaster_pipeline import read_render_defaults
from recammaster.training.embedded import build_base_pipeline, caption_corpus


def test_base_pipeline_then_export_round_trip(tmp_path, run):
    AutoencoderKLWan(**{**WAN_VAE_CONFIG, "base_dim": 4, "num_res_blocks": 1}).save_pretrained(tmp_path / "vae")
    base = build_base_pipeline(tmp_path / "vae", tmp_path / "base", vocab_size=200, corpus_scenes=40)
    pipeline = ReCamMasterPipeline.load(base, torch_dtype=torch.float32)
    assert pipeline.transformer.config.num_layers == 6
    assert pipeline.text_encoder.config.d_model == pipeline.transformer.config.text_dim == 128
    caption = caption_corpus(0, 1)[0]
    assert pipeline.tokenizer.unk_token_id not in pipeline.tokenizer(caption).input_ids  # learned from such text

    with torch.no_grad():  # a "trained" transformer: different weights from the base's
        for parameter in pipeline.transformer.parameters():
            parameter.add_(0.01)
    save_official_checkpoint(pipeline.transformer, tmp_path / "step1.ckpt", dtype=torch.float32)
    code, _, err = run("train", "export", "--base", base, "--checkpoint", tmp_path / "step1.ckpt", "-o",
                       tmp_path / "shipped", "--height", "64", "--width", "96", "--steps", "8")  # fmt: skip
    assert code == 0, err
    shipped = ReCamMasterPipeline.load(tmp_path / "shipped", torch_dtype=torch.float32)
    for key, value in pipeline.transformer.state_dict().items():
        torch.testing.assert_close(shipped.transformer.state_dict()[key], value.half().float(), msg=key)
    files = list((tmp_path / "shipped").rglob("*.safetensors"))
    assert len(files) == 3  # text encoder, VAE, transformer
    for path in files:
        with safe_open(path, "pt") as handle:
            dtypes = {handle.get_slice(key).get_dtype() for key in handle.keys()}  # noqa: SIM118 - not a dict
            assert dtypes == {"F16"}, path
    assert read_render_defaults(tmp_path / "shipped") == {"height": 64, "width": 96, "num_inference_steps": 8,
                                                          "guidance_scale": 1.0, "motion_guidance": 1.0,
                                                          "whole_clip_vae": True}  # fmt: skip
    code, _, err = run("train", "export", "--base", base, "--checkpoint", tmp_path / "step1.ckpt", "-o",
                       tmp_path / "shipped")  # fmt: skip
    assert code == 1
    assert f"{tmp_path / 'shipped'}: exists and is not empty; pass --overwrite (overwrite=True) to replace it" in err


def test_a_base_can_reuse_another_pipelines_text_path_exactly(tmp_path, run):
    """The learned tokenizer and the random umT5 depend on the sentencepiece and transformers versions, so a
    model trained on one text path is trained on by reusing it (the shipped model's), not by rebuilding it."""
    AutoencoderKLWan(**{**WAN_VAE_CONFIG, "base_dim": 4, "num_res_blocks": 1}).save_pretrained(tmp_path / "vae")
    first = build_base_pipeline(tmp_path / "vae", tmp_path / "first", vocab_size=200, corpus_scenes=40)
    with torch.no_grad():  # unlike any freshly built encoder
        original = ReCamMasterPipeline.load(first, torch_dtype=torch.float32)
        original.text_encoder.shared.weight.mul_(-1)
        original.save_pretrained(first)
    code, _, err = run("train", "embedded-base", "--vae", tmp_path / "vae", "--text-from", first, "-o",
                       tmp_path / "second")  # fmt: skip
    assert code == 0, err
    second = ReCamMasterPipeline.load(tmp_path / "second", torch_dtype=torch.float32)
    assert second.tokenizer.get_vocab() == original.tokenizer.get_vocab()
    for key, value in original.text_encoder.state_dict().items():
        assert torch.equal(second.text_encoder.state_dict()[key], value), key
    code, _, err = run("train", "embedded-base", "--vae", tmp_path / "vae", "--text-from", tmp_path / "vae", "-o",
                       tmp_path / "third")  # fmt: skip
    assert code == 1
    assert err.endswith(f"error: {tmp_path / 'vae'}: no text_encoder/config.json; --text-from takes a saved pipeline "
                        "folder\n")  # fmt: skip


def test_a_base_for_a_4x_vae_gets_the_transformer_with_4x4_patches(tmp_path, run):
    """Patches span 16 pixels either way: a 4x VAE's latents make the same tokens as Wan2.1's 8x layout."""
    small = {**WAN_VAE_CONFIG, "base_dim": 4, "num_res_blocks": 1}
    four_x = {"dim_mult": [1, 2, 4], "temperal_downsample": [True, True], "scale_factor_spatial": 4}
    AutoencoderKLWan(**{**small, **four_x}).save_pretrained(tmp_path / "4x")
    base = build_base_pipeline(tmp_path / "4x", tmp_path / "base", vocab_size=200, corpus_scenes=40)
    transformer = ReCamMasterPipeline.load(base, torch_dtype=torch.float32).transformer
    expected = transformer_config("embedded-4x")
    assert expected == {**transformer_config("embedded"), "patch_size": (1, 4, 4)}
    assert {key: transformer.config[key] for key in expected} == {**expected, "patch_size": [1, 4, 4]}

    AutoencoderKLWan(**{**small, **four_x, "z_dim": 4}).save_pretrained(tmp_path / "4x4c")
    base = build_base_pipeline(tmp_path / "4x4c", tmp_path / "base-4c", text_from=base)
    transformer = ReCamMasterPipeline.load(base, torch_dtype=torch.float32).transformer
    assert transformer.config.in_channels == transformer.config.out_channels == 4
    assert transformer.patch_embedding.weight.shape[1:] == (4, 1, 4, 4)
    assert transformer.proj_out.weight.shape[0] == 64  # 4 x 4 x 4 numbers per patch, as the 8x layout's 2 x 2 x 16

    two_x = {"dim_mult": [1, 2], "temperal_downsample": [True], "scale_factor_spatial": 2}
    AutoencoderKLWan(**{**small, **two_x}).save_pretrained(tmp_path / "2x")
    code, _, err = run("train", "embedded-base", "--vae", tmp_path / "2x", "-o", tmp_path / "other")
    assert code == 1
    assert err.endswith(f"error: {tmp_path / '2x'}: a VAE of 2x latents of 16 channels; the embedded sizes are for "
                        "8x of 16, 4x of 16, 4x of 4\n")  # fmt: skip


def test_export_of_a_deeper_run_takes_its_named_size(tmp_path, run):
    """A run of another size than its base's (configs/embedded-4x4c-deep.yaml: twice the blocks) exports with it."""
    base = embedded_model_dir()
    deeper = ReCamMasterTransformer3DModel(**transformer_config("embedded-4x4c-deep"))
    warm_start(deeper, base / "transformer")
    save_official_checkpoint(deeper, tmp_path / "step1.ckpt", dtype=torch.float32)
    arguments = ("train", "export", "--base", base, "--checkpoint", tmp_path / "step1.ckpt", "-o", tmp_path / "out")
    code, _, err = run(*arguments)
    assert code == 1
    assert "weights do not fit the model; unknown: blocks.6." in err
    code, _, err = run(*arguments, "--model-config", "embedded-9x")
    assert code == 1
    assert err.startswith("error: --model-config must be one of wan2.1-t2v-1.3b, ")
    assert err.rstrip().endswith("got 'embedded-9x'")
    code, _, err = run(*arguments, "--model-config", "embedded-4x4c-deep")
    assert code == 0, err
    exported = ReCamMasterPipeline.load(tmp_path / "out", torch_dtype=torch.float32).transformer
    assert exported.config.num_layers == 12
    for key, value in deeper.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[key], value.half().float(), msg=key)


def test_a_finer_token_run_starts_from_the_shipped_blocks_and_exports_at_its_frame_size(tmp_path, run):
    """configs/embedded-fine.yaml: 2x2 patches (12x12 tokens a frame at 96x96) take every shipped tensor but the
    patch embedding and the output layer, and the export renders at 96x96 unless told otherwise."""
    base = embedded_model_dir()
    fine = ReCamMasterTransformer3DModel(**transformer_config("embedded-fine"))
    assert warm_start(fine, base / "transformer") == ["patch_embedding.weight", "proj_out.bias", "proj_out.weight"]
    latents = torch.zeros(1, 4, 2 * 21, 96 // 4, 96 // 4)  # source and target latents of 81 frames at 96x96
    assert fine.patch_embedding(latents).flatten(2).shape[-1] == 2 * 21 * 12 * 12
    save_official_checkpoint(fine, tmp_path / "step1.ckpt", dtype=torch.float32)
    code, _, err = run("train", "export", "--base", base, "--checkpoint", tmp_path / "step1.ckpt", "--model-config",
                       "embedded-fine", "--height", "96", "--width", "96", "-o", tmp_path / "out")  # fmt: skip
    assert code == 0, err
    assert read_render_defaults(tmp_path / "out")["height"] == 96
    exported = ReCamMasterPipeline.load(tmp_path / "out", torch_dtype=torch.float32).transformer
    assert tuple(exported.config.patch_size) == (1, 2, 2)
    for key, value in fine.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[key], value.half().float(), msg=key)
