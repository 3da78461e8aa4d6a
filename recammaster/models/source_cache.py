"""Reusing the source tokens' keys and values across sampling steps: ReCamMaster's own redundancy.

Half of ReCamMaster's tokens are the clean source video. They enter every step unchanged; only the timestep
and the target tokens they attend to change, and those slowly from one step to the next. So a full forward
can record, in every block, the self-attention keys and values of the source tokens, and the following steps
can run the transformer on the target tokens alone: their queries attend to their own keys and values and to
the recorded ones. Such a step does half the token work (every linear layer, and half the attention), and in
the step where the keys and values were recorded it gives exactly the full forward's target half (tested);
in later steps it is an approximation whose cost is measured, not assumed (``benchmarks/RESULTS.md``).

Usage (what ``ReCamMasterPipeline(source_reuse=N)`` does: a full step every N steps)::

    cache = SourceKVCache.attach(transformer)
    with cache.recording("caption"):
        full = transformer(torch.cat([target, source], dim=2), t, text, camera).sample  # records
    with cache.reusing("caption"):
        target_only = transformer(target, t, text, camera, target_only=True).sample     # reuses
    cache.detach()

Each guidance branch (caption, negative caption) records its own keys and values: the text changes the
source tokens' states through cross-attention.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from recammaster.models.self_attention import attend, queries_keys_values

MODES = ("off", "record", "reuse")


class SourceKVCache:
    """Which guidance branches have recorded their source keys and values; each block's processor keeps its own
    (so a compiled block sees no per-block index to specialise on, and one graph serves all blocks)."""

    def __init__(self) -> None:
        self.mode = "off"
        self.branch: str = ""
        self.recorded: set[str] = set()
        self.processors: list[SourceCachingAttnProcessor] = []
        self._model: nn.Module | None = None
        self._replaced: list = []

    @classmethod
    def attach(cls, transformer: nn.Module) -> SourceKVCache:
        """Give every block's self-attention a processor that records or reuses through a new cache."""
        if transformer.config.get("conditioning", "frame") != "frame":
            raise ValueError("source keys and values can be reused only with frame conditioning (ReCamMaster's)")
        cache = cls()
        cache._model = transformer
        for block in transformer.blocks:
            cache._replaced.append(block.attn1.processor)
            cache.processors.append(SourceCachingAttnProcessor(cache, block.attn1.processor))
            block.attn1.set_processor(cache.processors[-1])
        transformer.source_cache = cache
        return cache

    def detach(self) -> None:
        """Put the original processors back and drop what was recorded."""
        if self._model is not None:
            for block, processor in zip(self._model.blocks, self._replaced, strict=True):
                block.attn1.set_processor(processor)
            self._model.source_cache = None
        self._model, self._replaced, self.processors = None, [], []
        self.recorded.clear()

    @contextmanager
    def recording(self, branch: str = "") -> Iterator[None]:
        """Forwards inside record the source half's keys and values (the second half of the tokens)."""
        with self._mode("record", branch):
            yield
        self.recorded.add(branch)

    @contextmanager
    def reusing(self, branch: str = "") -> Iterator[None]:
        """Forwards inside take target tokens only (``target_only=True``) and the recorded source keys and values."""
        if branch not in self.recorded:
            raise RuntimeError(f"nothing recorded for branch {branch!r}: run a recording forward first")
        with self._mode("reuse", branch):
            yield

    @contextmanager
    def _mode(self, mode: str, branch: str) -> Iterator[None]:
        self.mode, self.branch = mode, branch
        try:
            yield
        finally:
            self.mode, self.branch = "off", ""


class SourceCachingAttnProcessor:
    """Self-attention that records or reuses the source tokens' keys and values; off, the original processor."""

    def __init__(self, cache: SourceKVCache, original) -> None:
        self.cache, self.original = cache, original
        self.keys: dict[str, torch.Tensor] = {}  # per guidance branch, this block's source keys and values
        self.values: dict[str, torch.Tensor] = {}
        self._attention_backend = getattr(original, "_attention_backend", None)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        cache = self.cache
        if cache.mode == "off":
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        query, key, value = queries_keys_values(attn, hidden_states, rotary_emb)
        if cache.mode == "record":
            half = key.shape[1] // 2  # target tokens first, then the source's
            self.keys[cache.branch], self.values[cache.branch] = key[:, half:].detach(), value[:, half:].detach()
        else:
            key = torch.cat([key, self.keys[cache.branch].to(key.dtype)], dim=1)
            value = torch.cat([value, self.values[cache.branch].to(value.dtype)], dim=1)
        return attend(attn, query, key, value, self._attention_backend)
