"""What a run leaves behind while it trains: official-format weights and sample videos.

Weights go to ``<run>/checkpoints/step{N}.ckpt`` as upstream names them (spec ``upstream-recammaster.md``
§2.6): a flat dict of every transformer tensor under the original Wan names, LoRA deltas merged, bf16 by
default, so the file loads with ``strict=True`` into upstream's inference code and into ours
(``recammaster render --model-dir`` via ``load_transformer``). The resumable trainer state (trained weights,
optimizer, step) is Lightning's own checkpoint, kept apart in ``<run>/trainer_state/``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from recammaster.models.checkpoints import save_state_dict
from recammaster.models.vae import decode_latents
from recammaster.models.weights import diffusers_to_official
from recammaster.pipeline.recammaster_pipeline import ReCamMasterPipeline
from recammaster.pipeline.sampler import flow_match_sigmas
from recammaster.training.trainable import merged_state_dict
from recammaster.video import postprocess_frames, side_by_side, write_video

TRANSFORMER_PREFIX = "transformer."


def official_checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step{step}.ckpt"


class OfficialCheckpoints(L.Callback):
    """Write ``step{N}.ckpt`` every ``every_n_steps`` optimizer steps and when training ends."""

    def __init__(self, run_dir: str | Path, every_n_steps: int, dtype: torch.dtype | None = torch.bfloat16) -> None:
        self.run_dir, self.every_n_steps, self.dtype = Path(run_dir), every_n_steps, dtype
        self._last_step = -1

    def save(self, trainer: L.Trainer) -> Path | None:
        """Write the current weights (rank 0; every rank must call this). Steps already written are kept."""
        self._last_step = trainer.global_step
        path = official_checkpoint_path(self.run_dir, trainer.global_step)
        state = trainer.strategy.lightning_module_state_dict()  # every rank takes part (FSDP gathers)
        if not trainer.is_global_zero or path.exists():
            return None
        weights = {k.removeprefix(TRANSFORMER_PREFIX): v for k, v in state.items() if k.startswith(TRANSFORMER_PREFIX)}
        official = diffusers_to_official(merged_state_dict(weights), "the trained transformer")
        if self.dtype is not None:
            official = {key: value.to(self.dtype) for key, value in official.items()}
        return save_state_dict(official, path)

    def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        step = trainer.global_step  # after an accumulation's last micro-batch, the finished optimizer step
        if self.every_n_steps > 0 and step > 0 and step != self._last_step and step % self.every_n_steps == 0:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, *_: Any) -> None:
        if trainer.global_step > 0 and trainer.global_step != self._last_step:
            self.save(trainer)


class TrainerState(L.Callback):
    """Lightning's full checkpoint (trained weights, optimizer, step) at ``path``, every ``every_n_steps``
    steps and when training stops for any reason but a crash; replaced atomically, so an interruption
    while writing leaves the previous one intact."""

    def __init__(self, path: str | Path, every_n_steps: int) -> None:
        self.path, self.every_n_steps = Path(path), every_n_steps
        self._last_step = -1

    def save(self, trainer: L.Trainer) -> None:
        self._last_step = trainer.global_step
        partial = self.path.with_name(self.path.name + ".partial")
        trainer.save_checkpoint(partial)  # every rank takes part; rank 0 writes
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            os.replace(partial, self.path)

    def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        step = trainer.global_step
        if self.every_n_steps > 0 and step > 0 and step != self._last_step and step % self.every_n_steps == 0:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, *_: Any) -> None:
        if trainer.global_step != self._last_step:
            self.save(trainer)


class TimeLimit(L.Callback):
    """Stop after ``minutes`` of this invocation (Lightning's ``max_time`` counts every resumed invocation
    too): a long run goes in chunks of the same length, each one running the command again."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60

    def on_train_start(self, trainer: L.Trainer, *_: Any) -> None:
        self._start = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        if time.monotonic() - self._start > self.seconds:
            trainer.should_stop = True  # the trainer state is saved when training ends


class SampleVideos(L.Callback):
    """Every ``every_n_steps`` steps, re-render a few fixed examples and write source | sample | ground truth.

    ``examples`` are dataset items (latents or pixels, see the module); the VAE decodes. Files are
    ``<run>/samples/step{N:07d}_{i}.mp4``.
    """

    def __init__(
        self,
        run_dir: str | Path,
        examples: list[dict],
        every_n_steps: int,
        *,
        num_inference_steps: int = 20,
        guidance_scale: float = 1.0,
        fps: float = 15.0,
    ) -> None:
        self.folder = Path(run_dir) / "samples"
        self.examples, self.every_n_steps = examples, every_n_steps
        self.num_inference_steps, self.guidance_scale, self.fps = num_inference_steps, guidance_scale, fps
        self._last_step = -1

    @torch.no_grad()
    def render(self, module: L.LightningModule) -> list[np.ndarray]:
        """Source | sample | ground truth frames (uint8) of every example, with the current weights."""
        pipeline = ReCamMasterPipeline(
            tokenizer=None, text_encoder=None, vae=module.vae, transformer=module.transformer
        )
        pipeline.set_progress_bar_config(disable=True)
        videos = []
        for example in self.examples:
            batch = {key: value[None] if isinstance(value, torch.Tensor) else [value] for key, value in example.items()}
            target, source, text = (x.to(module.device) for x in module.latents(batch))
            negative = module.empty_caption()
            negative = None if negative is None else negative[None].to(text)
            generator = torch.Generator().manual_seed(0)
            noise = torch.randn(target.shape, generator=generator).to(target)
            sigmas = flow_match_sigmas(self.num_inference_steps)
            with torch.autocast(module.device.type, torch.bfloat16, enabled=module.device.type == "cuda"):
                sample = pipeline.denoise(noise, source.float(), batch["camera"].to(module.device).float(),
                                          text.float(), negative, sigmas, self.guidance_scale)  # fmt: skip
            frames = [
                postprocess_frames(decode_latents(module.vae, latents.to(module.vae.dtype))[0])
                for latents in (source, sample, target)
            ]
            inner = side_by_side(frames[1], frames[2], labels=("", "ground truth"))
            videos.append(side_by_side(frames[0], inner, labels=("source", "sample")))
        return videos

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *_: Any) -> None:
        step = trainer.global_step
        if self.every_n_steps <= 0 or step == self._last_step or step % self.every_n_steps:
            return
        self._last_step = step
        was_training = module.transformer.training
        module.transformer.eval()
        videos = self.render(module)
        module.transformer.train(was_training)
        if trainer.is_global_zero:
            for index, frames in enumerate(videos):
                write_video(self.folder / f"step{step:07d}_{index}.mp4", frames, fps=self.fps, overwrite=True)
