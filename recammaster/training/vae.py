"""``train vae``: the embedded model's small Wan-style video VAE, trained from scratch on synthetic clips.

The network is Wan2.1's VAE (spec ``upstream-recammaster.md`` §8, diffusers' ``AutoencoderKLWan``) at a sixth of
its width by default (``base_dim`` 16 instead of 96: 3.6 M parameters instead of 126.9 M), so its latents keep the
layout the transformer expects: 4k+1 frames -> 1+k latent frames of 16 channels, 8x smaller in height and width.
``vae_config`` can change that: ``z_dim`` sets the channels, and three ``dim_mult`` stages (with two
``temperal_downsample`` entries) make the latents 4x smaller instead (:func:`recammaster.models.vae.spatial_factor`).

The objective is the KL autoencoder's of latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis
with Latent Diffusion Models", appendix G) without its perceptual and adversarial terms: the L1 error of the
decoded posterior sample plus ``kl_weight`` times the KL divergence of the posterior from N(0, I), both summed
over a clip as there (where the weight is 1e-6); we divide the sum by the clip's pixel count so that the L1 reads
as a mean. Clips are short windows of the synthetic engine's 81-frame renders, drawn on the training device.

``character_weight`` > 1 weighs the L1 error of the pixels where the engine drew a character that many times
more (a weighted mean, so the loss keeps its scale). Characters cover 3-12% of a clip's pixels; with an even
weight a small VAE spends its capacity on floor and walls and draws the characters as dark smears, which is
what a viewer looks at. The held-out metrics report the PSNR of the character pixels alone beside the whole
clip's.

``train_part: decoder`` trains only the decoder of ``init_from``'s VAE: its latents stay exactly as they were,
so a transformer trained on them works with the new decoder unchanged. ``warm_start`` starts a VAE of another
config (fewer latent channels, say) from a trained one's tensors of matching name and shape.

Whenever a checkpoint is written, the per-channel mean and std of the posterior means of fixed held-out clips
(scenes of seed + 1, full length) become the VAE's ``latents_mean``/``latents_std`` (kept when only the decoder
trains), which :func:`recammaster.models.vae.encode_video` normalises with, and the VAE is saved as a diffusers folder
``<run>/vae/`` (float32 safetensors; :func:`recammaster.models.vae.load_wan_vae` reads it) with its held-out
reconstruction PSNR (whole clips and character pixels) in ``<run>/vae_metrics.json``. The run folder and
resuming work as ``train fit``'s (:mod:`recammaster.training.fit`): the same data order and, every draw seeded
by (seed, sample number), the same weights after an interruption.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from diffusers import AutoencoderKLWan
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import Dataset

from recammaster.data.synth import SyntheticPairStream, make_scene
from recammaster.data.synth.engine import CAMERAS
from recammaster.errors import ReCamMasterError
from recammaster.fileio import write_text_atomic
from recammaster.models.vae import TEMPORAL_FACTOR, WAN_VAE_CONFIG, spatial_factor
from recammaster.models.weights import copy_matching_tensors
from recammaster.models.whole_clip_vae import decode_whole_clip, encode_whole_clip
from recammaster.training.callbacks import TimeLimit, TrainerState
from recammaster.training.fit import STATE_FILE, PairsDataModule, prepare_run_dir, run_logger
from recammaster.training.module import sample_generators

VAE_FOLDER = "vae"
METRICS_FILE = "vae_metrics.json"
_WINDOW_STREAM = 2  # a seed word of its own, so window draws never share a generator with scene or pair draws
TRAIN_PARTS = ("all", "decoder")
_VAE_ARGUMENTS = frozenset(inspect.signature(AutoencoderKLWan.__init__).parameters) - {"self"}

# ---------------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class VaeConfig:
    """Everything a VAE run depends on. Field names are the YAML keys."""

    output_dir: str = "runs/vae"
    vae_config: dict[str, Any] = field(default_factory=lambda: {"base_dim": 16})  # over WAN_VAE_CONFIG
    # data: windows of clip_frames frames (4k+1) of render_frames-frame clips, size x size
    size: int = 128
    render_frames: int = 81  # the transformer's clip length; tests render fewer
    clip_frames: int = 17
    windows_per_camera: int = 4  # each scene renders ten cameras: 10 x this many samples per rendered scene
    scenes_at_once: int = 8  # scenes whose samples interleave, so that a batch mixes them
    held_out_clips: int = 32  # full-length clips of seed + 1 for the latent statistics and the PSNR
    batch_size: int = 16
    # optimisation
    learning_rate: float = 3e-4
    warmup_steps: int = 0  # the rate rises linearly from 0 over these steps
    kl_weight: float = 1e-6
    character_weight: float = 1.0  # weight of the L1 error where characters are (1: every pixel alike)
    max_steps: int = 10000
    max_minutes: float | None = None  # training time of this invocation; run again to train on
    precision: str | None = None  # default: bf16-mixed on GPU, 32-true on CPU
    seed: int = 0
    init_from: str | None = None  # a VAE folder whose weights start the run (a run begun on another machine)
    train_part: str = "all"  # "decoder": the encoder (and so the latents and their statistics) stays init_from's
    warm_start: str | None = None  # a VAE folder whose tensors of matching name and shape start a VAE of another config
    # hardware and outputs
    accelerator: str = "auto"
    devices: int | str = "auto"
    checkpoint_every: int = 500  # steps between trainer states and VAE exports
    log_every: int = 10
    logger: str = "csv"

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> VaeConfig:
        """A config file's values with ``overrides`` (those not None) on top; unknown keys are an error naming them."""
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise ReCamMasterError(f"{path}: not a readable YAML config ({error})") from error
        if not isinstance(values, dict | None):
            raise ReCamMasterError(f"{path}: a config is a mapping of option: value")
        values = {str(key).replace("-", "_"): value for key, value in (values or {}).items()}
        if unknown := sorted(set(values) - {f.name for f in dataclasses.fields(cls)}):
            raise ReCamMasterError(f"{path}: unknown options {', '.join(unknown)}")
        return cls(**{**values, **{key: value for key, value in overrides.items() if value is not None}})

    def check(self) -> None:
        """Raise naming every option that cannot work, before anything is rendered or built."""
        integers = ("size", "render_frames", "clip_frames", "windows_per_camera", "scenes_at_once", "held_out_clips",
                    "batch_size", "max_steps", "warmup_steps", "checkpoint_every", "log_every", "seed")  # fmt: skip
        problems = [f"{name} must be an integer, got {getattr(self, name)!r}" for name in integers
                    if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool)]  # fmt: skip
        problems += [f"{name} must be a number, got {getattr(self, name)!r}"
                     for name in ("learning_rate", "kl_weight", "character_weight")
                     if not isinstance(getattr(self, name), int | float)]  # fmt: skip
        if self.max_minutes is not None and not (isinstance(self.max_minutes, int | float) and self.max_minutes > 0):
            problems.append(f"max_minutes must be a positive number, got {self.max_minutes!r}")
        if problems:  # the checks below compare numbers
            raise ReCamMasterError("vae training config: " + "; ".join(problems))
        for name in ("clip_frames", "render_frames"):
            if getattr(self, name) % TEMPORAL_FACTOR != 1:
                problems.append(f"{name} must be 4k+1 (5, 9, 13, 17, ...), got {getattr(self, name)}")
        if self.clip_frames > self.render_frames:
            problems.append(f"clip_frames ({self.clip_frames}) must not exceed render_frames ({self.render_frames})")
        for name in ("windows_per_camera", "scenes_at_once", "held_out_clips", "batch_size", "max_steps"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps must not be negative, got {self.warmup_steps}")
        if self.character_weight <= 0:
            problems.append(f"character_weight must be positive, got {self.character_weight}")
        if self.learning_rate <= 0 or self.kl_weight < 0:
            problems.append(f"learning_rate must be positive and kl_weight not negative, got {self.learning_rate} "
                            f"and {self.kl_weight}")  # fmt: skip
        if not isinstance(self.vae_config, dict):
            problems.append(f"vae_config must be a mapping of AutoencoderKLWan arguments, got {self.vae_config!r}")
        elif unknown := sorted(set(self.vae_config) - _VAE_ARGUMENTS):
            problems.append(f"vae_config: AutoencoderKLWan has no argument {', '.join(unknown)}")
        elif self.size < (factor := spatial_factor(self.vae_arguments())) or self.size % factor:
            problems.append(f"size must be a positive multiple of {factor}, got {self.size}")
        if self.train_part not in TRAIN_PARTS:
            problems.append(f"train_part must be one of {', '.join(TRAIN_PARTS)}, got {self.train_part!r}")
        elif self.train_part == "decoder" and not self.init_from:
            problems.append("train_part: decoder needs init_from, the VAE whose encoder it keeps")
        if self.warm_start and self.init_from:
            problems.append("warm_start and init_from both set the starting weights; keep one")
        if self.logger not in ("csv", "tensorboard"):
            problems.append(f"logger must be csv or tensorboard, got {self.logger!r}")
        if problems:
            raise ReCamMasterError("vae training config: " + "; ".join(problems))

    def vae_arguments(self) -> dict[str, Any]:
        return {**WAN_VAE_CONFIG, **self.vae_config}

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


class SyntheticClips(Dataset):
    """Single-camera clips of the synthetic engine by sample number (:class:`TrainingOrder`'s endless keys).

    Scenes are rendered ``scenes_at_once`` at a time, all ten cameras of each once, and their samples interleave
    so that a batch mixes scenes: within a group of scenes, the scene changes fastest, then the camera, then the
    window. Each scene gives ``10 * windows_per_camera`` samples. A window is ``clip_frames`` frames starting at a
    multiple of 4, frame 0 included, so that its frame groups line up with those of the whole clip, which the
    causal VAE encodes as frame 0 alone and then four frames at a time; a camera's windows are distinct while
    there are enough, in an order drawn from (seed, scene, camera).

    Items: ``video`` (3, clip_frames, size, size) float32 in [-1, 1] on ``device``, ``characters``
    (clip_frames, size, size) bool, where a character is, and ``sample``.
    """

    def __init__(
        self,
        seed: int,
        *,
        size: int,
        render_frames: int,
        clip_frames: int,
        windows_per_camera: int = 1,
        scenes_at_once: int = 1,
        device: str | torch.device = "cpu",
    ) -> None:
        self.stream = SyntheticPairStream(seed, size, render_frames, device=device)
        self.seed, self.render_frames, self.clip_frames = seed, render_frames, clip_frames
        self.windows_per_camera, self.scenes_at_once = windows_per_camera, scenes_at_once
        self.starts = np.arange(0, render_frames - clip_frames + 1, TEMPORAL_FACTOR)
        self._renders: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # the current group's scenes

    @property
    def device(self) -> torch.device:
        return self.stream.device

    @device.setter
    def device(self, device: str | torch.device) -> None:  # the data module moves rendering to the trainer's device
        self.stream.device = torch.device(device)

    def render(self, scene: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images, uint8 (cameras, frames, H, W, 3), and character masks, (cameras, frames, H, W), of scene number
        ``scene`` (from 1); a new group drops the last one."""
        if scene not in self._renders:
            group = (scene - 1) // self.scenes_at_once
            self._renders = {kept: render for kept, render in self._renders.items()
                             if (kept - 1) // self.scenes_at_once == group}  # fmt: skip
            self._renders[scene] = self.stream.render_with_masks(make_scene(self.seed, scene, self.render_frames))
        return self._renders[scene]

    def clip(self, scene: int, camera: int, start: int, frames: int) -> torch.Tensor:
        """Frames ``start`` .. ``start + frames - 1`` of a scene's camera (0-based) as (3, frames, H, W) in [-1, 1]."""
        return self.stream.to_video(self.render(scene)[0][camera, start : start + frames])

    def characters(self, scene: int, camera: int, start: int, frames: int) -> torch.Tensor:
        """Where those frames show a character: bool (frames, H, W)."""
        return self.render(scene)[1][camera, start : start + frames] > 0

    def locate(self, sample: int) -> tuple[int, int, int]:
        """(scene, camera, first frame) of a sample."""
        group, offset = divmod(sample, self.scenes_at_once * CAMERAS * self.windows_per_camera)
        rest, member = divmod(offset, self.scenes_at_once)
        window, camera = divmod(rest, CAMERAS)
        scene = 1 + group * self.scenes_at_once + member
        order = np.random.default_rng([self.seed, scene, camera, _WINDOW_STREAM]).permutation(len(self.starts))
        return scene, camera, int(self.starts[order[window % len(order)]])

    def __getitem__(self, sample: int) -> dict[str, Any]:
        scene, camera, start = self.locate(sample)
        return {"video": self.clip(scene, camera, start, self.clip_frames),
                "characters": self.characters(scene, camera, start, self.clip_frames), "sample": sample}  # fmt: skip


def held_out_clips(
    config: VaeConfig, device: str | torch.device = "cpu"
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The run's held-out clips, full length, scenes 1, 2, ... of seed + 1, camera i % 10 of the i-th, and their
    character masks (:meth:`SyntheticClips.characters`)."""
    scenes = SyntheticClips(config.seed + 1, size=config.size, render_frames=config.render_frames,
                            clip_frames=config.render_frames, device=device)  # fmt: skip
    views = [(1 + index, index % CAMERAS, 0, config.render_frames) for index in range(config.held_out_clips)]
    return [scenes.clip(*view) for view in views], [scenes.characters(*view) for view in views]


# ---------------------------------------------------------------------------------------------------------------------
# Objective and metrics
# ---------------------------------------------------------------------------------------------------------------------


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) of every latent value."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)


def psnr(reconstruction: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each clip of a batch of videos in [-1, 1] (a peak-to-peak range of 2)."""
    error = (reconstruction.float() - video.float()).square().flatten(1).mean(1)
    return 10.0 * torch.log10(4.0 / error.clamp_min(1e-12))


@dataclass
class VaeLoss:
    loss: torch.Tensor
    l1: torch.Tensor  # mean absolute error per pixel value
    kl: torch.Tensor  # mean KL per latent value
    psnr: torch.Tensor  # mean over the clips, dB


def vae_loss(
    vae: AutoencoderKLWan,
    video: torch.Tensor,
    generators: list[torch.Generator],
    kl_weight: float,
    characters: torch.Tensor | None = None,
    character_weight: float = 1.0,
) -> VaeLoss:
    """Encode, sample the posterior with one CPU generator per clip, decode, and score (see the module). Whole clips
    at once: the chunked VAE's results, several times faster to train (:mod:`recammaster.models.whole_clip_vae`).
    ``characters`` (B, T, H, W) bool marks the pixels whose error weighs ``character_weight`` times more."""
    posterior = encode_whole_clip(vae, video)  # (B, 3, T, H, W) -> (B, C, 1 + (T-1)/4, H/s, W/s)
    noise = torch.stack([torch.randn(posterior.mean.shape[1:], generator=g) for g in generators])
    latents = posterior.mean + posterior.std * noise.to(posterior.mean)
    reconstruction = decode_whole_clip(vae, latents)  # (B, 16, F, h, w) -> (B, 3, T, H, W), clamped to [-1, 1]
    error = (reconstruction.float() - video.float()).abs()
    if characters is None or character_weight == 1.0:
        l1 = error.mean()
    else:
        weight = 1.0 + (character_weight - 1.0) * characters.unsqueeze(1).float()  # (B, 1, T, H, W)
        l1 = (error * weight).mean() / weight.mean()
    kl = kl_to_standard_normal(posterior.mean.float(), posterior.logvar.float())
    kl_per_pixel = kl.flatten(1).sum(1).mean() / video[0].numel()  # latent diffusion's weight is for sums per clip
    return VaeLoss(l1 + kl_weight * kl_per_pixel, l1, kl.mean(), psnr(reconstruction.detach(), video).mean())


@torch.no_grad()
def evaluate(
    vae: AutoencoderKLWan, clips: list[torch.Tensor], characters: list[torch.Tensor], batch_size: int
) -> dict[str, Any]:
    """Per-channel mean and std of the clips' posterior means, the PSNR of their decoded means (float32), and the
    PSNR of the character pixels of all clips together (None when no clip shows one)."""
    means, scores = [], []
    character_error, character_values = 0.0, 0
    for batch, shown in zip(
        torch.stack(clips).split(batch_size), torch.stack(characters).split(batch_size), strict=True
    ):
        batch, shown = batch.to(vae.device, torch.float32), shown.to(vae.device).unsqueeze(1).expand_as(batch)
        mean = encode_whole_clip(vae, batch).mean
        means.append(mean.transpose(0, 1).flatten(1))  # (B, C, F, h, w) -> (C, B F h w)
        reconstruction = decode_whole_clip(vae, mean)
        scores.append(psnr(reconstruction, batch))
        character_error += (reconstruction - batch)[shown].square().sum().item()
        character_values += int(shown.sum())
    std, mean = torch.std_mean(torch.cat(means, dim=1).double(), dim=1)
    character_psnr = 10.0 * np.log10(4.0 / max(character_error / character_values, 1e-12)) if character_values else None
    return {"latents_mean": mean.tolist(), "latents_std": std.tolist(), "psnr": torch.cat(scores).mean().item(),
            "character_psnr": character_psnr}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


class VaeTraining(L.LightningModule):
    """Train an ``AutoencoderKLWan`` with :func:`vae_loss`; AdamW with torch's defaults but the rate, which
    rises linearly over ``warmup_steps`` and then stays.

    Each clip's posterior sample is drawn from a generator seeded by the run's seed and the clip's sample
    number, so a resumed run, or N GPUs, repeat one uninterrupted GPU's draws. With ``train_part="decoder"``
    the encoder and its output convolution are frozen: a trained transformer's latent space stays as it is
    while the decoder learns to draw it sharper.
    """

    def __init__(
        self,
        vae: AutoencoderKLWan,
        *,
        learning_rate: float,
        kl_weight: float,
        seed: int,
        warmup_steps: int = 0,
        train_part: str = "all",
        character_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.vae = vae.train()
        self.learning_rate, self.kl_weight, self.seed = learning_rate, kl_weight, seed
        self.character_weight = character_weight
        self.warmup_steps = warmup_steps
        if train_part == "decoder":
            self.vae.encoder.requires_grad_(False)
            self.vae.quant_conv.requires_grad_(False)

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        generators = sample_generators(self.seed, batch["sample"].tolist())
        output = vae_loss(self.vae, batch["video"], generators, self.kl_weight, batch["characters"],
                          self.character_weight)  # fmt: skip
        size = len(batch["video"])
        self.log("train/loss", output.loss, prog_bar=True, batch_size=size)
        self.log("train/l1", output.l1, batch_size=size)
        self.log("train/kl", output.kl, batch_size=size)
        self.log("train/psnr", output.psnr, prog_bar=True, batch_size=size)
        return output.loss

    def configure_optimizers(self) -> dict[str, Any]:
        trained = [parameter for parameter in self.vae.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=self.learning_rate)
        warmup = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / (self.warmup_steps + 1))
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}


def save_vae(vae: AutoencoderKLWan, folder: Path) -> None:
    """``save_pretrained`` into a new folder, then swap it in: an interruption leaves a whole folder behind."""
    partial, previous = folder.with_name(folder.name + ".partial"), folder.with_name(folder.name + ".previous")
    shutil.rmtree(partial, ignore_errors=True)
    vae.save_pretrained(partial, safe_serialization=True)
    if folder.exists():
        os.replace(folder, previous)
    os.replace(partial, folder)
    shutil.rmtree(previous, ignore_errors=True)


class VaeExport(L.Callback):
    """Every ``every_n_steps`` steps and at the end: latent statistics into the config, ``vae/``, the metrics.

    It also counts the training time (without its own), kept in the trainer state across resumed runs.
    """

    def __init__(self, run_dir: Path, config: VaeConfig) -> None:
        self.run_dir, self.config = run_dir, config
        self.every_n_steps = config.checkpoint_every
        self.seconds, self._since, self._last_step = 0.0, time.perf_counter(), -1
        self._clips: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None  # rendered at the first export

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds + time.perf_counter() - self._since}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seconds = state_dict["seconds"]

    def on_train_start(self, *_: Any) -> None:
        self._since = time.perf_counter()

    def export(self, trainer: L.Trainer, module: VaeTraining) -> None:
        self.seconds += time.perf_counter() - self._since
        self._last_step = trainer.global_step
        if self._clips is None:
            self._clips = held_out_clips(self.config, trainer.strategy.root_device)
        module.vae.eval()
        result = evaluate(module.vae, *self._clips, self.config.batch_size)
        module.vae.train()
        if self.config.train_part == "all":  # a frozen encoder keeps its latents, and so their statistics
            module.vae.register_to_config(latents_mean=result["latents_mean"], latents_std=result["latents_std"])
        if trainer.is_global_zero:
            save_vae(module.vae, self.run_dir / VAE_FOLDER)
            metrics = {"psnr_db": result["psnr"], "character_psnr_db": result["character_psnr"],
                       "steps": trainer.global_step, "train_minutes": self.seconds / 60,
                       "held_out_clips": len(self._clips[0]), "frames": self.config.render_frames,
                       "size": self.config.size, "latents_mean": list(module.vae.config.latents_mean),
                       "latents_std": list(module.vae.config.latents_std)}  # fmt: skip
            write_text_atomic(self.run_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n", overwrite=True)
            if trainer.logger is not None:
                logged = {"held_out/psnr": result["psnr"], "held_out/character_psnr": result["character_psnr"]}
                trainer.logger.log_metrics({key: value for key, value in logged.items() if value is not None},
                                           step=trainer.global_step)  # fmt: skip
        self._since = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: VaeTraining, *_: Any) -> None:
        step = trainer.global_step
        if self.every_n_steps > 0 and step > 0 and step != self._last_step and step % self.every_n_steps == 0:
            self.export(trainer, module)

    def on_train_end(self, trainer: L.Trainer, module: VaeTraining) -> None:
        if trainer.global_step > 0 and trainer.global_step != self._last_step:
            self.export(trainer, module)


def start_from(vae: AutoencoderKLWan, folder: Path) -> None:
    """Load another run's VAE weights and latent statistics (the optimizer starts afresh); they must fit ``vae``'s
    config."""
    try:
        trained = AutoencoderKLWan.from_pretrained(folder)
        vae.load_state_dict(trained.state_dict(), strict=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise ReCamMasterError(f"{folder}: cannot start the VAE from it ({error})") from error
    vae.register_to_config(latents_mean=trained.config.latents_mean, latents_std=trained.config.latents_std)


def warm_start_vae(vae: AutoencoderKLWan, folder: Path) -> list[str]:
    """Start ``vae`` from another VAE's tensors of matching name and shape (another ``z_dim``, say: only the layers
    next to the latents start fresh); return the names of those left as they were. The latent statistics are not
    copied: the first export measures them."""
    try:
        trained = AutoencoderKLWan.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise ReCamMasterError(f"{folder}: cannot start the VAE from it ({error})") from error
    return copy_matching_tensors(vae, trained.state_dict(), str(folder))


def train_vae(config: VaeConfig, *, overwrite: bool = False, progress: bool = True) -> Path:
    """Train (or resume) the VAE run ``config`` describes; returns the run folder."""
    config.check()
    run_dir, resume_from = prepare_run_dir(config, overwrite=overwrite)
    if overwrite:  # prepare_run_dir cleared train fit's outputs; these are ours
        shutil.rmtree(run_dir / VAE_FOLDER, ignore_errors=True)
        (run_dir / METRICS_FILE).unlink(missing_ok=True)
    L.seed_everything(config.seed, workers=True, verbose=False)  # the initial weights

    on_gpu = torch.cuda.is_available() and config.accelerator in ("auto", "gpu", "cuda")
    vae = AutoencoderKLWan(**config.vae_arguments())
    if config.init_from:
        start_from(vae, Path(config.init_from))
    if config.warm_start:
        fresh = warm_start_vae(vae, Path(config.warm_start))
        rank_zero_info(f"warm start from {config.warm_start}; fresh: {', '.join(fresh) or 'nothing'}")
    module = VaeTraining(vae, learning_rate=config.learning_rate, kl_weight=config.kl_weight, seed=config.seed,
                         warmup_steps=config.warmup_steps, train_part=config.train_part,
                         character_weight=config.character_weight)  # fmt: skip
    torch.backends.cudnn.benchmark = on_gpu  # fixed clip shapes: let cuDNN pick the fastest 3-D convolutions
    dataset = SyntheticClips(config.seed, size=config.size, render_frames=config.render_frames,
                             clip_frames=config.clip_frames, windows_per_camera=config.windows_per_camera,
                             scenes_at_once=config.scenes_at_once)  # fmt: skip
    callbacks = [VaeExport(run_dir, config), TrainerState(run_dir / STATE_FILE, config.checkpoint_every)]
    if config.max_minutes:
        callbacks.append(TimeLimit(config.max_minutes))
    trainer = L.Trainer(
        accelerator=config.accelerator, devices=config.devices,
        precision=config.precision or ("bf16-mixed" if on_gpu else "32-true"), gradient_clip_val=1.0,
        max_steps=config.max_steps,
        log_every_n_steps=config.log_every, logger=run_logger(config, run_dir), callbacks=callbacks,
        use_distributed_sampler=False, enable_progress_bar=progress, enable_model_summary=False,
        enable_checkpointing=False, default_root_dir=run_dir,
    )  # fmt: skip
    datamodule = PairsDataModule(dataset, endless=True, batch_size=config.batch_size, seed=config.seed, num_workers=0)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    return run_dir
