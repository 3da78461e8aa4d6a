"""The queries' and keys' norm and rotation in one Triton kernel: the kernel itself (in Triton's interpreter on CPU
tensors) against the plain path, and the model with the fused op against the plain model."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

from recammaster.models.norm_rotation import launch, rotate_pairs
from recammaster.models.self_attention import SelfAttentionProcessor
from recammaster.models.source_cache import SourceKVCache

from .test_conditioning import _inputs, _model
from .test_exact_savings import OpCalls, _close

HEAD_DIM = 16


def _angles(frames: int = 3, height: int = 4, width: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Wan's rotary tables for a (frames, height / 2, width / 2) token grid: (1, L, 1, HEAD_DIM) each."""
    return WanRotaryPosEmbed(HEAD_DIM, (1, 2, 2), 64)(torch.zeros(1, 1, frames, height, width))


def _plain(hidden_states, weight, eps, cos, sin):
    """torch.nn.RMSNorm over all heads, then each head's pairs rotated: what diffusers' processor does."""
    length = hidden_states.shape[1]
    normalised = F.rms_norm(hidden_states, (hidden_states.shape[-1],), weight, eps).unflatten(-1, (-1, HEAD_DIM))
    return rotate_pairs(normalised, cos[:, :length], sin[:, :length]).flatten(-2)


def _check_the_plain_norm_and_rotation(dtype: torch.dtype, heads: int, queries: int | None) -> None:
    cos, sin = _angles()
    generator = torch.Generator().manual_seed(0)
    length = queries or cos.shape[1]
    hidden_states = (3 * torch.randn(2, length, heads * HEAD_DIM, generator=generator) + 1).to(dtype)
    weight = (1 + 0.3 * torch.randn(heads * HEAD_DIM, generator=generator)).to(dtype)
    fused = launch(hidden_states, weight, 1e-6, cos, sin)
    expected = _plain(hidden_states, weight, 1e-6, cos, sin)
    assert fused.dtype == dtype
    if dtype == torch.float32:  # the same operations: equal but for sums and square roots in another order
        torch.testing.assert_close(fused, expected, rtol=1e-6, atol=1e-6)
    else:  # the interpreter truncates to bf16 where a GPU rounds to nearest: within two units of the largest value
        scale = expected.float().abs().max().item()
        torch.testing.assert_close(fused.float(), expected.float(), rtol=0.0, atol=2.0**-6 * scale)


def _check_each_tokens_pairs_turn_by_its_own_angles() -> None:
    """Against a rotation written out pair by pair from the angles' definition."""
    cos, sin = _angles()
    hidden_states = torch.randn(1, cos.shape[1], 2 * HEAD_DIM, dtype=torch.float64)
    fused = launch(hidden_states, torch.ones(2 * HEAD_DIM, dtype=torch.float64), 0.0, cos, sin)
    normalised = hidden_states / hidden_states.square().mean(-1, keepdim=True).sqrt()
    for token in (0, 7, cos.shape[1] - 1):
        for channel in range(0, 2 * HEAD_DIM, 2):
            angle = torch.atan2(sin[0, token, 0, channel % HEAD_DIM], cos[0, token, 0, channel % HEAD_DIM]).double()
            x, y = normalised[0, token, channel : channel + 2]
            rotated = torch.stack([x * angle.cos() - y * angle.sin(), x * angle.sin() + y * angle.cos()])
            torch.testing.assert_close(fused[0, token, channel : channel + 2], rotated, rtol=1e-5, atol=1e-5)


def kernel_checks() -> None:
    """Every check of the kernel; run in a process that asked for Triton's interpreter before importing Triton."""
    for dtype in (torch.bfloat16, torch.float32):
        for heads in (3, 4):  # 48 channels (a masked block of 64) and 64
            for queries in (None, 10):  # all tokens, or the first ones' queries (their angles first)
                _check_the_plain_norm_and_rotation(dtype, heads, queries)
    _check_each_tokens_pairs_turn_by_its_own_angles()
    print("kernel checks passed")


def test_the_kernel_gives_the_plain_norm_and_rotation():
    """In Triton's interpreter on CPU tensors; Triton reads the switch as it is imported, so in a fresh process."""
    code = "from tests.models.test_norm_rotation import kernel_checks; kernel_checks()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).parents[2], env={**os.environ, "TRITON_INTERPRET": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kernel checks passed" in done.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the compiled kernel needs a GPU")
def test_on_a_gpu_the_kernel_rounds_as_the_plain_path():
    cos, sin = (angles.cuda() for angles in _angles())
    generator = torch.Generator("cuda").manual_seed(0)
    hidden_states = (3 * torch.randn(2, cos.shape[1], 96, generator=generator, device="cuda") + 1).bfloat16()
    weight = (1 + 0.3 * torch.randn(96, generator=generator, device="cuda")).bfloat16()
    fused = launch(hidden_states, weight, 1e-6, cos, sin)
    expected = _plain(hidden_states, weight, 1e-6, cos, sin)
    assert (fused == expected).float().mean() > 0.99  # the odd last-place difference: sums in another order
    torch.testing.assert_close(fused, expected)


def test_the_fused_norm_rotation_gives_the_plain_models_output():
    model, (latents, timestep, text, camera) = _model("frame", layers=3), _inputs()
    fused = copy.deepcopy(model)
    fused.fuse_norm_rotations()
    fused.fuse_norm_rotations()  # a second call changes nothing more
    with torch.no_grad():
        for velocity in (True, False):  # the last block's target queries too
            expected = model(latents, timestep, text, camera, source_velocity=velocity).sample
            with OpCalls() as ops:
                got = fused(latents, timestep, text, camera, source_velocity=velocity).sample
            _close(got, expected)
            assert ops.calls["recammaster.rms_norm_rotate.default"] == 2 * len(model.blocks)  # queries and keys
    with OpCalls() as ops:  # with gradients, the plain path
        fused(latents, timestep, text, camera).sample.sum().backward()
    assert "recammaster.rms_norm_rotate.default" not in ops.calls
    assert fused.state_dict().keys() == model.state_dict().keys()


def test_the_fused_processor_keeps_the_backend_and_works_under_a_source_cache():
    model, (latents, timestep, text, camera) = _model("frame"), _inputs()
    model.set_attention_backend("_native_math")
    fused = copy.deepcopy(model)
    fused.fuse_norm_rotations()
    assert {block.attn1.processor._attention_backend.value for block in fused.blocks} == {"_native_math"}
    frames = latents.shape[2] // 2
    results = []
    for transformer in (model, fused):
        cache = SourceKVCache.attach(transformer)
        with torch.no_grad():
            with cache.recording("positive"):
                transformer(latents, timestep, text, camera)
            with cache.reusing("positive"):
                results.append(transformer(latents[:, :, :frames], timestep, text, camera, target_only=True).sample)
        cache.detach()
    _close(results[1], results[0])
    assert all(isinstance(block.attn1.processor, SelfAttentionProcessor) for block in fused.blocks)  # back again
    cache = SourceKVCache.attach(model)
    with pytest.raises(ValueError, match="before attaching a source cache"):
        model.fuse_norm_rotations()
    cache.detach()
