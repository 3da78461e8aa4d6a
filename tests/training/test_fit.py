"""Whole training runs on the CPU with tiny models: learning, checkpoints, inference, resuming."""

import csv
import dataclasses
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recammaster.data.multicam import DatasetError
from recammaster.data.synth import SyntheticPairs
from recammaster.errors import OutputExistsError, ReCamMasterError, WeightsError
from recammaster.models.checkpoints import read_state_dict
from recammaster.models.configs import transformer_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.weights import load_transformer, official_to_diffusers, warm_start
from recammaster.pipeline import ReCamMasterPipeline
from recammaster.training.fit import POOL_FILE, STATE_FILE, FitConfig, _load_models, fit
from recammaster.training.module import ReCamMasterTraining, sample_generators
from recammaster.training.objective import flow_matching_loss
from recammaster.training.schedule import RateSchedule


def scratch_config(run: Path, pipeline_dir: Path, **changes) -> FitConfig:
    """A tiny transformer from scratch on synthetic 32x32, 5-frame pairs, encoded by the tiny pipeline's VAE."""
    options = {
        "output_dir": str(run), "model_dir": str(pipeline_dir), "from_scratch": True, "model_config": "tiny",
        "trainable": "full", "data": "synthetic", "height": 32, "width": 32, "num_frames": 5, "batch_size": 2,
        "max_steps": 6, "learning_rate": 2e-3, "gradient_checkpointing": False, "accelerator": "cpu", "devices": 1,
        "checkpoint_every": 3, "checkpoint_dtype": "float32", "log_every": 1,
    }  # fmt: skip
    return FitConfig(**{**options, **changes})


def logged(run: Path, metric: str) -> list[float]:
    """A logged metric at every step it has, over all the run's invocations (one log folder each)."""
    values = []
    for chunk in sorted((run / "logs").glob("chunk*")):
        with (chunk / "metrics.csv").open() as handle:
            values += [float(row[metric]) for row in csv.DictReader(handle) if row.get(metric)]
    return values


def logged_losses(run: Path) -> list[float]:
    return logged(run, "train/loss")


def test_interrupted_run_resumes_at_the_same_step_with_the_same_data(tmp_path, pipeline_dir):
    straight = fit(scratch_config(tmp_path / "straight", pipeline_dir), progress=False)
    fit(scratch_config(tmp_path / "resumed", pipeline_dir, max_steps=3), progress=False)
    assert (tmp_path / "resumed" / STATE_FILE).is_file()
    assert torch.load(tmp_path / "resumed" / STATE_FILE, weights_only=False)["global_step"] == 3
    resumed = fit(scratch_config(tmp_path / "resumed", pipeline_dir), progress=False)

    assert logged_losses(straight) == logged_losses(resumed)
    assert len(logged_losses(straight)) == 6
    assert logged(straight, "train/samples") == [2, 4, 6, 8, 10, 12]  # the throughput log: batch 2 a step
    times = logged(straight, "train/time")
    assert len(times) == 6
    assert all(later > earlier for earlier, later in itertools.pairwise(times))
    for step in (3, 6):
        a = read_state_dict(straight / "checkpoints" / f"step{step}.ckpt")
        b = read_state_dict(resumed / "checkpoints" / f"step{step}.ckpt")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a)


def test_rate_schedule_warms_up_holds_and_decays_to_zero():
    schedule = RateSchedule(warmup_steps=2, decay_steps=3, max_steps=10)
    factors = [schedule.factor(step) for step in range(10)]
    np.testing.assert_allclose(factors, [1 / 3, 2 / 3, 1, 1, 1, 1, 1, 1, 2 / 3, 1 / 3])
    assert RateSchedule().constant
    assert not schedule.constant
    with pytest.raises(ValueError, match=r"warm-up \(4\) and decay \(7\) steps do not fit in max_steps \(10\)"):
        RateSchedule(warmup_steps=4, decay_steps=7, max_steps=10)


def test_a_scheduled_run_resumes_on_its_schedule(tmp_path, pipeline_dir):
    schedule = {"warmup_steps": 2, "decay_steps": 3}
    straight = fit(scratch_config(tmp_path / "straight", pipeline_dir, **schedule), progress=False)
    chunk = scratch_config(tmp_path / "resumed", pipeline_dir, max_minutes=1e-6, **schedule)  # a step per call
    for _ in range(3):
        fit(chunk, progress=False)
    state = torch.load(tmp_path / "resumed" / STATE_FILE, weights_only=False)
    assert state["lr_schedulers"][0]["_last_lr"] == [2e-3 * RateSchedule(2, 3, 6).factor(3)]
    resumed = fit(scratch_config(tmp_path / "resumed", pipeline_dir, **schedule), progress=False)
    assert logged_losses(straight) == logged_losses(resumed)
    with pytest.raises(OutputExistsError) as refused:  # the decay ends at max_steps
        fit(scratch_config(tmp_path / "resumed", pipeline_dir, max_steps=9, **schedule), progress=False)
    assert str(refused.value) == (
        f"{tmp_path / 'resumed'}: holds a run with a different max_steps ({tmp_path / 'resumed' / 'config.yaml'}) "
        "(its learning rate falls to 0 at max_steps: to train on, start a new run from its last checkpoint with "
        "init_checkpoint); pick another output_dir; pass --overwrite (overwrite=True) to replace it"
    )
    constant = fit(scratch_config(tmp_path / "constant", pipeline_dir), progress=False)
    assert logged_losses(constant)[0] == logged_losses(straight)[0]
    assert logged_losses(constant)[1:] != logged_losses(straight)[1:]  # warm-up: smaller first steps


def test_init_checkpoint_of_a_float32_run_starts_from_its_exact_weights(tmp_path, pipeline_dir):
    run = fit(scratch_config(tmp_path / "run", pipeline_dir, max_steps=2, checkpoint_every=2), progress=False)
    saved = torch.load(run / "checkpoints" / "step2.ckpt", weights_only=True)
    config = scratch_config(tmp_path / "next", pipeline_dir, init_checkpoint=str(run / "checkpoints" / "step2.ckpt"))
    transformer, _ = _load_models(config, torch.bfloat16)  # the GPU's dtype: frozen parts bf16, this fp32
    loaded = official_to_diffusers(saved)
    assert transformer.dtype == torch.float32
    for name, parameter in transformer.state_dict().items():
        assert torch.equal(parameter, loaded[name]), name


def test_warm_start_copies_the_matching_tensors_into_a_model_of_another_patch_size(tmp_path, pipeline_dir):
    run = fit(scratch_config(tmp_path / "run", pipeline_dir, max_steps=1, checkpoint_every=1), progress=False)
    saved = official_to_diffusers(torch.load(run / "checkpoints" / "step1.ckpt", weights_only=True))
    four_x = {**transformer_config("tiny"), "patch_size": (1, 4, 4)}
    config = scratch_config(tmp_path / "next", pipeline_dir, model_config=four_x, warm_start=str(run / "checkpoints"
                            / "step1.ckpt"))  # fmt: skip
    transformer, _ = _load_models(config, torch.float32)
    fresh = ReCamMasterTransformer3DModel(**four_x).state_dict()  # the shapes of a 4x4-patch model
    reshaped = {"patch_embedding.weight", "proj_out.weight", "proj_out.bias"}
    assert {name for name, value in fresh.items() if saved.get(name, value).shape != value.shape} == reshaped
    for name, parameter in transformer.state_dict().items():
        if name in reshaped:
            assert parameter.shape == fresh[name].shape, name
        else:
            assert torch.equal(parameter, saved[name]), name
    unrelated = ReCamMasterTransformer3DModel(**{**four_x, "num_attention_heads": 3, "ffn_dim": 40, "out_channels": 8})
    with pytest.raises(WeightsError, match=r"step1\.ckpt: no tensor matches the model's names and shapes"):
        warm_start(unrelated, run / "checkpoints" / "step1.ckpt")


def test_warm_start_of_a_deeper_model_starts_its_new_blocks_as_the_identity(tmp_path, pipeline_dir):
    run = fit(scratch_config(tmp_path / "run", pipeline_dir, max_steps=1, checkpoint_every=1), progress=False)
    weights = run / "checkpoints" / "step1.ckpt"
    shallow = load_transformer(weights, config=transformer_config("tiny"), torch_dtype=torch.float32)
    layers = shallow.config.num_layers
    deeper = ReCamMasterTransformer3DModel(**{**transformer_config("tiny"), "num_layers": layers + 2})
    fresh = warm_start(deeper, weights)
    assert {name.split(".")[1] for name in fresh} == {str(layers), str(layers + 1)}  # the new blocks alone
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 16, 4, 8, 8, generator=generator)
    arguments = (latents, torch.tensor([500.0]), torch.randn(1, 5, 16, generator=generator), torch.randn(1, 2, 12))
    with torch.no_grad():
        torch.testing.assert_close(deeper(*arguments).sample, shallow(*arguments).sample)


def test_compiled_blocks_train_as_the_plain_ones_and_keep_their_weight_names(tmp_path, pipeline_dir):
    from torch._dynamo.utils import counters

    plain = fit(scratch_config(tmp_path / "plain", pipeline_dir, max_steps=2, checkpoint_every=2), progress=False)
    torch._dynamo.reset()  # other tests' compiled blocks count towards dynamo's recompile limit for this code
    counters.clear()
    compiled = fit(scratch_config(tmp_path / "compiled", pipeline_dir, max_steps=2, checkpoint_every=2,
                                  compile_blocks=True), progress=False)  # fmt: skip
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo really captured the blocks
    np.testing.assert_allclose(logged_losses(compiled), logged_losses(plain), rtol=1e-4)
    a = torch.load(plain / "checkpoints" / "step2.ckpt", weights_only=True)
    b = torch.load(compiled / "checkpoints" / "step2.ckpt", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)


def test_a_different_run_in_the_same_folder_is_refused(tmp_path, pipeline_dir):
    fit(scratch_config(tmp_path / "run", pipeline_dir, max_steps=1), progress=False)
    with pytest.raises(OutputExistsError) as refused:
        fit(scratch_config(tmp_path / "run", pipeline_dir, max_steps=1, learning_rate=1.0), progress=False)
    assert str(refused.value) == (
        f"{tmp_path / 'run'}: holds a run with a different learning_rate ({tmp_path / 'run' / 'config.yaml'}); pick "
        "another output_dir; pass --overwrite (overwrite=True) to replace it"
    )
    fit(scratch_config(tmp_path / "run", pipeline_dir, max_steps=1, learning_rate=1.0), overwrite=True, progress=False)


def test_bad_configs_are_refused_before_loading_anything(tmp_path):
    with pytest.raises(ReCamMasterError, match=r"trainable must be one of.*strategy must be one of"):
        fit(FitConfig(output_dir=str(tmp_path), trainable="most", strategy="magic", dataset="x"))
    with pytest.raises(ReCamMasterError, match="data: cached needs dataset"):
        fit(FitConfig(output_dir=str(tmp_path)))
    with pytest.raises(ReCamMasterError, match="pool_refilm works with data: synthetic-pool, not synthetic"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic", model_dir="m", pool_refilm=1))
    with pytest.raises(ReCamMasterError, match=r"warm-up \(600\) and decay \(500\) steps do not fit"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic", model_dir="m", warmup_steps=600, decay_steps=500))
    with pytest.raises(ReCamMasterError, match="pool_refilm must be a whole number of cameras"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic-pool", model_dir="m", pool_refilm=-1))
    with pytest.raises(ReCamMasterError, match=r"character_weight needs data: synthetic-pool .*, not synthetic$"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic", model_dir="m", character_weight=4))
    with pytest.raises(ReCamMasterError, match="character_weight must be a positive number, got 0"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic-pool", model_dir="m", character_weight=0))
    with pytest.raises(ReCamMasterError, match=r"pool_walk_share must be a chance between 0 and 1, got 1\.5; "
                                               r"pool_still_share needs pool_refilm > 0"):  # fmt: skip
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic-pool", model_dir="m", pool_walk_share=1.5,
                      pool_still_share=0.5))  # fmt: skip
    with pytest.raises(ReCamMasterError, match="pool_still_share works with data: synthetic-pool, not synthetic"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic", model_dir="m", pool_still_share=0.5))
    with pytest.raises(ReCamMasterError, match="pool_still_sources needs pool_refilm > 0: the sources stand where"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic-pool", model_dir="m", pool_still_sources="only"))
    with pytest.raises(ReCamMasterError, match="pool_still_sources must be one of none, only, also, got True"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic-pool", model_dir="m", pool_still_sources=True))
    with pytest.raises(ReCamMasterError, match=r"pool_twin_speeds must be a list of speeds \(0 or more\), got \[-1\]"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic-pool", model_dir="m", pool_twin_speeds=[-1]))
    with pytest.raises(ReCamMasterError, match=r"pool_twin_speeds works with data: synthetic-pool, not synthetic$"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic", model_dir="m", pool_twin_speeds=[0]))
    with pytest.raises(ReCamMasterError, match="timestep_weighting must be one of upstream, flat, got 'even'"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic-pool", model_dir="m", timestep_weighting="even"))
    bad_kernels = r"attention must be one of native, .*flash4, got 'fa3'; gradient_checkpointing must be true, false"
    with pytest.raises(ReCamMasterError, match=bad_kernels + " or selective, got 'some'"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic", model_dir="m", gradient_checkpointing="some",
                      attention="fa3"))  # fmt: skip
    with pytest.raises(ReCamMasterError, match=r"warm_start starts a from_scratch model.*keep one"):
        fit(FitConfig(output_dir=str(tmp_path), data="synthetic", model_dir="m", warm_start="w", init_checkpoint="c"))
    (tmp_path / "bad.yaml").write_text("learning_rate: 1\nlearning_speed: 2\n")
    with pytest.raises(ReCamMasterError, match=r"bad\.yaml: unknown options learning_speed"):
        FitConfig.from_yaml(tmp_path / "bad.yaml")


def test_official_checkpoint_renders_through_the_pipeline(tmp_path, pipeline_dir, source_video):
    run = fit(scratch_config(tmp_path / "run", pipeline_dir, max_steps=2, checkpoint_every=2), progress=False)
    checkpoint = run / "checkpoints" / "step2.ckpt"
    state = torch.load(checkpoint, weights_only=True)  # a flat dict under the official names, as upstream loads
    assert "blocks.0.self_attn.q.weight" in state
    assert "blocks.1.cam_encoder.weight" in state
    assert "head.head.weight" in state
    assert not any(key.startswith("transformer.") for key in state)

    # the same weights reach the pipeline by two routes: our loader, and the trainer state by hand
    loaded = load_transformer(checkpoint, config="tiny", torch_dtype=torch.float32)
    by_hand = ReCamMasterTransformer3DModel(**transformer_config("tiny"))
    trained = torch.load(run / STATE_FILE, weights_only=False)["state_dict"]
    by_hand.load_state_dict({k.removeprefix("transformer."): v for k, v in trained.items()}, strict=True)
    assert official_to_diffusers(state).keys() == by_hand.state_dict().keys()

    pipeline = ReCamMasterPipeline.load(pipeline_dir, torch_dtype=torch.float32)
    pipeline.set_progress_bar_config(disable=True)
    frames = []
    for transformer in (loaded.eval(), by_hand.eval()):
        pipeline.transformer = transformer
        frames.append(pipeline(source_video, "pan-right", "a scene", height=32, width=32, num_frames=5,
                               num_inference_steps=3, guidance_scale=2.0).frames)  # fmt: skip
    assert frames[0].shape == (5, 32, 32, 3)
    np.testing.assert_array_equal(frames[0], frames[1])


def test_loss_falls_on_a_small_synthetic_set(tmp_path, pipeline_dir):
    """A held-out loss with fixed draws, before and after 40 steps from scratch."""
    pipeline = ReCamMasterPipeline.load(pipeline_dir, torch_dtype=torch.float32)
    pairs = SyntheticPairs(seed=99, height=32, width=32, num_frames=5)
    batch = {key: [pairs[i][key] for i in range(6)] for key in ("target_video", "source_video", "caption", "camera")}
    batch = {key: torch.stack(value) if key != "caption" else value for key, value in batch.items()}

    def held_out_loss(transformer) -> float:
        module = ReCamMasterTraining(transformer, trainable="full", vae=pipeline.vae,
                                     text_encoder=pipeline.text_encoder, tokenizer=pipeline.tokenizer)  # fmt: skip
        with torch.no_grad():
            target, source, text = module.latents(batch)
            losses = [flow_matching_loss(transformer, target, source, text, batch["camera"], module.schedule,
                                         sample_generators(seed, range(6))).loss for seed in range(8)]  # fmt: skip
        return float(torch.stack(losses).mean())

    torch.manual_seed(0)
    before = held_out_loss(ReCamMasterTransformer3DModel(**transformer_config("tiny")))
    run = fit(scratch_config(tmp_path / "run", pipeline_dir, max_steps=40, checkpoint_every=40), progress=False)
    after = held_out_loss(
        load_transformer(run / "checkpoints" / "step40.ckpt", config="tiny", torch_dtype=torch.float32)
    )
    assert after < 0.7 * before, (before, after)


def test_scene_pool_items_are_the_streams_pairs_encoded(tiny_pipeline):
    from recammaster.cameras.conventions import camera_condition
    from recammaster.data.synth.engine import make_scene
    from recammaster.models.vae import encode_video, latent_coverage
    from recammaster.training.data import SyntheticLatentPool

    encoders = (tiny_pipeline.vae, tiny_pipeline.tokenizer, tiny_pipeline.text_encoder)
    pool = SyntheticLatentPool(*encoders, seed=5, num_scenes=2, height=32, width=32, num_frames=5, device="cpu",
                               progress=False)  # fmt: skip
    assert len(pool) == 180
    stream = SyntheticPairs(seed=5, height=32, width=32, num_frames=5)
    spec = make_scene(5, 2, 5)
    videos = stream.to_video(stream.render(spec))
    item = pool[(90 + 9 * 4 + 6, 3)]  # scene 2, target camera 4, source the 7th other camera: camera 7
    with torch.no_grad():
        expected = encode_video(tiny_pipeline.vae, videos[[4, 7]]).to(torch.bfloat16)
    assert torch.equal(item["target_latents"], expected[0])
    assert torch.equal(item["source_latents"], expected[1])
    condition = camera_condition(spec.trajectories[4].poses, reference=spec.trajectories[7].poses[0])
    np.testing.assert_array_equal(item["camera"].numpy(), condition)
    assert item["text"].shape == (512, 16)
    _, masks = stream.render_with_masks(spec)  # the target camera's characters, per latent value
    coverage = latent_coverage(masks[4] > 0, 8).to(torch.bfloat16)
    assert torch.equal(item["target_characters"], coverage)
    assert item["target_characters"].shape == expected[0].shape[1:]


def test_a_refilming_pool_pairs_cameras_that_share_frame_0(tiny_pipeline):
    from recammaster.cameras.conventions import camera_condition
    from recammaster.data.synth.engine import make_scene
    from recammaster.data.synth.scene import refilm_trajectories
    from recammaster.models.vae import encode_video
    from recammaster.training.data import _REFILM_STREAM, SyntheticLatentPool

    encoders = (tiny_pipeline.vae, tiny_pipeline.tokenizer, tiny_pipeline.text_encoder)
    pool = SyntheticLatentPool(*encoders, seed=5, num_scenes=2, height=32, width=32, num_frames=5, device="cpu",
                               progress=False, refilm=2)  # fmt: skip
    assert len(pool) == 2 * 10 * 3 * 2  # ten groups of three cameras, six ordered pairs in each
    spec = make_scene(5, 2, 5)
    extra = refilm_trajectories(spec, np.random.default_rng([5, 2, _REFILM_STREAM]), 2)
    cameras = spec.trajectories + extra  # scene cameras 0..9, then camera c's re-filmings at 10 + 2c, 11 + 2c
    stream = SyntheticPairs(seed=5, height=32, width=32, num_frames=5)
    videos = stream.to_video(stream.render(dataclasses.replace(spec, trajectories=cameras)))
    with torch.no_grad():
        latents = encode_video(tiny_pipeline.vae, videos).to(torch.bfloat16)
    # scene 2, group 4 (camera 4, then clips 18 and 19); its pair 3 has target member 1 and source member 2
    for pair, (target, source) in {3: (18, 19), 0: (4, 18), 5: (19, 18)}.items():
        item = pool[60 + 4 * 6 + pair]
        assert torch.equal(item["target_latents"], latents[target])
        assert torch.equal(item["source_latents"], latents[source])
        condition = camera_condition(cameras[target].poses, reference=cameras[source].poses[0])
        np.testing.assert_array_equal(item["camera"].numpy(), condition)
        np.testing.assert_allclose(condition[0], np.eye(4)[:3].reshape(-1), atol=1e-6)  # the request starts there


def test_a_cached_scene_pool_is_read_back_without_rendering(tiny_pipeline, tmp_path):
    from recammaster.training.data import SyntheticLatentPool

    options = {"seed": 5, "num_scenes": 1, "height": 32, "width": 32, "num_frames": 5, "device": "cpu",
               "progress": False, "cache": tmp_path / "pool.pt"}  # fmt: skip
    rendered = SyntheticLatentPool(tiny_pipeline.vae, tiny_pipeline.tokenizer, tiny_pipeline.text_encoder, **options)
    read = SyntheticLatentPool(None, None, None, **options)  # no encoders: it cannot have rendered anything
    assert len(read) == len(rendered) == 90
    for key in ((0, 0), (47, 0), (89, 1)):
        for name, value in rendered[key].items():
            assert torch.equal(read[key][name], value), name
    assert torch.equal(read.empty_text(), rendered.empty_text())

    old = torch.load(tmp_path / "pool.pt", weights_only=False)  # a pool file from before character masks were kept
    del old["characters"]
    torch.save(old, tmp_path / "old.pt")
    before = SyntheticLatentPool(None, None, None, **{**options, "cache": tmp_path / "old.pt"})
    assert "target_characters" not in before[0]
    assert torch.equal(before[0]["target_latents"], rendered[0]["target_latents"])

    with pytest.raises(DatasetError) as error:  # the file is another pool's
        SyntheticLatentPool(None, None, None, **{**options, "seed": 6, "num_frames": 9})
    assert str(error.value) == (f"{tmp_path / 'pool.pt'}: a scene pool of other settings: seed 5 (asked 6), "
                                "num_frames 5 (asked 9); name another pool file")  # fmt: skip


def test_a_stopped_pool_render_goes_on_from_its_last_part(tiny_pipeline, tmp_path, monkeypatch):
    from recammaster.training import data

    encoders = (tiny_pipeline.vae, tiny_pipeline.tokenizer, tiny_pipeline.text_encoder)
    options = {"seed": 5, "num_scenes": 3, "height": 32, "width": 32, "num_frames": 5, "device": "cpu",
               "progress": False}  # fmt: skip
    monkeypatch.setattr(data, "POOL_PART_SCENES", 2)
    drawn, make_scene = [], data.make_scene

    def stopped_at_scene_3(seed, index, *args):
        drawn.append(index)
        if index == 3 and len(drawn) == 3:  # the first render stops (a device's time limit) at its third scene
            raise KeyboardInterrupt
        return make_scene(seed, index, *args)

    monkeypatch.setattr(data, "make_scene", stopped_at_scene_3)
    cache = tmp_path / "pool.pt"
    with pytest.raises(KeyboardInterrupt):
        data.SyntheticLatentPool(*encoders, cache=cache, **options)
    parts = tmp_path / "pool.pt.parts"
    assert not cache.exists()
    assert sorted(path.name for path in parts.iterdir()) == ["scenes-00000.pt"]
    (tmp_path / "other.pt.parts").mkdir()
    shutil.copy(parts / "scenes-00000.pt", tmp_path / "other.pt.parts")
    resumed = data.SyntheticLatentPool(*encoders, cache=cache, **options)
    assert drawn == [1, 2, 3, 3]  # scenes 1 and 2 came from the part
    assert cache.is_file()
    assert not parts.exists()
    whole = data.SyntheticLatentPool(*encoders, **options)
    assert len(resumed) == len(whole) == 270
    for key in (0, 135, 269):
        for name, value in whole[key].items():
            assert torch.equal(resumed[key][name], value), name

    with pytest.raises(DatasetError) as error:  # a part of another pool's settings is refused, not mixed in
        data.SyntheticLatentPool(*encoders, cache=tmp_path / "other.pt", **{**options, "seed": 6})
    assert str(error.value) == (f"{tmp_path / 'other.pt.parts' / 'scenes-00000.pt'}: a scene pool of other settings: "
                                "seed 5 (asked 6); name another pool file")  # fmt: skip


def test_fit_on_a_scene_pool_writes_checkpoints_and_samples(tmp_path, pipeline_dir):
    config = scratch_config(tmp_path / "run", pipeline_dir, data="synthetic-pool", pool_scenes=2, max_steps=3,
                            sample_every=3, sample_steps=2, sample_count=1)  # fmt: skip
    run = fit(config, progress=False)
    assert (run / "checkpoints" / "step3.ckpt").is_file()
    assert [p.name for p in (run / "samples").iterdir()] == ["step0000003_0.mp4"]
    written = (run / POOL_FILE).stat().st_mtime_ns  # the next invocation reads the scenes back
    fit(dataclasses.replace(config, max_steps=4), progress=False)
    assert (run / "checkpoints" / "step4.ckpt").is_file()
    assert (run / POOL_FILE).stat().st_mtime_ns == written
    fit(config, overwrite=True, progress=False)  # starting over renders the pool again
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step3.ckpt"]
    assert (run / POOL_FILE).stat().st_mtime_ns > written

    other = dataclasses.replace(config, output_dir=str(tmp_path / "other"), pool_file=str(run / POOL_FILE))
    written = (run / POOL_FILE).stat().st_mtime_ns
    fit(other, progress=False)  # another run on the same pool: read, not rendered
    assert (tmp_path / "other" / "checkpoints" / "step3.ckpt").is_file()
    assert not (tmp_path / "other" / POOL_FILE).exists()
    assert (run / POOL_FILE).stat().st_mtime_ns == written

    weighted = dataclasses.replace(config, output_dir=str(tmp_path / "weighted"), pool_file=str(run / POOL_FILE),
                                   character_weight=4.0, timestep_weighting="flat", max_steps=1,
                                   sample_every=0)  # fmt: skip
    assert (fit(weighted, progress=False) / "checkpoints" / "step1.ckpt").is_file()
    old = torch.load(run / POOL_FILE, weights_only=False)  # a pool file from before character masks were kept
    del old["characters"]
    torch.save(old, tmp_path / "old_pool.pt")
    with pytest.raises(DatasetError, match=r"old_pool\.pt: a scene pool written before character masks were kept"):
        fit(dataclasses.replace(weighted, output_dir=str(tmp_path / "old"), pool_file=str(tmp_path / "old_pool.pt")),
            progress=False)  # fmt: skip


def test_character_weight_turns_character_coverage_into_loss_weights():
    transformer = ReCamMasterTransformer3DModel(**transformer_config("tiny"))
    coverage = torch.tensor([[[[0.0, 0.25], [1.0, 0.5]]]])
    weighted = ReCamMasterTraining(transformer, trainable="full", character_weight=5.0)
    assert torch.equal(
        weighted.loss_weights({"target_characters": coverage}), torch.tensor([[[[1.0, 2.0], [5.0, 3.0]]]])
    )
    with pytest.raises(ValueError, match="character_weight needs batches with target_characters"):
        weighted.loss_weights({"target_latents": torch.zeros(1)})
    assert ReCamMasterTraining(transformer, trainable="full").loss_weights({"target_characters": coverage}) is None


def test_timestep_weighting_chooses_the_schedules_loss_weights():
    transformer = ReCamMasterTransformer3DModel(**transformer_config("tiny"))
    assert torch.equal(ReCamMasterTraining(transformer, timestep_weighting="flat").schedule.weights, torch.ones(1000))
    assert ReCamMasterTraining(transformer).schedule.weights[0] == 0  # upstream's bump: t = 1000 weighs nothing


def test_a_time_limit_stops_each_invocation_and_the_next_one_goes_on(tmp_path, pipeline_dir):
    config = scratch_config(tmp_path / "run", pipeline_dir, max_steps=50, max_minutes=1e-6, checkpoint_every=50)
    for expected_step in (1, 2):
        fit(config, progress=False)
        assert torch.load(tmp_path / "run" / STATE_FILE, weights_only=False)["global_step"] == expected_step


def test_a_pool_of_walkers_and_still_cameras_keeps_its_mix_in_its_file(tiny_pipeline, tmp_path):
    from recammaster.data.synth.engine import make_scene
    from recammaster.training.data import SyntheticLatentPool

    encoders = (tiny_pipeline.vae, tiny_pipeline.tokenizer, tiny_pipeline.text_encoder)
    options = {"seed": 5, "num_scenes": 1, "height": 32, "width": 32, "num_frames": 5, "device": "cpu",
               "progress": False, "refilm": 1, "cache": tmp_path / "pool.pt"}  # fmt: skip
    pool = SyntheticLatentPool(*encoders, walk_share=1.0, still_share=1.0, **options)
    assert len(pool) == 10 * 2
    walkers = make_scene(5, 1, 5, walk_share=1.0)
    for group in range(10):  # the walkers' scene's cameras, and every re-filming stands at its camera's first pose
        np.testing.assert_array_equal(pool.poses[0][group], walkers.trajectories[group].poses)
        still = pool.poses[0][10 + group]
        np.testing.assert_array_equal(still, np.broadcast_to(walkers.trajectories[group].poses[0], still.shape))
    with pytest.raises(DatasetError) as error:  # the file records the mix, so a pool of the engine's mix is another
        SyntheticLatentPool(None, None, None, **options)
    assert str(error.value) == (f"{tmp_path / 'pool.pt'}: a scene pool of other settings: walk_share 1.0 (asked None), "
                                "still_share 1.0 (asked None); name another pool file")  # fmt: skip
    with pytest.raises(ValueError, match=r"still_share needs re-filmings \(refilm > 0\)"):
        SyntheticLatentPool(*encoders, **{**options, "refilm": 0, "cache": None}, still_share=0.5)


def test_a_pool_of_still_sources_pairs_every_camera_of_a_group_with_a_tripod_at_its_start(tiny_pipeline, tmp_path):
    from recammaster.cameras.conventions import camera_condition
    from recammaster.training.data import SyntheticLatentPool

    encoders = (tiny_pipeline.vae, tiny_pipeline.tokenizer, tiny_pipeline.text_encoder)
    options = {"seed": 5, "num_scenes": 1, "height": 32, "width": 32, "num_frames": 5, "device": "cpu",
               "progress": False, "refilm": 1}  # fmt: skip
    pool = SyntheticLatentPool(*encoders, still_sources="only", cache=tmp_path / "pool.pt", **options)
    moving = SyntheticLatentPool(*encoders, **options)
    assert len(pool) == 10 * 2  # two pairs a group: the tripod to the camera and to its re-filming
    poses = pool.poses[0]
    np.testing.assert_array_equal(poses[:20], moving.poses[0])  # the re-filmings draw as without the tripods
    for group in range(10):
        tripod = poses[20 + group]
        np.testing.assert_array_equal(tripod, np.broadcast_to(poses[group][0], tripod.shape))
        for member, target in enumerate((group, 10 + group)):
            item = pool[2 * group + member]
            assert torch.equal(item["source_latents"], pool.latents[0][20 + group])
            assert torch.equal(item["target_latents"], pool.latents[0][target])
            assert torch.equal(item["target_characters"], pool.characters[0][target])
            expected = camera_condition(poses[target], reference=tripod[0])
            np.testing.assert_array_equal(item["camera"].numpy(), expected)
    with pytest.raises(DatasetError) as error:  # the file records it
        SyntheticLatentPool(None, None, None, cache=tmp_path / "pool.pt", **options)
    assert str(error.value) == (f"{tmp_path / 'pool.pt'}: a scene pool of other settings: still_sources only "
                                "(asked None); name another pool file")  # fmt: skip
    both = SyntheticLatentPool(*encoders, still_sources="also", **options)  # the tripod pairs, then the moving ones
    assert len(both) == 20 + len(moving)
    for index in range(len(both)):
        expected = pool[index] if index < 20 else moving[index - 20]
        for key in ("source_latents", "target_latents", "camera"):
            assert torch.equal(both[index][key], expected[key]), (index, key)
    with pytest.raises(ValueError, match=r"still_sources needs re-filmings \(refilm > 0\)"):
        SyntheticLatentPool(*encoders, **{**options, "refilm": 0}, still_sources="only")
    with pytest.raises(ValueError, match="still_sources must be one of none, only, also, got 'yes'"):
        SyntheticLatentPool(*encoders, **options, still_sources="yes")


def test_a_pool_with_twins_repeats_each_pair_on_clips_whose_characters_move_at_other_speeds(tiny_pipeline, tmp_path):
    from recammaster.data.synth.engine import make_scene
    from recammaster.models.vae import encode_video, latent_coverage
    from recammaster.training.data import SyntheticLatentPool

    encoders = (tiny_pipeline.vae, tiny_pipeline.tokenizer, tiny_pipeline.text_encoder)
    options = {"seed": 5, "num_scenes": 1, "height": 32, "width": 32, "num_frames": 5, "device": "cpu",
               "progress": False, "walk_share": 1.0}  # fmt: skip
    twins = SyntheticLatentPool(*encoders, twin_speeds=(0, 0.5), cache=tmp_path / "pool.pt", **options)
    plain = SyntheticLatentPool(*encoders, **options)
    assert len(twins) == 3 * len(plain) == 270
    assert torch.equal(twins.latents[0][:10], plain.latents[0])  # the scene's own clips first, as without twins
    stream = SyntheticPairs(seed=5, height=32, width=32, num_frames=5)
    for twin_number, speed in enumerate((0, 0.5), start=1):
        images, masks = stream.render_with_masks(make_scene(5, 1, 5, walk_share=1.0), character_speed=speed)
        with torch.no_grad():
            clips = encode_video(tiny_pipeline.vae, stream.to_video(images)).to(torch.bfloat16)
        own = slice(10 * twin_number, 10 * twin_number + 10)
        assert torch.equal(twins.latents[0][own], clips)
        assert torch.equal(twins.characters[0][own], latent_coverage(masks > 0, 8).to(torch.bfloat16))
        assert torch.equal(clips[:, :, 0], plain.latents[0][:, :, 0])  # frame 0 is the same picture
        assert not torch.equal(clips[:, :, 1:], plain.latents[0][:, :, 1:])  # the walkers have moved in the scene's
        for index in (0, 37, 89):
            twin, original = twins[90 * twin_number + index], plain[index]
            for key in ("camera", "text"):
                assert torch.equal(twin[key], original[key]), (index, key)
            target, other = divmod(index, 9)
            source = other + (other >= target)
            assert torch.equal(twin["target_latents"], clips[target])
            assert torch.equal(twin["source_latents"], clips[source])
            assert torch.equal(twin["target_characters"], twins.characters[0][own][target])
            assert torch.equal(twins[index]["target_latents"], original["target_latents"])
    with pytest.raises(DatasetError) as error:  # the file records them
        SyntheticLatentPool(None, None, None, cache=tmp_path / "pool.pt", **options)
    assert str(error.value) == (f"{tmp_path / 'pool.pt'}: a scene pool of other settings: twin_speeds [0.0, 0.5] "
                                "(asked None); name another pool file")  # fmt: skip
