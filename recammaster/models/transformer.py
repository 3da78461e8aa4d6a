"""The ReCamMaster transformer: Wan2.1's video DiT with a camera encoder and projector in every block.

ReCamMaster (Bai et al., ICCV 2025; spec ``upstream-recammaster.md`` §2) feeds the DiT the noisy target
latents and the clean source latents concatenated on the frame axis (target first), one timestep for
all tokens, and per block:

    y = LN1(x) * (1 + scale_msa) + shift_msa + cam_encoder(camera)[frame of the token]
    x = x + gate_msa * projector(SelfAttention(y))

The camera of latent frame j conditions target frame j and source frame j alike. ``cam_encoder`` starts
at zero and ``projector`` at the identity, so a fresh model is exactly Wan2.1. Everything else is
diffusers' ``WanTransformer3DModel``, whose modules, attention backends and offloading we reuse.

``conditioning`` selects how the source video enters, for the paper's Table 3 comparison (the input and
output layouts stay the frame-concatenated ones, so training and sampling code serve all three):

- ``frame`` (ReCamMaster): one token sequence of both videos, 2 F frames;
- ``channel``: each target frame's latents and the source frame's at the same time are stacked on the
  channel axis before patch embedding, F frames of tokens; the source frames' output velocity is 0;
- ``view``: each video is a sequence of its own, F frames at the same positions, with self-attention within
  a video, and a view attention per block (:class:`ViewAttention`) joins the two videos' tokens of each frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel, WanTransformerBlock
from torch import nn

from recammaster.models.checkpointing import checkpoint_keeping_attention
from recammaster.models.feedforward import fuse_activation
from recammaster.models.self_attention import SelfAttentionProcessor, attend, queries_keys_values

CAMERA_CONDITION_SIZE = 12  # the top 3x4 of a relative camera-to-world pose, row-major
CONDITIONINGS = ("frame", "channel", "view")  # how the source video enters: see the module docstring
VIEWS = 2  # target and source
BLOCK_PARTS = ("whole", "self_attention", "text_and_feedforward")  # what a block call computes


class CameraTokens(nn.Module):
    """The camera condition of every token: (B, Fc, 12) -> (B, frames x tokens per frame, 12).

    Latent frame j of the target and frame Fc + j of the source both get camera j. A module of its own
    so that context parallelism can split its output along the sequence like the tokens themselves.
    """

    def forward(self, camera: torch.Tensor, num_frames: int, tokens_per_frame: int) -> torch.Tensor:
        camera_frames = camera.shape[1]
        if num_frames % camera_frames:
            raise ValueError(f"{num_frames} latent frames cannot be tiled by {camera_frames} camera frames")
        per_frame = camera.repeat(1, num_frames // camera_frames, 1)  # (B, F, 12)
        return per_frame.repeat_interleave(tokens_per_frame, dim=1)


class Float64Timesteps(nn.Module):
    """Wan's sinusoidal timestep embedding, [cos(t f_k), sin(t f_k)] with f_k = 10000^(-k / half).

    Computed in float64 as upstream does (spec §1.3): in float32 the phase of t ~ 1000 is off by ~1e-4.
    """

    def __init__(self, num_channels: int, max_period: float = 10000.0) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.max_period = max_period

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        dtype = torch.float32 if timesteps.device.type == "mps" else torch.float64
        half = self.num_channels // 2
        frequencies = torch.pow(
            torch.tensor(self.max_period, dtype=dtype, device=timesteps.device),
            -torch.arange(half, dtype=dtype, device=timesteps.device) / half,
        )
        phase = timesteps.to(dtype)[:, None] * frequencies[None]
        return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1).float()


class ViewAttention(nn.Module):
    """Attention among the tokens of one latent frame of both videos (``view`` conditioning only).

    Each token attends to every token of the same frame in the target and the source, told apart by a
    learned view embedding; the output projection starts at zero, so a fresh block sees each video alone.
    """

    def __init__(self, dim: int, num_heads: int, eps: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.view_embedding = nn.Parameter(torch.zeros(VIEWS, dim))
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, hidden_states: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
        """(VIEWS B, F x tokens_per_frame, D), views innermost in the batch -> the residual to add."""
        views_batch, length, dim = hidden_states.shape
        frames = length // tokens_per_frame
        x = self.norm(hidden_states.float()).type_as(hidden_states)
        x = x.unflatten(0, (-1, VIEWS)) + self.view_embedding.to(x.dtype)[None, :, None]  # (B, V, L, D)
        x = x.unflatten(2, (frames, tokens_per_frame)).permute(0, 2, 1, 3, 4)  # (B, F, V, T, D)
        x = x.flatten(0, 1).flatten(1, 2)  # (B F, V T, D): one sequence per frame
        q, k, v = self.to_qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)  # (B F, V T, D)
        x = self.to_out(x).unflatten(0, (-1, frames)).unflatten(2, (VIEWS, tokens_per_frame))  # (B, F, V, T, D)
        return x.permute(0, 2, 1, 3, 4).reshape(views_batch, length, dim)


class ReCamMasterTransformerBlock(WanTransformerBlock):
    """A Wan block whose self-attention also sees the target camera (``cam_encoder``, ``projector``);
    with ``view_attention``, a :class:`ViewAttention` follows the self-attention."""

    def __init__(self, dim: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(dim, *args, **kwargs)
        self.cam_encoder = nn.Linear(CAMERA_CONDITION_SIZE, dim)
        self.projector = nn.Linear(dim, dim)
        self.view_attention: ViewAttention | None = None  # set by the model for ``view`` conditioning
        self.selective_checkpointing = False  # set by the model's enable_selective_checkpointing
        self.reset_camera_layers()

    @torch.no_grad()
    def reset_camera_layers(self) -> None:
        """Zero camera encoder and identity projector: the block then computes exactly Wan2.1's block."""
        nn.init.zeros_(self.cam_encoder.weight)
        nn.init.zeros_(self.cam_encoder.bias)
        self.projector.weight.copy_(torch.eye(self.projector.in_features))
        nn.init.zeros_(self.projector.bias)

    @torch.no_grad()
    def fold_projector(self) -> None:
        """Fold the projector into the self-attention's output projection, one (dim x dim) product less a token:
        projector(W x + b) = (P W) x + (P b + p), the folded weights computed in float32 and stored in the block's
        dtype (bf16: one rounding of the product instead of one of the intermediate output). For inference."""
        output, projector = self.attn1.to_out[0], self.projector
        folded = nn.Linear(output.in_features, projector.out_features, device=output.weight.device,
                           dtype=output.weight.dtype)  # fmt: skip
        folded.weight.copy_(projector.weight.float() @ output.weight.float())
        folded.bias.copy_(projector.weight.float() @ output.bias.float() + projector.bias.float())
        self.attn1.to_out[0], self.projector = folded, nn.Identity()

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        camera_tokens: torch.Tensor,
        tokens_per_frame: int | None = None,
        query_tokens: int | None = None,
        part: str = "whole",
    ) -> torch.Tensor:
        """``camera_tokens`` (B, L, 12): each token's camera, from :class:`CameraTokens`; ``tokens_per_frame``:
        for the view attention; ``query_tokens`` n: the output of the first n tokens alone (they attend to all);
        ``part``: one of :data:`BLOCK_PARTS`, the self-attention's residual step alone or the rest of the block
        after it (so that captions can share the first, which does not see the text). With
        ``selective_checkpointing`` and gradients on, :meth:`compute` runs in a checkpoint that keeps the
        self-attention's output (:mod:`recammaster.models.checkpointing`): opened here rather than around the
        block, so that a compiled block compiles the checkpoint with it. (The named arguments stay: context
        parallelism finds the tensors it splits by name.)"""
        if part not in BLOCK_PARTS:
            raise ValueError(f"part must be one of {', '.join(BLOCK_PARTS)}, got {part!r}")
        arguments = (hidden_states, encoder_hidden_states, temb, rotary_emb, camera_tokens, tokens_per_frame,
                     query_tokens, part)  # fmt: skip
        if self.selective_checkpointing and torch.is_grad_enabled():
            return checkpoint_keeping_attention(self.compute, *arguments)
        return self.compute(*arguments)

    def compute(self, *arguments: Any) -> torch.Tensor:
        """The block's computation, on :meth:`forward`'s arguments in their order."""
        hidden_states, encoder_hidden_states, temb, rotary_emb, camera_tokens, tokens_per_frame, query_tokens, part = (
            arguments
        )
        modulation = (self.scale_shift_table + temb.float()).chunk(6, dim=1)
        if part != "text_and_feedforward":
            hidden_states = self.self_attention_step(hidden_states, modulation[:3], rotary_emb, camera_tokens,
                                                     tokens_per_frame, query_tokens)  # fmt: skip
        if part == "self_attention":
            return hidden_states
        return self.text_and_feedforward_steps(hidden_states, encoder_hidden_states, modulation[3:])

    def self_attention_step(
        self,
        hidden_states: torch.Tensor,
        modulation: tuple[torch.Tensor, ...],
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        camera_tokens: torch.Tensor,
        tokens_per_frame: int | None,
        query_tokens: int | None,
    ) -> torch.Tensor:
        """Self-attention, with the camera added to its input and the projector on its output; the view attention.
        ``modulation``: shift, scale and gate."""
        shift, scale, gate = modulation
        norm_hidden_states = (self.norm1(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        norm_hidden_states = norm_hidden_states + self.cam_encoder(camera_tokens.to(hidden_states.dtype))
        if query_tokens is None:
            attn_output = self.attn1(norm_hidden_states, None, None, rotary_emb)
        else:  # the first tokens' queries against every token's keys and values; the rest of the block on them
            qkv = queries_keys_values(self.attn1, norm_hidden_states, rotary_emb, query_tokens)
            attn_output = attend(self.attn1, *qkv, self.attn1.processor._attention_backend)
            hidden_states = hidden_states[:, :query_tokens]
        hidden_states = (hidden_states.float() + self.projector(attn_output) * gate).type_as(hidden_states)
        if self.view_attention is not None:
            hidden_states = hidden_states + self.view_attention(hidden_states, tokens_per_frame)
        return hidden_states

    def text_and_feedforward_steps(
        self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor, modulation: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """Cross-attention to the text (not gated, not modulated), then the feed-forward (``modulation``: shift,
        scale and gate)."""
        shift, scale, gate = modulation
        norm_hidden_states = self.norm2(hidden_states.float()).type_as(hidden_states)
        hidden_states = hidden_states + self.attn2(norm_hidden_states, encoder_hidden_states, None, None)
        norm_hidden_states = (self.norm3(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        ff_output = self.ffn(norm_hidden_states)
        return (hidden_states.float() + ff_output.float() * gate).type_as(hidden_states)


class ReCamMasterTransformer3DModel(WanTransformer3DModel):
    r"""Wan2.1's video DiT with ReCamMaster's per-block camera encoder and projector.

    Args:
        patch_size: (t, h, w) patch of the Conv3d patch embedding.
        num_attention_heads: attention heads (12 for 1.3B, 40 for 14B).
        attention_head_dim: channels per head (128 in Wan).
        in_channels, out_channels: latent channels (16 for the Wan VAE).
        text_dim: channels of the text encoder output (4096 for umT5-XXL).
        freq_dim: channels of the sinusoidal timestep embedding.
        ffn_dim: hidden width of the feed-forward layers.
        num_layers: transformer blocks.
        cross_attn_norm: affine LayerNorm before cross-attention (Wan: True).
        qk_norm: query/key normalisation (Wan: RMSNorm across all heads).
        eps: epsilon of every norm.
        image_dim, added_kv_proj_dim, pos_embed_seq_len: image conditioning of Wan I2V (unused here).
        rope_max_seq_len: positions precomputed for the 3-D rotary embedding per axis.
    """

    _no_split_modules = ["ReCamMasterTransformerBlock"]
    _repeated_blocks = ["ReCamMasterTransformerBlock"]
    # Context parallelism (``enable_parallelism``): tokens, their rotary angles and their cameras are split
    # along the sequence before the first block and gathered after the head; self-attention exchanges
    # keys and values (Ulysses or ring); cross-attention sees the whole caption on every rank.
    _cp_plan = {
        "rope": {
            0: ContextParallelInput(split_dim=1, expected_dims=4, split_output=True),
            1: ContextParallelInput(split_dim=1, expected_dims=4, split_output=True),
        },
        "camera_tokens": {0: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True)},
        "blocks.0": {"hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False)},
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
        conditioning: str = "frame",
    ) -> None:
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {', '.join(CONDITIONINGS)}, got {conditioning!r}")
        super().__init__(
            patch_size, num_attention_heads, attention_head_dim, in_channels, out_channels, text_dim, freq_dim,
            ffn_dim, num_layers, cross_attn_norm, qk_norm, eps, image_dim, added_kv_proj_dim, rope_max_seq_len,
            pos_embed_seq_len,
        )  # fmt: skip
        inner_dim = num_attention_heads * attention_head_dim
        self.blocks = nn.ModuleList(
            [
                ReCamMasterTransformerBlock(
                    inner_dim, ffn_dim, num_attention_heads, qk_norm, cross_attn_norm, eps, added_kv_proj_dim
                )
                for _ in range(num_layers)
            ]
        )
        self.condition_embedder.timesteps_proj = Float64Timesteps(freq_dim)
        self.camera_tokens = CameraTokens()
        self.source_cache = None  # a models.source_cache.SourceKVCache, while one is attached
        if conditioning == "channel":  # target and source latents side by side on the channel axis
            self.patch_embedding = nn.Conv3d(2 * in_channels, inner_dim, kernel_size=patch_size, stride=patch_size)
        elif conditioning == "view":
            for block in self.blocks:
                block.view_attention = ViewAttention(inner_dim, num_attention_heads, eps)

    def reset_camera_layers(self) -> None:
        """Re-initialise every camera encoder and projector (as upstream does when it attaches them)."""
        for block in self.blocks:
            block.reset_camera_layers()

    def fold_projectors(self) -> None:
        """Fold every block's projector into its self-attention's output projection (:meth:`ReCamMasterTransformerBlock.
        fold_projector`): for inference, about 1% of a forward at 1.3B (benchmarks/RESULTS.md). The weights are then
        no longer the checkpoint's, so a folded model refuses to be saved."""
        for block in self.blocks:
            if not isinstance(block.projector, nn.Identity):
                block.fold_projector()

    def fuse_feedforward_activations(self) -> None:
        """Run each feed-forward's GELU in its first product's epilogue when no gradient is asked for
        (:mod:`recammaster.models.feedforward`): for inference on a GPU. The weights and their keys stay."""
        for block in self.blocks:
            fuse_activation(block.ffn)

    def fuse_norm_rotations(self) -> None:
        """Normalise and rotate each self-attention's queries and keys in one op when no gradient is asked for
        (:mod:`recammaster.models.norm_rotation`, one kernel on a GPU): for inference. The weights stay."""
        if self.source_cache is not None:
            raise ValueError("fuse the norm rotations before attaching a source cache, which wraps the processors")
        for block in self.blocks:
            if not isinstance(block.attn1.processor, SelfAttentionProcessor):
                block.attn1.set_processor(SelfAttentionProcessor(block.attn1.processor))
            block.attn1.fused_norm_rotation = True

    @property
    def sequence_split(self) -> bool:
        """Whether context parallelism splits the token sequence over GPUs (``enable_parallelism``)."""
        return self._parallel_config is not None

    @property
    def projectors_folded(self) -> bool:
        """Whether :meth:`fold_projectors` has run."""
        return isinstance(self.blocks[0].projector, nn.Identity)

    def save_pretrained(self, *arguments: Any, **keywords: Any) -> None:
        if self.projectors_folded:
            raise ValueError("this transformer's projectors are folded into its attention (fold_projectors); its "
                             "weights are no longer the checkpoint's: save the model before folding")  # fmt: skip
        super().save_pretrained(*arguments, **keywords)

    def enable_selective_checkpointing(self) -> None:
        """Recompute each block in the backward pass except its self-attention, whose output is kept
        (:mod:`recammaster.models.checkpointing`); replaces plain gradient checkpointing."""
        if self.gradient_checkpointing:
            self.disable_gradient_checkpointing()
        for block in self.blocks:
            block.selective_checkpointing = True

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor | Sequence[torch.Tensor],
        camera: torch.Tensor,
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        target_only: bool = False,
        source_velocity: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        """Predict the flow velocity of every latent frame.

        Args:
            hidden_states: (B, C, F, H, W) latents; for ReCamMaster the noisy target and the clean source
                concatenated on the frame axis, F = 2 Fc.
            timestep: (B,) timesteps on the 0-1000 scale, shared by all tokens.
            encoder_hidden_states: (B, L, text_dim) text embeddings; or several captions', (B, L_i, text_dim) each,
                for one video: the output then holds each caption's velocity in turn on the batch axis, and the
                first block's self-attention step, which does not see the text, runs once for all (what a guided
                sampling step's two forwards share). Not with a source cache or with the sequence split over GPUs.
            camera: (B, Fc, 12) target camera per latent frame (see ``recammaster.cameras``).
            target_only: ``hidden_states`` hold the target half alone (F = Fc); the source half's keys and values
                come from the attached :class:`~recammaster.models.source_cache.SourceKVCache`, reusing.
            source_velocity: False: the output holds the target frames alone (Fc), which is all that sampling and
                the training loss read. With frame conditioning the last block then computes the target tokens
                alone (their queries against every token's keys and values; the source half of its output would
                only be thrown away): the same target velocity for 1/60 less work at 30 blocks. Not while a source
                cache is attached (it records in every block) or the sequence is split over GPUs.
        """
        if attention_kwargs:
            raise ValueError("attention_kwargs are not supported by ReCamMasterTransformer3DModel")
        if target_only and (self.source_cache is None or self.source_cache.mode != "reuse"):
            raise ValueError("target_only needs an attached SourceKVCache inside cache.reusing()")
        if camera.ndim != 3 or camera.shape[0] != len(hidden_states) or camera.shape[2] != CAMERA_CONDITION_SIZE:
            raise ValueError(f"camera must have shape ({len(hidden_states)}, frames, 12), got {tuple(camera.shape)}")
        captions = (
            list(encoder_hidden_states) if isinstance(encoder_hidden_states, list | tuple) else [encoder_hidden_states]
        )
        if len(captions) > 1 and (self.source_cache is not None or self.sequence_split):
            raise ValueError("several captions in one forward do not work with a source cache or split sequences")
        conditioning = self.config.get("conditioning", "frame")  # folders saved before the option lack it
        if conditioning == "channel":  # (B, C, 2F, H, W) -> (B, 2C, F, H, W)
            hidden_states = torch.cat(hidden_states.chunk(VIEWS, dim=2), dim=1)
        elif conditioning == "view":  # (B, C, 2F, H, W) -> (B V, C, F, H, W), each video a sequence
            hidden_states = hidden_states.unflatten(2, (VIEWS, -1)).transpose(1, 2).flatten(0, 1)
            timestep = timestep.repeat_interleave(VIEWS, dim=0)
            captions = [caption.repeat_interleave(VIEWS, dim=0) for caption in captions]
            camera = camera.repeat_interleave(VIEWS, dim=0)
        batch_size, _, num_frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        frames, rows, columns = num_frames // p_t, height // p_h, width // p_w

        # 1. Patch and position embedding
        if target_only:  # the target's positions in the whole sequence, which the recorded source continues
            whole = torch.empty((batch_size, 1, 2 * num_frames, height, width), device="meta")
            rotary_emb = tuple(angles[:, : frames * rows * columns] for angles in self.rope(whole))
        else:
            rotary_emb = self.rope(hidden_states)
        hidden_states = self.patch_embedding(hidden_states)  # (B, C, F, H, W) -> (B, D, F, H/2, W/2)
        hidden_states = hidden_states.flatten(2).transpose(1, 2).contiguous()  # -> (B, L, D)

        # 2. Timestep conditioning
        temb, timestep_proj, first_text, _ = self.condition_embedder(timestep, captions[0])
        timestep_proj = timestep_proj.unflatten(1, (6, -1))  # (B, 6, D)
        texts = [first_text, *(self.condition_embedder.text_embedder(caption) for caption in captions[1:])]

        # 3. Blocks, for each caption; the first block's self-attention, blind to the text, once for all
        camera_tokens = self.camera_tokens(camera, frames, rows * columns)
        last_block_targets = (not source_velocity and conditioning == "frame" and not target_only
                              and self.source_cache is None and not self.sequence_split)  # fmt: skip
        first_step = None
        outputs = []
        for text in texts:
            states = hidden_states
            for index, block in enumerate(self.blocks):
                last = last_block_targets and index == len(self.blocks) - 1
                arguments = (states, text, timestep_proj, rotary_emb, camera_tokens, rows * columns,
                             hidden_states.shape[1] // 2 if last else None)  # fmt: skip
                if index == 0 and len(texts) > 1:
                    if first_step is None:
                        first_step = block(*arguments, part="self_attention")
                    states = block(first_step, *arguments[1:], part="text_and_feedforward")
                elif torch.is_grad_enabled() and self.gradient_checkpointing:
                    states = self._gradient_checkpointing_func(block, *arguments)
                else:
                    states = block(*arguments)
            outputs.append(self.unpatchified_velocity(states, temb, rows, columns))
        output = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
        if conditioning == "channel" and source_velocity:  # the clean source frames do not move
            output = torch.cat([output, torch.zeros_like(output)], dim=2)
        elif conditioning == "view":  # (B V, C, F, H, W) -> (B, C, 2F, H, W), target first
            output = output.unflatten(0, (-1, VIEWS)).transpose(1, 2).flatten(2, 3)
        if not source_velocity and not target_only and not last_block_targets and conditioning != "channel":
            output = output[:, :, : output.shape[2] // 2]
        return Transformer2DModelOutput(sample=output) if return_dict else (output,)

    def unpatchified_velocity(self, hidden_states: torch.Tensor, temb: torch.Tensor, rows: int, columns: int):
        """Output norm, projection and unpatchify: (B, frames x rows x columns, D) -> (B, C, frames, H, W)."""
        p_t, p_h, p_w = self.config.patch_size
        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        hidden_states = (self.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        hidden_states = self.proj_out(hidden_states)  # (B, L, p_t p_h p_w C)
        hidden_states = hidden_states.unflatten(1, (-1, rows, columns)).unflatten(-1, (p_t, p_h, p_w, -1))
        return hidden_states.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)


def count_parameters(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
