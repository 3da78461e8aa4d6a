"""The Lightning module: ReCamMaster's training step, optimizer and what a checkpoint keeps.

The step itself is :func:`recammaster.training.objective.flow_matching_loss`; this class adds what a
trainer needs around it. Every random draw of a sample (noise level, noise, augmentation) comes from a
generator seeded by the run's seed and the sample's number in the run (as :class:`TrainingOrder` numbers
them), so a resumed run repeats the uninterrupted one exactly, and N GPUs with batch b draw what one GPU
with batch N b draws. Batches are cached latents (``target_latents``, ``source_latents``, ``text``)
or pixels (``target_video``, ``source_video``, ``caption``), which are encoded here with the frozen VAE
and text encoder; both carry ``camera``.

The optimizer is upstream's (spec §5.2): AdamW over the trainable set with torch's defaults (betas 0.9 /
0.999, eps 1e-8, weight decay 0.01), no clipping, and by default no schedule (``rate_schedule`` adds warm-up
and decay). Trainable weights stay float32 (the master copy); frozen ones may be bf16. A Lightning
checkpoint keeps only the trainable weights and the optimizer: the frozen rest comes from the same base
weights when a run resumes.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from diffusers import AutoencoderKLWan
from transformers import PreTrainedTokenizerBase, UMT5EncoderModel

from recammaster.models.text_encoder import encode_prompt
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.vae import encode_video
from recammaster.training.objective import ConditionAugmentation, flow_matching_loss
from recammaster.training.schedule import RateSchedule, TrainingSchedule
from recammaster.training.trainable import select_trainable, trainable_parameters

CHECKPOINTING = (False, True, "selective")  # the values of gradient_checkpointing


def sample_generators(seed: int, samples: range) -> list[torch.Generator]:
    """CPU generators for the run's samples number ``samples``: a sample's draws depend on nothing else."""
    generators = []
    for sample in samples:
        words = np.random.SeedSequence([seed, sample]).generate_state(2, dtype=np.uint32)
        generators.append(torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1])))
    return generators


class ReCamMasterTraining(L.LightningModule):
    """Train a :class:`ReCamMasterTransformer3DModel` on (source, target, camera, caption) pairs.

    Args:
        transformer: the model; its trainable set is chosen here.
        trainable: ``camera-attention`` (upstream), ``full`` or ``lora``; ``lora_rank`` for the last.
        learning_rate, weight_decay: AdamW settings (upstream's README: 1e-4; torch's decay 0.01).
        augmentation: the paper's condition-noise, condition-drop and text-drop tricks (default off).
        gradient_checkpointing: recompute each block in the backward pass (memory for time); ``"selective"``:
            all but the self-attention, whose output is kept (0.2 GB a block at 1.3B and 65,520 tokens).
        compile_blocks: ``torch.compile`` each transformer block in place (diffusers' regional compilation:
            one compiled graph serves every block, and the weights keep their names).
        seed: the run's seed, for every random draw of every step.
        vae, text_encoder, tokenizer: frozen encoders for pixel batches (not needed for cached latents).
        empty_text: (L, D) embedding of the empty caption, for ``text_drop`` with cached latents.
        character_weight: how many times more the loss weighs latent values wholly covered by characters (batches
            then need ``target_characters``, which :class:`SyntheticLatentPool` gives); 1 weighs all alike.
        timestep_weighting: the loss weight of each noise level, ``upstream``'s bump or ``flat``
            (:class:`~recammaster.training.schedule.TrainingSchedule`).
    """

    flops_per_batch = None  # read by the throughput log (samples per second); FLOPs are not counted

    def __init__(
        self,
        transformer: ReCamMasterTransformer3DModel,
        *,
        trainable: str = "camera-attention",
        lora_rank: int = 64,
        learning_rate: float = 1e-4,
        weight_decay: float = 0.01,
        rate_schedule: RateSchedule | None = None,
        augmentation: ConditionAugmentation | None = None,
        gradient_checkpointing: bool | str = False,
        compile_blocks: bool = False,
        seed: int = 0,
        vae: AutoencoderKLWan | None = None,
        text_encoder: UMT5EncoderModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        empty_text: torch.Tensor | None = None,
        max_sequence_length: int = 512,
        character_weight: float = 1.0,
        timestep_weighting: str = "upstream",
    ) -> None:
        super().__init__()
        self.transformer = select_trainable(transformer, trainable, lora_rank).train()
        for parameter in trainable_parameters(self.transformer):
            parameter.data = parameter.data.float()  # the float32 master copy of what is trained
        if gradient_checkpointing not in CHECKPOINTING:
            raise ValueError(f"gradient_checkpointing must be one of {CHECKPOINTING}, got {gradient_checkpointing!r}")
        if gradient_checkpointing == "selective":
            self.transformer.enable_selective_checkpointing()
        elif gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        if compile_blocks:
            self.transformer.compile_repeated_blocks()
        self.trainable, self.learning_rate, self.weight_decay = trainable, learning_rate, weight_decay
        self.rate_schedule = rate_schedule or RateSchedule()
        self.augmentation = augmentation or ConditionAugmentation()
        self.seed, self.max_sequence_length, self.character_weight = seed, max_sequence_length, character_weight
        self.schedule = TrainingSchedule(weighting=timestep_weighting)
        self.vae, self.text_encoder, self.tokenizer = vae, text_encoder, tokenizer
        for frozen in (vae, text_encoder):
            if frozen is not None:
                frozen.requires_grad_(False).eval()
        self.register_buffer("empty_text", empty_text, persistent=False)
        self.strict_loading = False  # checkpoints hold only the trainable weights

    # ------------------------------------------------------------------
    # Inputs
    # ------------------------------------------------------------------

    def encode_captions(self, captions: list[str]) -> torch.Tensor:
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("pixel batches need the text encoder and tokenizer to encode their captions")
        with torch.no_grad():
            return encode_prompt(
                self.tokenizer, self.text_encoder, captions, max_length=self.max_sequence_length, device=self.device
            )

    def latents(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target latents, source latents, text embeddings) of a batch of latents or of pixels."""
        if "target_latents" in batch:
            return batch["target_latents"], batch["source_latents"], batch["text"]
        if self.vae is None:
            raise ValueError("pixel batches need a VAE; give one, or train on cached latents")
        with torch.no_grad():
            videos = torch.cat([batch["target_video"], batch["source_video"]]).to(self.device, self.vae.dtype)
            target, source = encode_video(self.vae, videos).chunk(2)
        return target, source, self.encode_captions(list(batch["caption"]))

    def loss_weights(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """Per-position weights of the target latents: 1, and ``character_weight`` where characters cover all."""
        if self.character_weight == 1.0:
            return None
        if "target_characters" not in batch:
            raise ValueError(
                "character_weight needs batches with target_characters: a synthetic pool written with them"
            )
        return 1.0 + (self.character_weight - 1.0) * batch["target_characters"].float()

    def empty_caption(self) -> torch.Tensor | None:
        if self.empty_text is None and self.text_encoder is not None:
            self.empty_text = self.encode_captions([""])[0]
        return self.empty_text

    # ------------------------------------------------------------------
    # Lightning hooks
    # ------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """FSDP flattens each wrapped unit's weights into one tensor of one dtype: make everything float32
        (it still computes in bf16 under bf16-mixed; frozen bf16 weights become float32 exactly)."""
        from lightning.pytorch.strategies import FSDPStrategy

        if isinstance(self.trainer.strategy, FSDPStrategy):
            self.float()

    def training_step(self, batch: dict[str, Any], batch_index: int) -> torch.Tensor:
        target, source, text = self.latents(batch)
        trainer, batch_size = self.trainer, len(target)
        position = self.global_step * trainer.accumulate_grad_batches + batch_index % trainer.accumulate_grad_batches
        first = position * batch_size  # this rank's first sample of the micro-batch, numbered as TrainingOrder does
        numbers = range(first * trainer.world_size + self.global_rank, (first + batch_size) * trainer.world_size,
                        trainer.world_size)  # fmt: skip
        generators = sample_generators(self.seed, numbers)
        empty = self.empty_caption() if self.augmentation.text_drop > 0 else None
        output = flow_matching_loss(self.transformer, target, source, text, batch["camera"], self.schedule,
                                    generators, self.augmentation, empty, self.loss_weights(batch))  # fmt: skip
        # the mean over every rank's samples: the loss of the global batch, as one GPU would log it
        self.log("train/loss", output.loss, prog_bar=True, batch_size=len(target), sync_dist=True)
        self.log("train/timestep", output.timestep.float().mean(), batch_size=len(target), sync_dist=True)
        return output.loss

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        optimizer = torch.optim.AdamW(
            trainable_parameters(self.transformer), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        if self.rate_schedule.constant:  # upstream's recipe, and the trainer states saved before schedules existed
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.rate_schedule.factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trained weights: the frozen ones are the run's base weights."""
        trained = {f"transformer.{name}" for name, p in self.transformer.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {key: value for key, value in checkpoint["state_dict"].items() if key in trained}
        checkpoint["recammaster"] = {"trainable": self.trainable, "seed": self.seed}
