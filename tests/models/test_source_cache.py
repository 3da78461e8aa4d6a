"""Reusing the source tokens' keys and values: exact in the recording step, and what the sampler runs."""

import pytest
import torch

from recammaster.models.configs import transformer_config
from recammaster.models.source_cache import SourceKVCache
from recammaster.models.transformer import ReCamMasterTransformer3DModel


@pytest.fixture(scope="module")
def model() -> ReCamMasterTransformer3DModel:
    torch.manual_seed(0)
    transformer = ReCamMasterTransformer3DModel(**transformer_config("tiny")).eval()
    with torch.no_grad():  # a camera that matters, so that target-only tokens must get theirs right
        for block in transformer.blocks:
            block.cam_encoder.weight.normal_(0, 0.5)
    return transformer


def inputs(model, frames: int = 3, batch: int = 2):
    generator = torch.Generator().manual_seed(1)
    shape = (batch, model.config.in_channels, frames, 8, 12)
    target, source = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    text = torch.randn(batch, 7, model.config.text_dim, generator=generator)
    camera = torch.randn(batch, frames, 12, generator=generator)
    return target, source, torch.tensor([700.0, 300.0][:batch]), text, camera


@torch.no_grad()
def test_recording_changes_nothing_and_target_only_equals_the_full_forwards_target_half(model):
    target, source, t, text, camera = inputs(model)
    full = model(torch.cat([target, source], dim=2), t, text, camera).sample
    cache = SourceKVCache.attach(model)
    try:
        with cache.recording("caption"):
            recorded = model(torch.cat([target, source], dim=2), t, text, camera).sample
        with cache.reusing("caption"):
            target_only = model(target, t, text, camera, target_only=True).sample
    finally:
        cache.detach()
    torch.testing.assert_close(recorded, full, rtol=0, atol=0)
    torch.testing.assert_close(target_only, full[:, :, :3], rtol=1e-5, atol=1e-5)
    assert not cache.recorded, "detach drops what was recorded"
    assert not cache.processors


@torch.no_grad()
def test_reused_keys_from_another_step_approximate_and_each_branch_keeps_its_own(model):
    target, source, t, text, camera = inputs(model)
    cache = SourceKVCache.attach(model)
    try:
        with cache.recording("caption"):
            model(torch.cat([target, source], dim=2), t, text, camera)
        with cache.recording("negative"):
            model(torch.cat([target, source], dim=2), t, torch.zeros_like(text), camera)
        assert cache.recorded == {"caption", "negative"}
        assert all(processor.keys.keys() == {"caption", "negative"} for processor in cache.processors)
        assert len(cache.processors) == len(model.blocks)
        moved = target + 0.05 * torch.randn_like(target)  # the next step's target
        with cache.reusing("caption"):
            reused = model(moved, t, text, camera, target_only=True).sample
        with cache.reusing("negative"):
            other = model(moved, t, text, camera, target_only=True).sample
    finally:
        cache.detach()
    exact = model(torch.cat([moved, source], dim=2), t, text, camera).sample[:, :, :3]
    assert not torch.equal(reused, exact)
    assert (reused - exact).abs().max() < 0.1 * exact.abs().max()
    assert (other - exact).abs().max() > (reused - exact).abs().max(), "the wrong branch's keys are worse"


def test_detach_restores_the_original_processors(model):
    before = [block.attn1.processor for block in model.blocks]
    cache = SourceKVCache.attach(model)
    assert model.source_cache is cache
    cache.detach()
    assert [block.attn1.processor for block in model.blocks] == before
    assert model.source_cache is None


def test_misuse_is_refused(model):
    target, _, t, text, camera = inputs(model)
    with pytest.raises(ValueError, match=r"target_only needs an attached SourceKVCache inside cache\.reusing"):
        model(target, t, text, camera, target_only=True)
    cache = SourceKVCache.attach(model)
    try:
        with pytest.raises(RuntimeError, match="nothing recorded for branch 'caption'"), cache.reusing("caption"):
            pass
    finally:
        cache.detach()
    channel = ReCamMasterTransformer3DModel(**transformer_config("tiny"), conditioning="channel")
    with pytest.raises(ValueError, match="only with frame conditioning"):
        SourceKVCache.attach(channel)
