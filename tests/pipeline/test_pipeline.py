"""The pipeline against a hand-written run of upstream's recipe, with a tiny random model on CPU."""

import math

import numpy as np
import pytest
import torch

from recammaster.cameras import get_preset
from recammaster.errors import TrajectoryError
from recammaster.models.text_encoder import DEFAULT_NEGATIVE_PROMPT, encode_prompt
from recammaster.models.vae import WAN_LATENTS_MEAN, WAN_LATENTS_STD
from recammaster.pipeline import euler_sample, flow_match_sigmas
from recammaster.pipeline.sampler import adams_bashforth_sample

ARGS = {"num_frames": 9, "height": 32, "width": 48, "num_inference_steps": 3}
PROMPT = "A red car drives along a coastal road at sunset."


def test_sigmas_are_upstreams_formula_exactly():
    for steps, shift in ((50, 5.0), (7, 3.0)):
        s = torch.linspace(1, 0, steps + 1)[:steps]  # spec §4.5: s_i = 1 - i/N, sigma = shift s / (1 + (shift-1) s)
        expected = torch.cat([shift * s / (1 + (shift - 1) * s), torch.zeros(1)])
        assert torch.equal(flow_match_sigmas(steps, shift), expected)
    timesteps = flow_match_sigmas(50) * 1000
    assert timesteps[:3].tolist() == pytest.approx([1000.0, 995.93, 991.74], abs=0.01)
    assert timesteps[-3:-1].tolist() == pytest.approx([172.41, 92.59], abs=0.01)


def test_adams_bashforth_converges_at_second_order_where_euler_converges_at_first():
    def velocity(z, timestep):  # dz/dsigma = z + cos(sigma): z = C e^sigma + (sin sigma - cos sigma) / 2
        return z + torch.cos(timestep / 1000)

    start = torch.tensor([0.3], dtype=torch.float64)  # z at sigma = 1
    exact = (0.3 - (math.sin(1) - math.cos(1)) / 2) / math.e - 0.5  # z at sigma = 0
    errors = {}
    for name, sample in (("euler", euler_sample), ("ab2", adams_bashforth_sample)):
        for steps in (20, 40):
            sigmas = flow_match_sigmas(steps, shift=3.0).double()  # uneven steps, as in use
            errors[name, steps] = abs(sample(velocity, start, sigmas).item() - exact)
    assert 1.8 < errors["euler", 20] / errors["euler", 40] < 2.2
    assert 3.6 < errors["ab2", 20] / errors["ab2", 40] < 4.4
    assert errors["ab2", 20] < errors["euler", 40] / 4  # half the steps, a quarter of the error


def _by_hand(pipe, video, trajectory, guidance, seed=0, motion_guidance=1.0):
    """Upstream's loop written out (spec §4): every step explicit, sharing only the networks; with motion guidance,
    plus (motion_guidance - 1) times the caption's velocity minus its velocity with frame 0 held for every frame."""
    from recammaster.video import preprocess_frames

    embeddings = encode_prompt(pipe.tokenizer, pipe.text_encoder, [PROMPT, DEFAULT_NEGATIVE_PROMPT])
    positive, negative = embeddings[:1], embeddings[1:]
    mean = torch.tensor(WAN_LATENTS_MEAN).view(1, 16, 1, 1, 1)
    inverse_std = 1 / torch.tensor(WAN_LATENTS_STD).view(1, 16, 1, 1, 1)  # upstream keeps 1/std and multiplies

    def encode(frames):
        pixels = preprocess_frames(frames, 32, 48)[None]
        return (pipe.vae.encode(pixels).latent_dist.mean - mean) * inverse_std

    source = encode(video[:9])
    still = encode(np.stack([video[0]] * 9))
    camera = torch.as_tensor(trajectory.condition())[None]
    z = torch.randn(source.shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)
    s = torch.linspace(1, 0, 4)[:3]
    sigmas = 5 * s / (1 + 4 * s)
    for i in range(3):
        x = torch.cat([z, source], dim=2)
        t = (sigmas[i] * 1000).reshape(1)
        v = v_caption = pipe.transformer(x, t, positive, camera).sample[:, :, :3]
        if guidance > 1:
            v_neg = pipe.transformer(x, t, negative, camera).sample[:, :, :3]
            v = v_neg + guidance * (v - v_neg)
        if motion_guidance > 1:
            v_still = pipe.transformer(torch.cat([z, still], dim=2), t, positive, camera).sample[:, :, :3]
            v = v + (motion_guidance - 1) * (v_caption - v_still)
        z = z + v * ((sigmas[i + 1] if i < 2 else 0.0) - sigmas[i])
    decoded = pipe.vae.decode(z / inverse_std + mean).sample.clamp(-1, 1)[0]
    return ((decoded.permute(1, 2, 3, 0) + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()


@pytest.mark.parametrize(("guidance", "motion_guidance"), [(5.0, 1.0), (1.0, 1.0), (1.0, 3.0), (5.0, 2.0)])
def test_matches_the_recipe_by_hand(pipeline, source_video, guidance, motion_guidance):
    trajectory = get_preset("arc-left")(num_frames=9)
    frames = pipeline(source_video, trajectory, PROMPT, guidance_scale=guidance, motion_guidance=motion_guidance,
                      **ARGS).frames  # fmt: skip
    assert frames.shape == (9, 32, 48, 3)
    assert frames.dtype == np.uint8
    with torch.no_grad():
        expected = _by_hand(pipeline, source_video, trajectory, guidance, motion_guidance=motion_guidance)
    np.testing.assert_array_equal(frames, expected)


def test_motion_guidance_changes_the_result_only_for_a_source_that_moves(pipeline, source_video):
    plain = pipeline(source_video, "pan-right", PROMPT, **ARGS).frames
    assert not np.array_equal(pipeline(source_video, "pan-right", PROMPT, motion_guidance=3.0, **ARGS).frames, plain)
    still = np.stack([source_video[0]] * len(source_video))  # its own first frame held: nothing to guide toward
    np.testing.assert_array_equal(pipeline(still, "pan-right", PROMPT, motion_guidance=3.0, **ARGS).frames,
                                  pipeline(still, "pan-right", PROMPT, **ARGS).frames)  # fmt: skip
    with pytest.raises(ValueError, match="motion_guidance does not work with source_reuse > 1"):
        pipeline(source_video, "pan-right", PROMPT, motion_guidance=2.0, source_reuse=2, **ARGS)


def test_seed_and_camera_change_the_result(pipeline, source_video):
    first = pipeline(source_video, "pan-right", PROMPT, **ARGS).frames
    assert np.array_equal(first, pipeline(source_video, "pan-right", PROMPT, **ARGS).frames)
    other_seed = pipeline(source_video, "pan-right", PROMPT, generator=torch.Generator().manual_seed(1), **ARGS)
    assert not np.array_equal(first, other_seed.frames)
    other_camera = pipeline(source_video, "tilt-up", PROMPT, **ARGS).frames
    assert not np.array_equal(first, other_camera)


def test_step_callback_and_latent_output(pipeline, source_video):
    seen = []
    latents = pipeline(
        source_video, "zoom-in", PROMPT, output_type="latent", callback_on_step_end=lambda i, z: seen.append(i), **ARGS
    ).frames
    assert seen == [0, 1, 2]
    assert tuple(latents.shape) == (1, 16, 3, 4, 6)


@pytest.mark.parametrize("guidance", [1.0, 5.0])
def test_source_reuse_runs_target_only_steps_between_full_ones(pipeline, source_video, guidance, monkeypatch):
    frames_seen = []
    forward = type(pipeline.transformer).forward

    def counting(model, hidden_states, *args, **kwargs):
        frames_seen.append(hidden_states.shape[2])
        return forward(model, hidden_states, *args, **kwargs)

    monkeypatch.setattr(type(pipeline.transformer), "forward", counting)
    arguments = {**ARGS, "num_inference_steps": 5, "guidance_scale": guidance}
    exact = pipeline(source_video, "arc-left", PROMPT, **arguments).frames
    frames_seen.clear()
    fast = pipeline(source_video, "arc-left", PROMPT, source_reuse=2, **arguments).frames
    per_step = [6, 3, 6, 3, 6]  # latent frames given to the transformer: full steps 0, 2, 4; target only between
    assert frames_seen == [n for n in per_step for _ in range(2 if guidance > 1 else 1)]
    assert pipeline.transformer.source_cache is None, "the cache is detached after sampling"
    assert not np.array_equal(fast, exact)
    difference = np.abs(fast.astype(int) - exact.astype(int))
    assert difference.mean() < 3.0, "a close approximation"


def test_the_second_order_solver_runs_in_the_pipeline_and_bad_solvers_are_refused(pipeline, source_video):
    seen = []
    ab2 = pipeline(source_video, "zoom-in", PROMPT, solver="ab2", callback_on_step_end=lambda i, z: seen.append(i),
                   **ARGS).frames  # fmt: skip
    assert seen == [0, 1, 2]
    assert not np.array_equal(ab2, pipeline(source_video, "zoom-in", PROMPT, **ARGS).frames)
    with pytest.raises(ValueError, match="solver must be one of euler, ab2, got 'rk4'"):
        pipeline(source_video, "zoom-in", PROMPT, solver="rk4", **ARGS)


def test_source_reuse_is_exact_while_every_step_is_full(pipeline, source_video):
    one_step = {**ARGS, "num_inference_steps": 1}
    exact = pipeline(source_video, "zoom-in", PROMPT, **one_step).frames
    np.testing.assert_array_equal(pipeline(source_video, "zoom-in", PROMPT, source_reuse=4, **one_step).frames, exact)
    with pytest.raises(ValueError, match="source_reuse must be at least 1"):
        pipeline(source_video, "zoom-in", PROMPT, source_reuse=0, **ARGS)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"num_frames": 8}, TrajectoryError, "a video of 8 frames cannot be encoded: the frame count must be 4k+1"),
        ({"height": 40}, ValueError, "height must be a positive multiple of 16, got 40"),
        ({"num_frames": 13}, ValueError, "the video has 11 frames; 13 are needed"),
        ({"guidance_scale": 0.5}, ValueError, "guidance_scale must be at least 1 (1 disables guidance), got 0.5"),
        ({"motion_guidance": 0.5}, ValueError, "motion_guidance must be at least 1 (1 disables it), got 0.5"),
        ({"output_type": "pil"}, ValueError, "output_type must be 'np', 'pt' or 'latent', got 'pil'"),
        ({"trajectory": "pan-right:frames=17"}, ValueError, "the trajectory has 17 frames but the video has 9"),
    ],
)
def test_bad_inputs_are_refused_before_any_work(pipeline, source_video, change, error, message):
    arguments = {**ARGS, "trajectory": "pan-right", **change}
    with pytest.raises(error) as caught:
        pipeline(source_video, arguments.pop("trajectory"), PROMPT, **arguments)
    assert str(caught.value).startswith(message)


def test_save_pretrained_round_trip(pipeline, source_video, tmp_path):
    from recammaster.pipeline import ReCamMasterPipeline

    pipeline.save_pretrained(tmp_path / "pipeline")
    again = ReCamMasterPipeline.from_pretrained(tmp_path / "pipeline")
    assert type(again.transformer) is type(pipeline.transformer)
    for name in ("text_encoder", "vae", "transformer"):
        saved, loaded = getattr(pipeline, name).state_dict(), getattr(again, name).state_dict()
        assert all(torch.equal(saved[key], loaded[key]) for key in saved), name
    expected = pipeline(source_video, "zoom-out", PROMPT, **ARGS).frames.astype(int)
    actual = again(source_video, "zoom-out", PROMPT, **ARGS).frames.astype(int)
    # same weights; float32 sums over differently laid-out tensors may move a pixel across a truncation step
    assert np.abs(actual - expected).max() <= 1
    assert (actual != expected).mean() < 1e-3
