"""The text path: umT5 weight conversion and loading, prompt clean-up and prompt embeddings.

What is compared:
- the loaded ``UMT5EncoderModel`` (float32, random official-layout weights of a tiny config written to a ``.pth``)
  against the independent reference in ``reference_umt5.py`` run in float64 on the same weights: the full
  ``(B, L, D)`` output, every position including padded ones, with a padding mask, max |error| / max |reference|
  below 1e-5 (observed ~6e-7; ignoring the mask would give ~1);
- the other load paths (``.safetensors`` in either layout, a transformers folder) against the ``.pth`` one,
  exactly;
- official -> transformers -> official against the original dict, exactly (same keys, same tensor objects);
- ``encode_prompt`` against the encoder run directly on the same ids and mask: equal on real tokens, exactly 0 on
  the rest.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import PreTrainedTokenizerBase, UMT5EncoderModel

from recammaster.models.text_encoder import (
    DEFAULT_NEGATIVE_PROMPT,
    UMT5_XXL_CONFIG,
    ModelFilesNotFoundError,
    WeightsError,
    clean_prompt,
    encode_prompt,
    load_tokenizer,
    load_umt5_encoder,
    official_to_transformers,
    transformers_to_official,
    umt5_config,
)
from tests.conftest import CORPUS

from .reference_umt5 import ReferenceConfig, random_official_state_dict, relative_position_bucket, umt5_encoder

TINY = ReferenceConfig(vocab_size=128, dim=32, num_heads=4, head_dim=8, ffn_dim=64, num_layers=2)
# Sequences of 40 tokens reach distance 39: log buckets 8..12 with max distance 128, the clamp at 15 with 16.
CASES = {"max-distance-128": TINY, "max-distance-16": replace(TINY, max_distance=16)}


def tiny_config(reference: ReferenceConfig):
    return umt5_config(
        vocab_size=reference.vocab_size,
        d_model=reference.dim,
        num_heads=reference.num_heads,
        d_kv=reference.head_dim,
        d_ff=reference.ffn_dim,
        num_layers=reference.num_layers,
        relative_attention_num_buckets=reference.num_buckets,
        relative_attention_max_distance=reference.max_distance,
        layer_norm_epsilon=reference.eps,
    )


def write_pth(tmp_path: Path, reference: ReferenceConfig = TINY) -> tuple[Path, dict[str, torch.Tensor]]:
    state_dict = random_official_state_dict(reference)
    path = tmp_path / "models_t5_umt5-tiny-enc.pth"
    torch.save(state_dict, path)
    return path, state_dict


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.double() - expected.double()).abs().max() / expected.double().abs().max()).item()


# --- config and the reference itself ---------------------------------------------------------------------------


def test_xxl_config_matches_spec():
    config = UMT5_XXL_CONFIG
    assert (config.vocab_size, config.d_model, config.d_kv, config.num_heads) == (256384, 4096, 64, 64)
    assert (config.d_ff, config.num_layers, config.layer_norm_epsilon) == (10240, 24, 1e-6)
    assert (config.relative_attention_num_buckets, config.relative_attention_max_distance) == (32, 128)
    assert (config.is_gated_act, config.dense_act_fn) == (True, "gelu_new")  # gelu_new = tanh approximation
    with torch.device("meta"):
        model = UMT5EncoderModel(UMT5_XXL_CONFIG)
    assert sum(p.numel() for p in model.parameters()) == 5_680_910_336  # spec §9


@pytest.mark.parametrize(
    ("rel", "bucket"),
    [(0, 0), (1, 17), (-1, 1), (7, 23), (-7, 7), (8, 24), (-8, 8), (15, 25), (16, 26), (-16, 10), (32, 28),
     (-64, 14), (127, 31), (128, 31), (-1000, 15)],
)  # fmt: skip
def test_reference_buckets_follow_spec(rel: int, bucket: int):
    # 16 + 8 + floor(ln(n / 8) / ln(128 / 8) * 8), clamped to 15 within each direction
    assert relative_position_bucket(rel, 32, 128) == bucket


def test_reference_buckets_clamp_at_max_distance():
    assert [relative_position_bucket(n, 32, 16) for n in (8, 9, 12, 14, 15, 16, 39)] == [24, 25, 28, 30, 31, 31, 31]


# --- the encoder against the reference -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_encoder_matches_reference(tmp_path: Path, name: str):
    reference = CASES[name]
    path, state_dict = write_pth(tmp_path, reference)
    model = load_umt5_encoder(path, config=tiny_config(reference), torch_dtype=torch.float32)

    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, reference.vocab_size, (3, 40), generator=generator)
    mask = (torch.arange(40)[None, :] < torch.tensor([40, 23, 9])[:, None]).long()
    input_ids = input_ids.masked_fill(mask == 0, 0)
    with torch.no_grad():
        actual = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        unmasked = model(input_ids=input_ids[:, :20]).last_hidden_state
    weights64 = {key: value.double() for key, value in state_dict.items()}
    expected = umt5_encoder(weights64, input_ids, mask, reference)
    expected_unmasked = umt5_encoder(weights64, input_ids[:, :20], torch.ones(3, 20, dtype=torch.long), reference)

    assert actual.dtype == torch.float32
    assert actual.shape == expected.shape == (3, 40, reference.dim)
    assert relative_error(actual, expected) < 1e-5
    assert relative_error(unmasked, expected_unmasked) < 1e-5
    with torch.no_grad():  # the mask is doing something: without it the padded batch rows come out different
        assert relative_error(model(input_ids=input_ids).last_hidden_state, expected) > 1e-2


def test_fc1_and_gate_are_not_interchangeable(tmp_path: Path):
    # Guards the table's gate -> wi_0 choice: with the two swapped the reference must disagree.
    path, state_dict = write_pth(tmp_path)
    model = load_umt5_encoder(path, config=tiny_config(TINY), torch_dtype=torch.float32)
    swapped = {key: value.double() for key, value in state_dict.items()}
    for i in range(TINY.num_layers):
        gate, fc1 = f"blocks.{i}.ffn.gate.0.weight", f"blocks.{i}.ffn.fc1.weight"
        swapped[gate], swapped[fc1] = swapped[fc1], swapped[gate]
    input_ids = torch.arange(3, 33)[None]
    with torch.no_grad():
        actual = model(input_ids=input_ids).last_hidden_state
    assert relative_error(actual, umt5_encoder(swapped, input_ids, torch.ones_like(input_ids), TINY)) > 1e-2


# --- loading ---------------------------------------------------------------------------------------------------


def test_load_paths_agree(tmp_path: Path):
    path, state_dict = write_pth(tmp_path)
    config = tiny_config(TINY)
    from_pth = load_umt5_encoder(path, config=config, torch_dtype=torch.float32)

    save_file(state_dict, tmp_path / "official.safetensors")
    transformers_layout = official_to_transformers(state_dict)
    del transformers_layout["encoder.embed_tokens.weight"]  # safetensors refuses shared tensors; the tie restores it
    save_file(transformers_layout, tmp_path / "transformers.safetensors")
    from_pth.save_pretrained(tmp_path / "folder")
    loaded = [
        load_umt5_encoder(tmp_path / "official.safetensors", config=config, torch_dtype=torch.float32),
        load_umt5_encoder(tmp_path / "transformers.safetensors", config=config, torch_dtype=torch.float32),
        load_umt5_encoder(tmp_path / "folder", torch_dtype=torch.float32),
    ]

    input_ids = torch.arange(3, 35)[None]
    with torch.no_grad():
        expected = from_pth(input_ids=input_ids).last_hidden_state
        for model in loaded:
            assert torch.equal(model(input_ids=input_ids).last_hidden_state, expected)
            assert model.shared.weight is model.encoder.embed_tokens.weight
            assert not model.training


def test_load_casts_every_parameter_and_ties_embeddings(tmp_path: Path):
    path, _ = write_pth(tmp_path)
    model = load_umt5_encoder(path, config=tiny_config(TINY))  # bfloat16 by default
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # wo too, as in upstream Wan
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert model.shared.weight is model.encoder.embed_tokens.weight
    model.save_pretrained(tmp_path / "folder")
    reloaded = load_umt5_encoder(tmp_path / "folder")
    assert {p.dtype for p in reloaded.parameters()} == {torch.bfloat16}


def test_load_names_mis_shaped_key(tmp_path: Path):
    path, _ = write_pth(tmp_path)
    with pytest.raises(WeightsError) as error:
        load_umt5_encoder(path, config=tiny_config(replace(TINY, ffn_dim=48)))
    assert str(error.value) == (
        f"{path}: blocks.0.ffn.gate.0.weight (encoder.block.0.layer.1.DenseReluDense.wi_0.weight) has shape "
        "(64, 32), the config wants (48, 32)"
    )


def test_load_names_blocks_the_config_wants(tmp_path: Path):
    path, _ = write_pth(tmp_path)
    with pytest.raises(WeightsError) as error:
        load_umt5_encoder(path, config=tiny_config(replace(TINY, num_layers=3)))
    assert str(error.value) == (
        f"{path}: umT5 weights in the official Wan layout (3 blocks): missing keys: blocks.2.norm1.weight, "
        "blocks.2.attn.q.weight, blocks.2.attn.k.weight, blocks.2.attn.v.weight, blocks.2.attn.o.weight, "
        "blocks.2.pos_embedding.embedding.weight, blocks.2.norm2.weight, blocks.2.ffn.gate.0.weight (and 2 more)"
    )


def test_missing_files_say_what_to_download(tmp_path: Path):
    with pytest.raises(ModelFilesNotFoundError) as error:
        load_umt5_encoder(tmp_path / "absent.pth")
    assert str(error.value) == (
        f"{tmp_path / 'absent.pth'}: no such file; the umT5 encoder is models_t5_umt5-xxl-enc-bf16.pth in the "
        "Wan2.1-T2V-1.3B download (e.g. `hf download Wan-AI/Wan2.1-T2V-1.3B --local-dir <wan_dir>`)"
    )
    with pytest.raises(ModelFilesNotFoundError) as error:
        load_tokenizer(tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: no umT5 tokenizer here (expected tokenizer.json, tokenizer_config.json, spiece.model); it is "
        "the google/umt5-xxl folder of the Wan2.1-T2V-1.3B download (e.g. `hf download Wan-AI/Wan2.1-T2V-1.3B "
        "--local-dir <wan_dir>`, then pass <wan_dir>/google/umt5-xxl)"
    )


# --- conversion tables -----------------------------------------------------------------------------------------


def test_round_trip_is_exact():
    state_dict = random_official_state_dict(TINY)
    converted = official_to_transformers(state_dict)
    with torch.device("meta"):
        model_keys = set(UMT5EncoderModel(tiny_config(TINY)).state_dict())
    assert set(converted) == model_keys
    assert converted["encoder.embed_tokens.weight"] is converted["shared.weight"]

    back = transformers_to_official(converted)
    assert list(back) == list(state_dict)
    assert all(back[key] is state_dict[key] for key in state_dict)  # no copies, and so bit-exact


def test_missing_key_is_named():
    state_dict = random_official_state_dict(TINY)
    del state_dict["blocks.1.attn.k.weight"]
    with pytest.raises(WeightsError) as error:
        official_to_transformers(state_dict)
    assert str(error.value) == (
        "umT5 weights in the official Wan layout (2 blocks): missing keys: blocks.1.attn.k.weight"
    )


def test_unknown_key_is_named():
    state_dict = random_official_state_dict(TINY)
    state_dict["blocks.0.attn.q.bias"] = torch.zeros(32)
    with pytest.raises(WeightsError) as error:
        official_to_transformers(state_dict)
    assert str(error.value) == "umT5 weights in the official Wan layout (2 blocks): unknown keys: blocks.0.attn.q.bias"


def test_transformers_side_is_strict_too():
    converted = official_to_transformers(random_official_state_dict(TINY))
    converted["lm_head.weight"] = converted.pop("encoder.final_layer_norm.weight")
    with pytest.raises(WeightsError) as error:
        transformers_to_official(converted)
    assert str(error.value) == (
        "umT5 weights in the transformers layout (2 blocks): missing keys: encoder.final_layer_norm.weight; "
        "unknown keys: lm_head.weight"
    )


def test_tied_embedding_copies_must_agree():
    converted = official_to_transformers(random_official_state_dict(TINY))
    converted["encoder.embed_tokens.weight"] = converted["shared.weight"] + 1
    with pytest.raises(WeightsError) as error:
        transformers_to_official(converted)
    assert str(error.value) == (
        "umT5 weights in the transformers layout: encoder.embed_tokens.weight differs from shared.weight, "
        "which it ties to"
    )
    converted["encoder.embed_tokens.weight"] = converted["shared.weight"].clone()  # equal but not shared: fine
    del converted["shared.weight"]  # either name alone will do
    assert set(transformers_to_official(converted)) == set(random_official_state_dict(TINY))


# --- prompts ---------------------------------------------------------------------------------------------------

# spec §4.4, character for character
SPEC_NEGATIVE_PROMPT = "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"  # noqa: E501


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> UMT5EncoderModel:
    path, _ = write_pth(tmp_path_factory.mktemp("umt5"))
    return load_umt5_encoder(path, config=tiny_config(TINY), torch_dtype=torch.float32)


def test_encode_prompt_zeroes_padding_exactly(tokenizer: PreTrainedTokenizerBase, tiny_encoder: UMT5EncoderModel):
    prompts = ["A red car drives along  the road.", "  一只猫 ", ""]
    embeds = encode_prompt(tokenizer, tiny_encoder, prompts, max_length=48)

    tokens = tokenizer([clean_prompt(p) for p in prompts], padding="max_length", max_length=48, return_tensors="pt")
    lengths = tokens.attention_mask.sum(dim=1).tolist()
    assert 20 <= lengths[0] < 48
    assert lengths[1] > 1
    assert lengths[2] == 1  # the empty prompt is just </s>
    with torch.no_grad():
        direct = tiny_encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    assert embeds.shape == (3, 48, TINY.dim)
    assert embeds.dtype == torch.float32
    for row, length in enumerate(lengths):
        assert torch.equal(embeds[row, :length], direct[row, :length])
        assert torch.all(embeds[row, :length].abs().sum(dim=-1) > 0)
        assert torch.equal(embeds[row, length:], torch.zeros(48 - length, TINY.dim))


def test_encode_prompt_truncates_and_takes_a_string(tokenizer: PreTrainedTokenizerBase, tiny_encoder: UMT5EncoderModel):
    prompt = " ".join(CORPUS[:3])
    embeds = encode_prompt(tokenizer, tiny_encoder, prompt, max_length=24)
    tokens = tokenizer(clean_prompt(prompt), max_length=24, truncation=True, return_tensors="pt")
    assert tokens.input_ids.shape == (1, 24)
    assert tokens.input_ids[0, -1].item() == tokenizer.eos_token_id
    with torch.no_grad():
        direct = tiny_encoder(input_ids=tokens.input_ids).last_hidden_state
    assert embeds.shape == (1, 24, TINY.dim)
    assert torch.equal(embeds, direct)  # nothing padded, nothing zeroed


def test_encode_prompt_refuses_bad_arguments(tokenizer: PreTrainedTokenizerBase, tiny_encoder: UMT5EncoderModel):
    with pytest.raises(ValueError, match=r"^prompts: expected a string or a non-empty list of strings"):
        encode_prompt(tokenizer, tiny_encoder, [])
    with pytest.raises(ValueError, match=r"^max_length: must be at least 1, got 0$"):
        encode_prompt(tokenizer, tiny_encoder, "a", max_length=0)


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("Tom &amp;amp; Jerry", "Tom & Jerry"),  # unescaped twice
        ("&amp;lt;b&amp;gt;bold", "<b>bold"),
        ("The Mona Lisa doesnâ€™t have eyebrows.", "The Mona Lisa doesn't have eyebrows."),  # mojibake, via ftfy
        ("cafÃ© au lait", "café au lait"),
        ("  a  red\n\tcar \u3000 drives  ", "a red car drives"),  # U+3000 is narrowed to a space
        ("", ""),
    ],
)
def test_clean_prompt(text: str, cleaned: str):
    assert clean_prompt(text) == cleaned


def test_default_negative_prompt_is_wans():
    assert DEFAULT_NEGATIVE_PROMPT == SPEC_NEGATIVE_PROMPT


def test_clean_prompt_narrows_full_width_punctuation():
    # ftfy's default fix_character_width turns the full-width commas of Wan's own negative prompt into ASCII ones,
    # upstream as here: the tokenizer sees ",".
    cleaned = clean_prompt(DEFAULT_NEGATIVE_PROMPT)
    assert cleaned == DEFAULT_NEGATIVE_PROMPT.replace("，", ",")
    assert cleaned.count(",") == 27
