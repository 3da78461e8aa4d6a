"""The training schedule, loss and trainable sets against the spec's formulas, computed independently."""

import numpy as np
import pytest
import torch
from accelerate import init_empty_weights

from recammaster.models.configs import transformer_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.training.objective import ConditionAugmentation, flow_matching_loss
from recammaster.training.schedule import TrainingSchedule
from recammaster.training.trainable import count_trainable, merged_state_dict, select_trainable


def spec_schedule() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spec §2.5 in float64: s = linspace(1, 0, 1001)[:1000], sigma = 5 s / (1 + 4 s), t = 1000 sigma, w(t)."""
    s = np.linspace(1, 0, 1001)[:1000]
    sigma = 5 * s / (1 + 4 * s)
    t = 1000 * sigma
    y = np.exp(-2 * ((t - 500) / 1000) ** 2)
    y = y - y.min()
    return sigma, t, y * 1000 / y.sum()


def test_schedule_matches_the_spec():
    schedule = TrainingSchedule()
    sigma, t, w = spec_schedule()
    np.testing.assert_allclose(schedule.sigmas.numpy(), sigma, rtol=1e-6)
    np.testing.assert_allclose(schedule.timesteps.numpy(), t, rtol=1e-6)
    np.testing.assert_allclose(schedule.weights.numpy(), w, rtol=1e-5, atol=1e-6)
    assert schedule.weights[0] == 0  # t = 1000
    assert schedule.weights.max().item() == pytest.approx(2.076, abs=1e-3)
    assert schedule.weights[-1].item() == pytest.approx(0.032, abs=1e-3)


def test_flat_weighting_keeps_upstreams_draw_and_weighs_every_level_one():
    upstream, flat = TrainingSchedule(), TrainingSchedule(weighting="flat")
    torch.testing.assert_close(flat.sigmas, upstream.sigmas)
    assert torch.equal(flat.weights, torch.ones(1000))
    a, b = (schedule.draw(64, torch.Generator().manual_seed(3)) for schedule in (upstream, flat))
    torch.testing.assert_close(a.sigma, b.sigma)
    assert torch.equal(b.weight, torch.ones(64))
    assert not torch.equal(a.weight, b.weight)
    with pytest.raises(ValueError, match="weighting must be one of upstream, flat, got 'even'"):
        TrainingSchedule(weighting="even")


def test_draw_rounds_to_bf16_and_takes_the_nearest_entry():
    schedule = TrainingSchedule()
    _, t, w = spec_schedule()
    draw = schedule.draw(4000, torch.Generator().manual_seed(1))
    index = torch.randint(0, 1000, (4000,), generator=torch.Generator().manual_seed(1)).numpy()
    rounded = torch.from_numpy(t[index]).float().to(torch.bfloat16).double().numpy()
    nearest = np.abs(t[None, :] - rounded[:, None]).argmin(axis=1)
    np.testing.assert_array_equal(draw.timestep.numpy(), rounded)
    np.testing.assert_allclose(draw.weight.numpy(), w[nearest], rtol=1e-5, atol=1e-6)
    assert 0.78 < (draw.timestep > 500).float().mean() < 0.88  # ~83% above 500 from the shift


class Recorder(torch.nn.Module):
    """A stand-in transformer: records its inputs, returns a fixed linear function of them."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5))
        self.calls = []

    def forward(self, x, t, text, camera, source_velocity=True):
        self.calls.append((x.clone(), t.clone(), text.clone(), camera.clone()))
        output = x if source_velocity else x[:, :, : x.shape[2] // 2]  # the target half first, as the model's
        return type("Out", (), {"sample": output * self.scale})()


def batch(seed=0, size=(2, 4, 3, 2, 2)):
    generator = torch.Generator().manual_seed(seed)
    target, source = torch.randn(size, generator=generator), torch.randn(size, generator=generator)
    return target, source, torch.randn(size[0], 5, 8, generator=generator), torch.randn(size[0], size[2], 12)


def generators(*seeds):
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def draws_by_hand(target, seeds):
    """Each sample's draws, in the order the spec lists them: index, then noise (from a generator of the latents'
    device, seeded by the sample's generator): noisy targets, timesteps, loss weights and noises."""
    sigma, t, w = spec_schedule()
    rows, timesteps, weights, noises = [], [], [], []
    for sample, generator in enumerate(generators(*seeds)):
        index = torch.randint(0, 1000, (1,), generator=generator).item()
        rounded = torch.tensor(t[index]).float().to(torch.bfloat16).float()
        entry = np.abs(t - rounded.double().item()).argmin()
        noise_seed = torch.randint(0, 2**62, (1,), generator=generator).item()
        noise = torch.randn(target.shape[1:], generator=torch.Generator().manual_seed(noise_seed))
        rows.append((1 - float(sigma[entry])) * target[sample] + float(sigma[entry]) * noise)
        timesteps.append(rounded)
        weights.append(float(w[entry]))
        noises.append(noise)
    return torch.stack(rows), torch.stack(timesteps), torch.tensor(weights), torch.stack(noises)


def test_loss_is_the_weighted_velocity_error_on_the_target_half():
    target, source, text, camera = batch()
    model, schedule = Recorder(), TrainingSchedule()
    out = flow_matching_loss(model, target, source, text, camera, schedule, generators(7, 8))

    rows, timesteps, weights, noises = draws_by_hand(target, (7, 8))
    x = torch.cat([rows, source], dim=2)
    x_seen, t_seen, _, _ = model.calls[0]
    torch.testing.assert_close(x_seen, x)
    torch.testing.assert_close(t_seen, timesteps)
    velocity = noises - target
    per_sample = ((0.5 * x[:, :, :3] - velocity) ** 2).flatten(1).mean(1) * weights
    torch.testing.assert_close(out.per_sample, per_sample)
    torch.testing.assert_close(out.loss, per_sample.mean())


def test_position_weights_make_each_samples_error_a_weighted_mean():
    """Weights per latent position (B, F, h, w), shared by the channels: sum(w e) / sum(w) per sample, by hand;
    weights that are all one give the plain loss."""
    target, source, text, camera = batch()
    positions = 1 + 3 * torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(4))
    out = flow_matching_loss(Recorder(), target, source, text, camera, TrainingSchedule(), generators(7, 8),
                             weights=positions)  # fmt: skip

    rows, _, weights, noises = draws_by_hand(target, (7, 8))
    error = (0.5 * rows - (noises - target)) ** 2  # (B, C, F, h, w)
    expected = torch.stack([(error[b] * positions[b]).sum() / (4 * positions[b].sum()) for b in range(2)]) * weights
    torch.testing.assert_close(out.per_sample, expected)
    plain = flow_matching_loss(Recorder(), target, source, text, camera, TrainingSchedule(), generators(7, 8))
    ones = flow_matching_loss(Recorder(), target, source, text, camera, TrainingSchedule(), generators(7, 8),
                              weights=torch.ones(2, 3, 2, 2))  # fmt: skip
    torch.testing.assert_close(ones.per_sample, plain.per_sample)
    assert not torch.allclose(out.per_sample, plain.per_sample)


def test_a_samples_draws_do_not_depend_on_its_batch():
    target, source, text, camera = batch()
    together, alone = Recorder(), Recorder()
    flow_matching_loss(together, target, source, text, camera, TrainingSchedule(), generators(3, 4))
    flow_matching_loss(alone, target[1:], source[1:], text[1:], camera[1:], TrainingSchedule(), generators(4))
    torch.testing.assert_close(together.calls[0][0][1:], alone.calls[0][0])
    with pytest.raises(ValueError, match="1 generators for a batch of 2"):
        flow_matching_loss(alone, target, source, text, camera, TrainingSchedule(), generators(4))


def test_condition_drop_and_text_drop_replace_the_inputs():
    target, source, text, camera = batch()
    model, empty = Recorder(), torch.full((5, 8), 3.0)
    options = ConditionAugmentation(condition_drop=1.0, text_drop=1.0)
    flow_matching_loss(model, target, source, text, camera, TrainingSchedule(), generators(0, 1), options, empty)
    x_seen, _, text_seen, _ = model.calls[0]
    assert torch.count_nonzero(x_seen[:, :, 3:]) == 0
    assert torch.equal(text_seen, empty.expand(2, 5, 8))
    with pytest.raises(ValueError, match="empty caption"):
        flow_matching_loss(model, target, source, text, camera, TrainingSchedule(), generators(0, 1),
                           ConditionAugmentation(text_drop=0.5))  # fmt: skip


def test_condition_noise_stays_in_its_timestep_range():
    schedule = TrainingSchedule()
    sigmas = schedule.between(200, 500, 1000, torch.Generator().manual_seed(0))
    assert (sigmas * 1000 >= 200).all()
    assert (sigmas * 1000 <= 500).all()
    assert len(set(sigmas.tolist())) > 50
    target, source, text, camera = batch()
    model = Recorder()
    options = ConditionAugmentation(condition_noise=(200, 500))
    flow_matching_loss(model, target, source, text, camera, schedule, generators(0, 1), options)
    noised = model.calls[0][0][:, :, 3:]
    assert not torch.equal(noised, source)
    with pytest.raises(ValueError, match="timestep range"):
        ConditionAugmentation(condition_noise=(500, 200))
    with pytest.raises(ValueError, match="probability"):
        ConditionAugmentation(condition_drop=1.5)


def test_upstream_trainable_set_has_354_816_000_parameters_at_1_3b():
    with init_empty_weights():
        model = ReCamMasterTransformer3DModel(**transformer_config("wan2.1-t2v-1.3b"))
    select_trainable(model, "camera-attention")
    assert count_trainable(model) == 354_816_000
    names = {name.split(".", 2)[2].split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert names == {"attn1", "cam_encoder", "projector"}
    select_trainable(model, "full")
    assert count_trainable(model) == sum(p.numel() for p in model.parameters())


def test_lora_trains_adapters_and_camera_layers_and_merges_into_plain_weights():
    torch.manual_seed(0)
    model = ReCamMasterTransformer3DModel(**transformer_config("tiny"))
    select_trainable(model, "lora", lora_rank=4)
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained
    assert all("lora_" in name or "cam_encoder" in name or "projector" in name for name in trained)
    with torch.no_grad():  # LoRA B starts at zero; give it a value so the merge matters
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.3)
    merged = merged_state_dict(model.state_dict())
    plain = ReCamMasterTransformer3DModel(**transformer_config("tiny"))
    plain.load_state_dict(merged, strict=True)
    x, t = torch.randn(1, 16, 4, 4, 4), torch.tensor([500.0])
    text, camera = torch.randn(1, 3, 16), torch.randn(1, 2, 12)
    with torch.no_grad():
        torch.testing.assert_close(plain(x, t, text, camera).sample, model(x, t, text, camera).sample)
    with pytest.raises(ValueError, match="unknown trainable set"):
        select_trainable(plain, "everything")
