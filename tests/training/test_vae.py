"""``train vae`` on the CPU with tiny VAEs: learning, exact resuming, the exported folder, refused configs."""

import csv
import json
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLWan

from recammaster.data.synth import SyntheticPairStream, make_scene
from recammaster.errors import ReCamMasterError
from recammaster.models.checkpoints import read_state_dict
from recammaster.models.vae import decode_latents, encode_video, load_wan_vae
from recammaster.training.fit import STATE_FILE
from recammaster.training.vae import (
    METRICS_FILE,
    VAE_FOLDER,
    SyntheticClips,
    VaeConfig,
    VaeTraining,
    held_out_clips,
    psnr,
    train_vae,
)


def tiny_config(run: Path, **changes) -> VaeConfig:
    """A 0.24 M-parameter VAE on 5-frame windows of 9-frame 16x16 renders, two scenes at once; two held-out clips."""
    options = {
        "output_dir": str(run), "vae_config": {"base_dim": 4}, "size": 16, "render_frames": 9, "clip_frames": 5,
        "windows_per_camera": 2, "scenes_at_once": 2, "held_out_clips": 2, "batch_size": 2, "max_steps": 6,
        "learning_rate": 2e-3, "warmup_steps": 4, "accelerator": "cpu", "devices": 1, "checkpoint_every": 3,
        "log_every": 1,
    }  # fmt: skip
    return VaeConfig(**{**options, **changes})


def logged(run: Path, name: str) -> list[float]:
    """A logged value at every step, over all the run's invocations (one log folder each)."""
    values = []
    for chunk in sorted((run / "logs").glob("chunk*")):
        with (chunk / "metrics.csv").open() as handle:
            values += [float(row[name]) for row in csv.DictReader(handle) if row.get(name)]
    return values


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    return train_vae(tiny_config(tmp_path_factory.mktemp("vae") / "straight"), progress=False)


def test_samples_interleave_scenes_and_windows_are_frame_groups():
    clips = SyntheticClips(3, size=16, render_frames=9, clip_frames=5, windows_per_camera=2, scenes_at_once=2)
    located = [clips.locate(sample)[:2] for sample in (0, 1, 2, 3, 39, 40)]
    assert located == [(1, 0), (2, 0), (1, 1), (2, 1), (2, 9), (3, 0)]  # (scene, camera): the scene changes fastest
    assert {clips.locate(sample)[2] for sample in (0, 20)} == {0, 4}  # scene 1, camera 0: both windows, once each

    scene, camera, start = clips.locate(20)
    item = clips[20]
    assert item["sample"] == 20
    assert item["video"].shape == (3, 5, 16, 16)
    stream = SyntheticPairStream(3, 16, 9)  # the engine's own render of that camera, all nine frames
    whole = stream.to_video(stream.render(make_scene(3, scene, 9))[camera])
    assert torch.equal(item["video"], whole[:, start : start + 5])
    assert -1 <= whole.min() < whole.max() <= 1


def test_samples_carry_the_engines_character_masks():
    """An item's ``characters`` are the pixels the renderer's own mask output gives a character id, for the item's
    window; the engine's scenes show characters, so the masks are neither empty nor full."""
    from recammaster.data.synth.engine import render_scene

    clips = SyntheticClips(3, size=16, render_frames=9, clip_frames=5, windows_per_camera=2, scenes_at_once=2)
    scene, camera, start = clips.locate(5)
    item = clips[5]
    spec = make_scene(3, scene, 9)
    rendered = render_scene(spec, 16, masks=True)
    assert item["characters"].dtype == torch.bool
    assert torch.equal(item["characters"], torch.from_numpy(rendered.masks[camera, start : start + 5] > 0))
    assert torch.equal(
        item["video"], SyntheticPairStream.to_video(torch.from_numpy(rendered.images[camera]))[:, start : start + 5]
    )
    assert 0 < item["characters"].float().mean() < 1


def test_character_weight_weighs_the_character_pixels_error():
    """The weighted L1 against an independent computation from the same posterior draws: character pixels count
    ``character_weight`` times, the mean keeps its scale; weight 1, or no masks, is the plain mean."""
    from recammaster.models.whole_clip_vae import decode_whole_clip, encode_whole_clip
    from recammaster.training.module import sample_generators
    from recammaster.training.vae import vae_loss

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=4).eval()
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    characters = torch.zeros(2, 5, 16, 16, dtype=torch.bool)
    characters[0, :, 4:9, 6:8] = True
    characters[1, 2:, 10:, :3] = True

    with torch.no_grad():
        posterior = encode_whole_clip(vae, video)
        noise = torch.stack([torch.randn(posterior.mean.shape[1:], generator=g) for g in sample_generators(0, [7, 8])])
        error = (decode_whole_clip(vae, posterior.mean + posterior.std * noise) - video).abs()  # (2, 3, 5, 16, 16)
        inside, outside = (
            error[characters.unsqueeze(1).expand_as(error)],
            error[~characters.unsqueeze(1).expand_as(error)],
        )
        expected = (4.0 * inside.sum() + outside.sum()) / (4.0 * inside.numel() + outside.numel())

        def l1(*options):
            return vae_loss(vae, video, sample_generators(0, [7, 8]), 0.0, *options).l1.item()

        assert l1(characters, 4.0) == pytest.approx(expected.item(), rel=1e-5)
        assert l1(characters, 1.0) == pytest.approx(error.mean().item(), rel=1e-5)
        assert l1() == pytest.approx(error.mean().item(), rel=1e-5)
        assert l1(characters, 4.0) != pytest.approx(l1(), rel=1e-3)


def test_held_out_character_psnr_is_the_psnr_of_the_character_pixels():
    from recammaster.models.whole_clip_vae import decode_whole_clip, encode_whole_clip
    from recammaster.training.vae import evaluate

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=4).eval()
    clips = [torch.rand(3, 5, 16, 16) * 2 - 1 for _ in range(3)]
    characters = [torch.rand(5, 16, 16) < 0.1 for _ in range(3)]
    result = evaluate(vae, clips, characters, batch_size=2)
    with torch.no_grad():
        errors = [(decode_whole_clip(vae, encode_whole_clip(vae, c[None]).mean)[0] - c).square() for c in clips]
    squared = torch.cat([e[m.unsqueeze(0).expand_as(e)] for e, m in zip(errors, characters, strict=True)])
    assert result["character_psnr"] == pytest.approx(10 * torch.log10(4 / squared.mean()).item(), abs=1e-3)
    assert result["psnr"] == pytest.approx(
        torch.stack([10 * torch.log10(4 / e.mean()) for e in errors]).mean().item(), abs=1e-3
    )
    assert evaluate(vae, clips, [torch.zeros(5, 16, 16, dtype=torch.bool)] * 3, 2)["character_psnr"] is None


def test_learning_rate_rises_linearly_over_the_warmup_then_stays():
    module = VaeTraining(AutoencoderKLWan(base_dim=4), learning_rate=1e-3, kl_weight=0.0, seed=0, warmup_steps=3)
    optimizers = module.configure_optimizers()
    optimizer, schedule = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3, 1e-3])


def test_interrupted_run_ends_with_the_same_weights(tmp_path, straight):
    resumed = train_vae(tiny_config(tmp_path / "resumed", max_steps=3), progress=False)
    assert torch.load(resumed / STATE_FILE, weights_only=False)["global_step"] == 3
    train_vae(tiny_config(tmp_path / "resumed"), progress=False)

    assert logged(straight, "train/loss") == logged(resumed, "train/loss")
    assert len(logged(straight, "train/loss")) == 6
    a = torch.load(straight / STATE_FILE, weights_only=False)["state_dict"]
    b = torch.load(resumed / STATE_FILE, weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    a = read_state_dict(straight / VAE_FOLDER / "diffusion_pytorch_model.safetensors")
    b = read_state_dict(resumed / VAE_FOLDER / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert json.loads((resumed / METRICS_FILE).read_text())["steps"] == 6


def test_saved_vae_loads_with_latents_normalised_on_the_held_out_clips(straight):
    vae = load_wan_vae(straight / VAE_FOLDER)
    assert vae.dtype == torch.float32
    assert vae.config.base_dim == 4
    clips = torch.stack(held_out_clips(tiny_config(straight))[0])  # (2, 3, 9, 16, 16): full length
    latents = encode_video(vae, clips)  # (2, 16, 3, 2, 2)
    std, mean = torch.std_mean(latents.transpose(0, 1).flatten(1), dim=1)
    torch.testing.assert_close(mean, torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(std, torch.ones(16), atol=1e-4, rtol=0)

    metrics = json.loads((straight / METRICS_FILE).read_text())
    assert (metrics["steps"], metrics["held_out_clips"], metrics["frames"]) == (6, 2, 9)
    reconstruction = decode_latents(vae, latents)
    assert metrics["psnr_db"] == pytest.approx(psnr(reconstruction, clips).mean().item(), abs=1e-3)
    shown = torch.stack(held_out_clips(tiny_config(straight))[1]).unsqueeze(1).expand_as(clips)
    character_mse = (reconstruction - clips)[shown].square().mean()
    assert metrics["character_psnr_db"] == pytest.approx(10 * torch.log10(4 / character_mse).item(), abs=1e-3)


def test_loss_falls_on_unseen_frames_of_the_training_scenes(tmp_path):
    """Two scenes' 5-frame renders, 40 steps; measured on their 9-frame renders' last five frames, which the run
    never saw (the cameras move on another timeline). New scenes need far longer: see vae_metrics.json's PSNR."""
    config = tiny_config(tmp_path / "run", size=32, render_frames=5, windows_per_camera=8, scenes_at_once=2,
                         batch_size=4, max_steps=40, checkpoint_every=0)  # fmt: skip
    longer = SyntheticClips(config.seed, size=32, render_frames=9, clip_frames=5)
    clips = torch.stack([longer.clip(1 + index % 2, index // 2, 4, 5) for index in range(8)])

    def held_out_l1(vae: AutoencoderKLWan) -> float:
        with torch.no_grad():
            return (vae.decode(vae.encode(clips).latent_dist.mean).sample - clips).abs().mean().item()

    torch.manual_seed(config.seed)  # the run's initial weights
    before = held_out_l1(AutoencoderKLWan(**config.vae_arguments()))
    after = held_out_l1(load_wan_vae(train_vae(config, progress=False) / VAE_FOLDER))
    assert after < 0.75 * before, (before, after)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("clip_frames: 17\nclip_lenght: 5\n", "{path}: unknown options clip_lenght"),
        ("clip_frames: 16\n", "vae training config: clip_frames must be 4k+1 (5, 9, 13, 17, ...), got 16"),
        ("learning_rate: 3e-4\n", "vae training config: learning_rate must be a number, got '3e-4'"),
        ("vae_config: {base_dims: 8}\n", "vae training config: vae_config: AutoencoderKLWan has no argument base_dims"),
        ("size: 20\n", "vae training config: size must be a positive multiple of 8, got 20"),
        (
            "size: 18\nvae_config: {dim_mult: [1, 2, 4], temperal_downsample: [true, true]}\n",
            "vae training config: size must be a positive multiple of 4, got 18",
        ),
        ("character_weight: 0\n", "vae training config: character_weight must be positive, got 0"),
        ("train_part: encoder\n", "vae training config: train_part must be one of all, decoder, got 'encoder'"),
        (
            "train_part: decoder\n",
            "vae training config: train_part: decoder needs init_from, the VAE whose encoder it keeps",
        ),
        (
            "init_from: a\nwarm_start: b\n",
            "vae training config: warm_start and init_from both set the starting weights; keep one",
        ),
    ],
)
def test_bad_configs_are_refused_naming_the_problem(tmp_path, run, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    message = message.format(path=path)
    with pytest.raises(ReCamMasterError) as error:
        VaeConfig.from_yaml(path).check()
    assert str(error.value) == message
    assert run("train", "vae", "--config", path, "-o", tmp_path / "run") == (1, "", f"error: {message}\n")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_4x_spatial_vae_trains_and_exports(tmp_path):
    """Three ``dim_mult`` stages on 12x12 frames (a size Wan2.1's 8x layout refuses): the exported VAE encodes the
    held-out clips to 3x3 latents, normalised, and decodes them back to 12x12."""
    four_x = {"base_dim": 4, "dim_mult": [1, 2, 4], "temperal_downsample": [True, True], "scale_factor_spatial": 4}
    config = tiny_config(tmp_path / "run", vae_config=four_x, size=12, max_steps=2, checkpoint_every=0)
    vae = load_wan_vae(train_vae(config, progress=False) / VAE_FOLDER)
    clips = torch.stack(held_out_clips(config)[0])  # (2, 3, 9, 12, 12)
    latents = encode_video(vae, clips)
    assert latents.shape == (2, 16, 3, 3, 3)
    torch.testing.assert_close(latents.transpose(0, 1).flatten(1).mean(1), torch.zeros(16), atol=1e-4, rtol=0)
    assert decode_latents(vae, latents).shape == clips.shape


def test_a_run_can_start_from_another_runs_vae(tmp_path):
    from recammaster.models.vae import WAN_VAE_CONFIG
    from recammaster.training.vae import start_from

    torch.manual_seed(1)
    small = {**WAN_VAE_CONFIG, "base_dim": 4, "num_res_blocks": 1}
    AutoencoderKLWan(**small).save_pretrained(tmp_path / "trained")
    fresh = AutoencoderKLWan(**small)
    start_from(fresh, tmp_path / "trained")
    trained = AutoencoderKLWan.from_pretrained(tmp_path / "trained").state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in fresh.state_dict().items())
    with pytest.raises(ReCamMasterError, match="trained: cannot start the VAE from it"):
        start_from(AutoencoderKLWan(**{**small, "base_dim": 8}), tmp_path / "trained")


def test_a_vae_of_fewer_latent_channels_warm_starts_from_all_but_the_layers_next_to_the_latents(tmp_path):
    """16 -> 4 channels: the encoder's last convolution, the two 1x1 convolutions and the decoder's first weight
    start fresh; every other tensor is the trained VAE's. A run with ``warm_start`` trains from there."""
    from recammaster.models.vae import WAN_VAE_CONFIG
    from recammaster.training.vae import warm_start_vae

    four_x = {"base_dim": 4, "dim_mult": [1, 2, 4], "temperal_downsample": [True, True], "scale_factor_spatial": 4}
    torch.manual_seed(2)
    AutoencoderKLWan(**{**WAN_VAE_CONFIG, **four_x}).save_pretrained(tmp_path / "sixteen")
    trained = AutoencoderKLWan.from_pretrained(tmp_path / "sixteen").state_dict()
    four = AutoencoderKLWan(**{**WAN_VAE_CONFIG, **four_x, "z_dim": 4})
    before = {key: value.clone() for key, value in four.state_dict().items()}
    fresh = warm_start_vae(four, tmp_path / "sixteen")
    assert fresh == [
        "decoder.conv_in.weight",
        "encoder.conv_out.bias",
        "encoder.conv_out.weight",
        "post_quant_conv.bias",
        "post_quant_conv.weight",
        "quant_conv.bias",
        "quant_conv.weight",
    ]
    for key, value in four.state_dict().items():
        assert torch.equal(value, before[key] if key in fresh else trained[key]), key
    with pytest.raises(ReCamMasterError, match="missing: cannot start the VAE from it"):
        warm_start_vae(four, tmp_path / "missing")

    config = tiny_config(tmp_path / "run", vae_config={**four_x, "z_dim": 4}, size=12, max_steps=2, checkpoint_every=0,
                         warm_start=str(tmp_path / "sixteen"))  # fmt: skip
    vae = load_wan_vae(train_vae(config, progress=False) / VAE_FOLDER)
    assert encode_video(vae, torch.stack(held_out_clips(config)[0])).shape == (2, 4, 3, 3, 3)
    assert len(vae.config.latents_mean) == len(vae.config.latents_std) == 4  # measured on its own latents


def test_decoder_only_run_keeps_the_encoder_and_its_latents(tmp_path, straight):
    """From a trained VAE, ``train_part: decoder`` changes the decoder only: the latents a transformer was trained
    on, and their statistics, are the same bits; the reconstruction of the held-out clips gets better."""
    before = load_wan_vae(straight / VAE_FOLDER)
    config = tiny_config(tmp_path / "decoder", init_from=str(straight / VAE_FOLDER), train_part="decoder",
                         max_steps=40, checkpoint_every=0)  # fmt: skip
    after = load_wan_vae(train_vae(config, progress=False) / VAE_FOLDER)

    old, new = before.state_dict(), after.state_dict()
    frozen = [key for key in old if key.startswith(("encoder.", "quant_conv."))]
    trained = [key for key in old if key.startswith(("decoder.", "post_quant_conv."))]
    assert len(frozen) + len(trained) == len(old)
    assert all(torch.equal(old[key], new[key]) for key in frozen)
    assert sum(not torch.equal(old[key], new[key]) for key in trained) == len(trained)
    assert after.config.latents_mean == before.config.latents_mean
    assert after.config.latents_std == before.config.latents_std

    clips = torch.stack(held_out_clips(config)[0])
    latents = encode_video(before, clips)
    torch.testing.assert_close(encode_video(after, clips), latents, rtol=0, atol=0)
    metrics = json.loads((tmp_path / "decoder" / METRICS_FILE).read_text())
    assert metrics["latents_mean"] == before.config.latents_mean
    assert metrics["psnr_db"] > json.loads((straight / METRICS_FILE).read_text())["psnr_db"] + 0.5
