"""Attention kernel choice and selective activation checkpointing."""

import contextlib
import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from recammaster.errors import ReCamMasterError
from recammaster.models import attention
from recammaster.models.checkpointing import ATTENTION_KERNELS
from recammaster.models.configs import transformer_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.training.module import ReCamMasterTraining

from .test_transformer import _inputs


class AttentionCalls(TorchDispatchMode):
    """Counts forward attention kernel runs (self and cross) below autograd, where recomputation shows."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, function, types, arguments=(), keywords=None):
        self.calls += function in ATTENTION_KERNELS
        return function(*arguments, **(keywords or {}))


def _random_tiny_model() -> ReCamMasterTransformer3DModel:
    torch.manual_seed(0)
    model = ReCamMasterTransformer3DModel(**transformer_config("tiny"))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1)  # camera layers too, so every weight gets a gradient that matters
    return model.train()


def _gradients(model: ReCamMasterTransformer3DModel, count: bool = True) -> tuple[list[torch.Tensor], int]:
    """Gradients of a loss, and the attention kernels run (``count``: not under torch.compile, which refuses
    dispatch modes)."""
    latents, timestep, context, camera = _inputs()
    counter = AttentionCalls()
    with counter if count else contextlib.nullcontext():
        model(latents, timestep[:1], context, camera).sample.square().mean().backward()
    return [parameter.grad for parameter in model.parameters()], counter.calls


def test_selective_checkpointing_gives_the_same_gradients_and_runs_self_attention_once():
    model = _random_tiny_model()
    blocks = len(model.blocks)
    plain, full, selective = (copy.deepcopy(model) for _ in range(3))
    full.enable_gradient_checkpointing()
    selective.enable_selective_checkpointing()
    expected, plain_calls = _gradients(plain)
    for variant, recomputed in ((full, 2 * blocks), (selective, blocks)):
        gradients, calls = _gradients(variant)
        for got, want in zip(gradients, expected, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)  # the same operations on the same values
        # one forward kernel per attention (self and cross, each block), plus the recomputed ones: both
        # attentions under plain checkpointing, only the cross-attention when the self-attention is kept
        assert calls - plain_calls == recomputed
    assert plain_calls == 2 * blocks


def test_selective_checkpointing_replaces_plain_checkpointing_and_is_off_without_gradients():
    model = _random_tiny_model()
    model.enable_gradient_checkpointing()
    model.enable_selective_checkpointing()
    assert not model.gradient_checkpointing
    assert all(block.selective_checkpointing for block in model.blocks)
    latents, timestep, context, camera = _inputs()
    with torch.no_grad(), AttentionCalls() as counter:
        model(latents, timestep[:1], context, camera)
    assert counter.calls == 2 * len(model.blocks)


def test_training_module_takes_selective_and_refuses_other_words():
    module = ReCamMasterTraining(_random_tiny_model(), gradient_checkpointing="selective")
    assert all(block.selective_checkpointing for block in module.transformer.blocks)
    with pytest.raises(ValueError, match="gradient_checkpointing must be one of"):
        ReCamMasterTraining(_random_tiny_model(), gradient_checkpointing="some")


def test_set_attention_names_the_kernels_and_the_missing_package(monkeypatch):
    model = _random_tiny_model()
    attention.set_attention(model, "_native_flash")
    assert {block.attn1.processor._attention_backend for block in model.blocks} == {"_native_flash"}
    with pytest.raises(ReCamMasterError, match=r"attention must be one of native, .*flash4, got 'fa5'"):
        attention.set_attention(model, "fa5")
    with monkeypatch.context() as patched:  # flash4 without the package: the self-attention only
        patched.setattr(attention, "enable_flash_attention_4", lambda: None)
        attention.set_attention(model, "flash4")
    assert {block.attn1.processor._attention_backend for block in model.blocks} == {"_native_flash"}
    assert {block.attn2.processor._attention_backend for block in model.blocks} == {"native"}
    monkeypatch.setattr(attention.importlib.util, "find_spec", lambda name: None)
    missing = r"the flash-attn-4 package \(pip install 'flash-attn-4\[cu13\]==4.0.0b36', the recammaster\[flash4\]"
    with pytest.raises(ReCamMasterError, match=missing):
        attention.set_attention(model, "flash4")


def test_compiled_blocks_compile_the_selective_checkpoint_with_them():
    model = _random_tiny_model()
    compiled = copy.deepcopy(model)
    model.enable_selective_checkpointing()
    compiled.enable_selective_checkpointing()
    compiled.compile_repeated_blocks(fullgraph=True)
    expected, _ = _gradients(model, count=False)
    try:
        gradients, _ = _gradients(compiled, count=False)
    finally:
        torch._dynamo.reset()  # this block code's compiled variants count towards the recompile limit of others
    for got, want in zip(gradients, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
