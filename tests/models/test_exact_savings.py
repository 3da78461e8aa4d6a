"""Work the exact mode skips: the source velocity, a second run of the first self-attention, the projectors' product.

Each saving must give the numbers of the plain computation."""

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from recammaster.models.checkpointing import ATTENTION_KERNELS
from recammaster.models.configs import transformer_config
from recammaster.models.source_cache import SourceKVCache
from recammaster.models.transformer import ReCamMasterTransformer3DModel

from .test_conditioning import _inputs, _model


class QueryLengths(TorchDispatchMode):
    """The (queries, keys) lengths of every attention kernel run, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[tuple[int, int]] = []

    def __torch_dispatch__(self, function, types, arguments=(), keywords=None):
        if function in ATTENTION_KERNELS:
            self.lengths.append((arguments[0].shape[-2], arguments[1].shape[-2]))
        return function(*arguments, **(keywords or {}))


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


@pytest.mark.parametrize("conditioning", ["frame", "channel", "view"])
def test_the_target_velocity_alone_is_the_whole_outputs_target_half(conditioning):
    model, (latents, timestep, text, camera) = _model(conditioning), _inputs()
    frames = latents.shape[2] // 2
    with torch.no_grad():
        whole = model(latents, timestep, text, camera).sample
        target = model(latents, timestep, text, camera, source_velocity=False).sample
    assert target.shape == (*whole.shape[:2], frames, *whole.shape[3:])
    _close(target, whole[:, :, :frames])


def test_only_the_last_block_drops_the_source_queries():
    model, (latents, timestep, text, camera) = _model("frame", layers=3), _inputs()
    tokens = latents.shape[2] * latents.shape[3] * latents.shape[4] // 4  # 2x2 patches
    with torch.no_grad(), QueryLengths() as whole:
        model(latents, timestep, text, camera)
    with torch.no_grad(), QueryLengths() as target:
        model(latents, timestep, text, camera, source_velocity=False)
    self_attention = [lengths for lengths in target.lengths if lengths[1] == tokens]
    assert [lengths for lengths in whole.lengths if lengths[1] == tokens] == [(tokens, tokens)] * 3
    assert self_attention == [(tokens, tokens)] * 2 + [(tokens // 2, tokens)]
    assert target.lengths[-1] == (tokens // 2, text.shape[1])  # the last cross-attention: the target's queries


def test_with_a_source_cache_every_block_keeps_its_source_tokens():
    model, (latents, timestep, text, camera) = _model("frame"), _inputs()
    with torch.no_grad():
        expected = model(latents, timestep, text, camera).sample[:, :, : latents.shape[2] // 2]
        cache = SourceKVCache.attach(model)
        with cache.recording("caption"), QueryLengths() as lengths:
            recorded = model(latents, timestep, text, camera, source_velocity=False).sample
        cache.detach()
    assert len({queries for queries, keys in lengths.lengths if queries == keys}) == 1  # no block trimmed
    _close(recorded, expected)


def test_training_gradients_are_those_of_the_whole_outputs_target_half():
    torch.manual_seed(0)
    model = ReCamMasterTransformer3DModel(**transformer_config("tiny"))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1)
    trimmed = copy.deepcopy(model)
    trimmed.enable_selective_checkpointing()
    latents, timestep, text, camera = _inputs()
    frames = latents.shape[2] // 2
    model(latents, timestep, text, camera).sample[:, :, :frames].square().mean().backward()
    with QueryLengths() as lengths:
        trimmed(latents, timestep, text, camera, source_velocity=False).sample.square().mean().backward()
    for got, want in zip(trimmed.parameters(), model.parameters(), strict=True):
        _close(got.grad, want.grad)
    blocks, tokens = len(model.blocks), latents.shape[2] * latents.shape[3] * latents.shape[4] // 4
    # the self-attention kernels ran once each (kept, the trimmed last one too); the cross-attentions twice
    assert sum(keys == tokens for _, keys in lengths.lengths) == blocks
    assert sum(keys == text.shape[1] for _, keys in lengths.lengths) == 2 * blocks


def test_folded_projectors_give_the_same_output_and_refuse_to_be_saved(tmp_path):
    model, (latents, timestep, text, camera) = _model("frame"), _inputs()
    with torch.no_grad():
        for block in model.blocks:  # a trained projector, not the identity a fresh block starts with
            block.projector.weight.normal_(0.0, 0.05).add_(torch.eye(block.projector.in_features))
            block.projector.bias.normal_(0.0, 0.1)
        expected = model(latents, timestep, text, camera).sample
        parameters = sum(parameter.numel() for parameter in model.parameters())
        model.fold_projectors()
        model.fold_projectors()  # a second call folds nothing more
        folded = model(latents, timestep, text, camera).sample
    dim = model.config.num_attention_heads * model.config.attention_head_dim
    folded_away = parameters - sum(parameter.numel() for parameter in model.parameters())
    assert folded_away == len(model.blocks) * (dim * dim + dim)  # one (dim x dim) linear a block
    _close(folded, expected)
    with pytest.raises(ValueError, match="folded"):
        model.save_pretrained(tmp_path / "folded")
    assert not (tmp_path / "folded").exists()


@pytest.mark.parametrize("conditioning", ["frame", "channel", "view"])
def test_several_captions_give_each_captions_own_forward_and_share_the_first_self_attention(conditioning):
    model, (latents, timestep, text, camera) = _model(conditioning, layers=3), _inputs()
    negative = torch.randn(text.shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = torch.cat([model(latents, timestep, caption, camera).sample for caption in (text, negative)])
        with QueryLengths() as separate:
            model(latents, timestep, text, camera)
            model(latents, timestep, negative, camera)
        with QueryLengths() as shared:
            both = model(latents, timestep, (text, negative), camera).sample
    _close(both, expected)
    self_attention = [lengths for lengths in separate.lengths if lengths[1] != text.shape[1]]
    assert len([lengths for lengths in shared.lengths if lengths[1] != text.shape[1]]) == len(self_attention) - (
        len(self_attention) // 6  # of 2 captions x 3 blocks (x 2 for the view attention), the first block's once
    )


def test_several_captions_with_the_target_velocity_alone_and_their_refusals():
    model, (latents, timestep, text, camera) = _model("frame"), _inputs()
    negative = torch.randn(text.shape, generator=torch.Generator().manual_seed(9))
    frames = latents.shape[2] // 2
    with torch.no_grad():
        expected = torch.cat(
            [model(latents, timestep, caption, camera).sample[:, :, :frames] for caption in (text, negative)]
        )
        both = model(latents, timestep, [text, negative], camera, source_velocity=False).sample
        _close(both, expected)
        cache = SourceKVCache.attach(model)
        with cache.recording("caption"), pytest.raises(ValueError, match="several captions"):
            model(latents, timestep, (text, negative), camera)


def test_a_block_names_its_parts():
    model, (latents, _, text, camera) = _model("frame"), _inputs()
    block, tokens = model.blocks[0], latents.shape[2] * latents.shape[3] * latents.shape[4] // 4
    with pytest.raises(ValueError, match="part must be one of whole, self_attention, text_and_feedforward, got 'self'"):
        block(torch.zeros(2, tokens, 24), text, torch.zeros(2, 6, 24), model.rope(latents), camera, part="self")


class OpCalls(TorchDispatchMode):
    """How many times each op ran."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def __torch_dispatch__(self, function, types, arguments=(), keywords=None):
        self.calls[str(function)] = self.calls.get(str(function), 0) + 1
        return function(*arguments, **(keywords or {}))


def test_the_fused_feedforward_activation_gives_the_same_output_and_keeps_the_weights():
    model, (latents, timestep, text, camera) = _model("frame"), _inputs()
    with torch.no_grad():
        expected = model(latents, timestep, text, camera).sample
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    model.fuse_feedforward_activations()
    model.fuse_feedforward_activations()  # a second call changes nothing more
    with torch.no_grad(), OpCalls() as ops:
        fused = model(latents, timestep, text, camera).sample
    _close(fused, expected)
    assert ops.calls["recammaster.linear_gelu.default"] == len(model.blocks)
    state = model.state_dict()
    assert state.keys() == weights.keys()
    assert all(torch.equal(state[key], weights[key]) for key in weights)


def test_with_gradients_the_fused_feedforward_runs_the_plain_path():
    model, (latents, timestep, text, camera) = _model("frame"), _inputs()
    fused = copy.deepcopy(model)
    fused.fuse_feedforward_activations()
    model(latents, timestep, text, camera).sample.square().mean().backward()
    with OpCalls() as ops:
        fused(latents, timestep, text, camera).sample.square().mean().backward()
    assert "recammaster.linear_gelu.default" not in ops.calls
    for got, want in zip(fused.parameters(), model.parameters(), strict=True):
        _close(got.grad, want.grad)


def test_the_gpu_savings_compile_whole():
    """Folded projectors and the fused ops, in one graph a block."""
    model, (latents, timestep, text, camera) = _model("frame"), _inputs()
    with torch.no_grad():
        expected = model(latents, timestep, text, camera, source_velocity=False).sample
        model.fold_projectors()
        model.fuse_feedforward_activations()
        model.fuse_norm_rotations()
        model.compile_repeated_blocks(fullgraph=True)
        try:
            compiled = model(latents, timestep, text, camera, source_velocity=False).sample
        finally:
            torch._dynamo.reset()
    _close(compiled, expected)


def test_only_a_tanh_gelu_is_fused():
    model = _model("frame")
    model.blocks[0].ffn.net[0].approximate = "none"
    with pytest.raises(ValueError, match="tanh GELU"):
        model.fuse_feedforward_activations()
