"""The text path: umT5-XXL encoder weights, prompt clean-up and prompt embeddings.

ReCamMaster conditions on Wan2.1's text encoder, the encoder half of umT5-XXL (Chung et al. 2023, "UniMax",
T5 v1.1 blocks with a relative position bias per layer). Wan ships it as ``models_t5_umt5-xxl-enc-bf16.pth``
with its own key names (upstream ``wan/modules/t5.py``); transformers' ``UMT5EncoderModel`` computes the same
function, so we load the official file into it through a declarative rename table, checked strictly in both
directions. Prompt handling follows Wan's ``T5EncoderModel.__call__`` and ``HuggingfaceTokenizer``: ftfy and
HTML clean-up, padding to 512 tokens, the mask passed to the encoder, and every position past the real tokens
set to exactly zero (spec: ``shared/spec/upstream-recammaster.md`` §4.4 and §9).
"""

from __future__ import annotations

import copy
import html
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ftfy
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, UMT5Config, UMT5EncoderModel

from recammaster.errors import ModelFilesNotFoundError, WeightsError
from recammaster.models.checkpoints import read_state_dict

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_NEGATIVE_PROMPT",
    "UMT5_KEYS_RENAME_DICT",
    "UMT5_TIED_KEYS",
    "UMT5_XXL_CONFIG",
    "ModelFilesNotFoundError",
    "WeightsError",
    "clean_prompt",
    "encode_prompt",
    "load_tokenizer",
    "load_umt5_encoder",
    "official_to_transformers",
    "transformers_to_official",
    "umt5_config",
]


# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------

# umT5-XXL as Wan2.1 uses it (spec §9). T5 never scales q·k by 1/sqrt(d); transformers' UMT5 knows that itself.
_UMT5_XXL_KWARGS: dict[str, Any] = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,  # 64 heads x 64 = 4096, the attention width equals the model width
    "num_heads": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "relative_attention_num_buckets": 32,  # per layer, not shared (UMT5, unlike T5)
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",  # transformers maps this to "gelu_new", the tanh approximation Wan uses
    "layer_norm_epsilon": 1e-6,
    "dropout_rate": 0.1,  # Wan's value; inactive in eval mode
}
UMT5_XXL_CONFIG = UMT5Config(**_UMT5_XXL_KWARGS)


def umt5_config(**overrides: Any) -> UMT5Config:
    """A fresh config: :data:`UMT5_XXL_CONFIG` with ``overrides`` applied (tiny test models, other sizes)."""
    return UMT5Config(**{**_UMT5_XXL_KWARGS, **overrides})


# ---------------------------------------------------------------------------------------------------------------
# Weight conversion: official Wan layout <-> transformers UMT5EncoderModel
# ---------------------------------------------------------------------------------------------------------------

# Official Wan key -> transformers key; "{i}" is the block index.
UMT5_KEYS_RENAME_DICT: dict[str, str] = {
    "token_embedding.weight": "shared.weight",
    "blocks.{i}.norm1.weight": "encoder.block.{i}.layer.0.layer_norm.weight",
    "blocks.{i}.attn.q.weight": "encoder.block.{i}.layer.0.SelfAttention.q.weight",
    "blocks.{i}.attn.k.weight": "encoder.block.{i}.layer.0.SelfAttention.k.weight",
    "blocks.{i}.attn.v.weight": "encoder.block.{i}.layer.0.SelfAttention.v.weight",
    "blocks.{i}.attn.o.weight": "encoder.block.{i}.layer.0.SelfAttention.o.weight",
    # Both are nn.Embedding(num_buckets, num_heads): same shape, no transpose.
    "blocks.{i}.pos_embedding.embedding.weight": (
        "encoder.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight"
    ),
    "blocks.{i}.norm2.weight": "encoder.block.{i}.layer.1.layer_norm.weight",
    # Wan: fc2(fc1(x) * gelu_tanh(gate(x))); transformers: wo(act(wi_0(x)) * wi_1(x)). The activated branch is
    # Wan's gate, so gate -> wi_0 and fc1 -> wi_1 (swapping them gives a different function, not an error).
    "blocks.{i}.ffn.gate.0.weight": "encoder.block.{i}.layer.1.DenseReluDense.wi_0.weight",
    "blocks.{i}.ffn.fc1.weight": "encoder.block.{i}.layer.1.DenseReluDense.wi_1.weight",
    "blocks.{i}.ffn.fc2.weight": "encoder.block.{i}.layer.1.DenseReluDense.wo.weight",
    "norm.weight": "encoder.final_layer_norm.weight",
}

# transformers ties the encoder's embedding to the top-level one; its state dict lists the same tensor twice.
UMT5_TIED_KEYS: dict[str, str] = {"encoder.embed_tokens.weight": "shared.weight"}

_MAX_KEYS_NAMED = 8


def _name_keys(keys: Sequence[str]) -> str:
    named = ", ".join(keys[:_MAX_KEYS_NAMED])
    return named if len(keys) <= _MAX_KEYS_NAMED else f"{named} (and {len(keys) - _MAX_KEYS_NAMED} more)"


def _block_indices(keys: Sequence[str], templates: Sequence[str]) -> set[int]:
    patterns = [re.compile(re.escape(t).replace(re.escape("{i}"), r"(\d+)") + "$") for t in templates if "{i}" in t]
    return {int(m.group(1)) for key in keys for p in patterns if (m := p.match(key))}


def _expand(table: Mapping[str, str], num_layers: int) -> dict[str, str]:
    expanded: dict[str, str] = {}
    for source, target in table.items():
        if "{i}" in source:
            expanded.update({source.format(i=i): target.format(i=i) for i in range(num_layers)})
        else:
            expanded[source] = target
    return expanded


def _rename(
    state_dict: Mapping[str, torch.Tensor], table: Mapping[str, str], num_layers: int | None, layout: str
) -> dict[str, torch.Tensor]:
    """Rename every key through ``table``; raise naming the keys that are missing or not in it."""
    if num_layers is None:
        indices = _block_indices(list(state_dict), list(table))
        num_layers = max(indices) + 1 if indices else 0
    mapping = _expand(table, num_layers)
    missing = [key for key in mapping if key not in state_dict]
    unknown = [key for key in state_dict if key not in mapping]
    if missing or unknown:
        problems = [f"missing keys: {_name_keys(missing)}"] if missing else []
        problems += [f"unknown keys: {_name_keys(unknown)}"] if unknown else []
        raise WeightsError(f"umT5 weights in the {layout} layout ({num_layers} blocks): {'; '.join(problems)}")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"umT5 weights in the {layout} layout: {key} is a {type(value).__name__}, not a tensor")
    return {mapping[key]: value for key, value in state_dict.items()}


def official_to_transformers(
    state_dict: Mapping[str, torch.Tensor], *, num_layers: int | None = None
) -> dict[str, torch.Tensor]:
    """Official Wan keys -> ``UMT5EncoderModel.state_dict()`` keys, tied embedding listed under both its names.

    Tensors are not copied. ``num_layers`` defaults to what the block keys say (highest index + 1); any key
    outside the table, and any key the table expects but the dict lacks, raises :class:`WeightsError`.
    """
    converted = _rename(state_dict, UMT5_KEYS_RENAME_DICT, num_layers, "official Wan")
    for tied, shared in UMT5_TIED_KEYS.items():
        converted[tied] = converted[shared]
    return converted


def transformers_to_official(
    state_dict: Mapping[str, torch.Tensor], *, num_layers: int | None = None
) -> dict[str, torch.Tensor]:
    """``UMT5EncoderModel`` keys -> official Wan keys (the layout of ``models_t5_umt5-xxl-enc-bf16.pth``).

    The tied embedding may appear under either name or both; if both, the two tensors must be equal.
    """
    state_dict = dict(state_dict)
    for tied, shared in UMT5_TIED_KEYS.items():
        if tied not in state_dict:
            continue
        copy_ = state_dict.pop(tied)
        if shared not in state_dict:
            state_dict[shared] = copy_
        elif copy_ is not state_dict[shared] and not torch.equal(copy_, state_dict[shared]):
            raise WeightsError(
                f"umT5 weights in the transformers layout: {tied} differs from {shared}, which it ties to"
            )
    inverse = {target: source for source, target in UMT5_KEYS_RENAME_DICT.items()}
    return _rename(state_dict, inverse, num_layers, "transformers")


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


def load_umt5_encoder(
    path: str | Path, *, config: UMT5Config | None = None, torch_dtype: torch.dtype = torch.bfloat16
) -> UMT5EncoderModel:
    """Load the umT5 encoder, in eval mode, from the official ``.pth``, a ``.safetensors`` or a transformers folder.

    Files may hold either key layout (official Wan or transformers). ``config`` defaults to
    :data:`UMT5_XXL_CONFIG` and is ignored for folders, which carry their own ``config.json``. Every parameter ends
    up in ``torch_dtype``, as in upstream Wan; transformers would keep the FFN output projections (``wo``) in float32.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelFilesNotFoundError(
                f"{path}: not a transformers UMT5EncoderModel folder (no config.json); pass the folder itself or "
                "the official models_t5_umt5-xxl-enc-bf16.pth from the Wan2.1 download"
            )
        model = UMT5EncoderModel.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
        return model.to(torch_dtype).eval()
    if not path.is_file():
        raise ModelFilesNotFoundError(
            f"{path}: no such file; the umT5 encoder is models_t5_umt5-xxl-enc-bf16.pth in the Wan2.1-T2V-1.3B "
            "download (e.g. `hf download Wan-AI/Wan2.1-T2V-1.3B --local-dir <wan_dir>`)"
        )

    raw = read_state_dict(path)
    if not isinstance(raw, Mapping):
        raise WeightsError(f"{path}: holds a {type(raw).__name__}, not a state dict")
    config = copy.deepcopy(config if config is not None else UMT5_XXL_CONFIG)
    is_transformers = "shared.weight" in raw or any(key.startswith("encoder.") for key in raw)
    try:
        official = transformers_to_official(raw) if is_transformers else dict(raw)
        state_dict = official_to_transformers(official, num_layers=config.num_layers)
    except WeightsError as error:
        raise WeightsError(f"{path}: {error}") from error

    # Build on the meta device and adopt the loaded tensors, so the 5.7B parameters are never allocated twice.
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    expected = model.state_dict()
    inverse = {target: source for source, target in _expand(UMT5_KEYS_RENAME_DICT, config.num_layers).items()}
    for key, tensor in state_dict.items():
        if tensor.shape != expected[key].shape:
            raise WeightsError(
                f"{path}: {inverse.get(key, key)} ({key}) has shape {tuple(tensor.shape)}, "
                f"the config wants {tuple(expected[key].shape)}"
            )
    state_dict = {key: tensor.to(torch_dtype) for key, tensor in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.tie_weights()  # assign=True swapped in separate Parameter objects; share one again
    model.config.dtype = torch_dtype
    return model.eval()


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The umT5 tokenizer from the ``google/umt5-xxl`` folder shipped inside the Wan2.1 download."""
    path = Path(path)
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "spiece.model")
    if not path.is_dir() or not any((path / name).is_file() for name in tokenizer_files):
        raise ModelFilesNotFoundError(
            f"{path}: no umT5 tokenizer here (expected {', '.join(tokenizer_files)}); it is the google/umt5-xxl "
            "folder of the Wan2.1-T2V-1.3B download (e.g. `hf download Wan-AI/Wan2.1-T2V-1.3B --local-dir "
            "<wan_dir>`, then pass <wan_dir>/google/umt5-xxl)"
        )
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def train_tokenizer(corpus: Sequence[str], folder: str | Path, vocab_size: int) -> PreTrainedTokenizerBase:
    """A small umT5-style tokenizer learned from ``corpus`` (SentencePiece unigram; <pad> 0, </s> 1, <unk> 2),
    saved to ``folder`` and loaded back: the text path of small models trained from scratch."""
    import sentencepiece as spm
    from transformers import T5Tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_prefix=str(folder / "spiece"), model_type="unigram",
        vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2,
        bos_id=-1, minloglevel=2,
    )  # fmt: skip
    processor = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.vocab_size())]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(folder)
    return load_tokenizer(folder)


# ---------------------------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------------------------

# Wan's standard negative prompt, which ReCamMaster's inference script passes verbatim (spec §4.4).
DEFAULT_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)


def clean_prompt(text: str) -> str:
    """Wan's prompt clean-up: ftfy, HTML entities unescaped twice (``&amp;amp;`` -> ``&``), whitespace collapsed."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase,
    text_encoder: UMT5EncoderModel,
    prompts: str | Sequence[str],
    *,
    max_length: int = 512,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Prompt embeddings ``(B, max_length, d_model)`` in the encoder's dtype, zero past each prompt's real tokens.

    Prompts are cleaned (:func:`clean_prompt`), tokenised with ``</s>`` appended, padded or truncated to
    ``max_length`` and encoded with the padding mask. Positions at or past the real token count are then set to
    exactly 0, which is what the DiT's cross-attention sees (it takes no mask).
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("prompts: expected a string or a non-empty list of strings, got an empty list")
    if max_length < 1:
        raise ValueError(f"max_length: must be at least 1, got {max_length}")
    device = torch.device(device) if device is not None else text_encoder.device

    tokens = tokenizer(
        [clean_prompt(prompt) for prompt in prompts],
        padding="max_length",
        truncation=True,
        max_length=max_length,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    input_ids = tokens.input_ids.to(device)  # (B, L)
    attention_mask = tokens.attention_mask.to(device)  # (B, L), 1 on real tokens
    seq_lens = attention_mask.gt(0).sum(dim=1)  # (B,)

    with torch.no_grad():
        hidden = text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, D)
    padded = torch.arange(hidden.shape[1], device=device)[None, :] >= seq_lens[:, None]  # (B, L)
    return hidden.masked_fill(padded[..., None], 0.0)
