"""``ReCamMasterPipeline``: a source video, a caption and a camera trajectory in, the re-filmed video out.

The recipe is upstream's inference (spec ``upstream-recammaster.md`` §4): scale-to-cover and centre crop
to the model resolution, values in [-1, 1]; the VAE's posterior mean as the clean source latents; umT5
prompt embeddings with padded positions zeroed, and Wan's default negative prompt; the target camera
relative to its own first frame; float32 noise from a CPU generator (seed 0 by default); flow-matching
Euler on upstream's shifted sigmas, with the noisy target latents and the clean source latents joined
on the frame axis and text-only classifier-free guidance (scale 5); VAE decode; uint8 frames.

Motion guidance (off by default, not upstream's) extrapolates away from the prediction made with the source's first
frame held still, toward the one made with the whole source: classifier-free guidance whose condition is the
source's motion. A small model that takes its characters from the source's first frame (docs/embedded.md) then
moves them as the source does.
"""

from __future__ import annotations

import importlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan, DiffusionPipeline
from diffusers.utils import BaseOutput
from transformers import PreTrainedTokenizerBase, UMT5EncoderModel

from recammaster.cameras import Trajectory, load_trajectory
from recammaster.cameras.conventions import CONDITION_SIZE, latent_frame_indices
from recammaster.errors import ModelFilesNotFoundError
from recammaster.hub import OfficialWeights, find_official_weights
from recammaster.models.source_cache import SourceKVCache
from recammaster.models.text_encoder import DEFAULT_NEGATIVE_PROMPT, encode_prompt, load_tokenizer, load_umt5_encoder
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.vae import decode_latents, encode_video, load_wan_vae
from recammaster.models.weights import load_transformer
from recammaster.pipeline.parallel import guided_velocity
from recammaster.pipeline.sampler import DEFAULT_SHIFT, SOLVERS, flow_match_sigmas
from recammaster.video import postprocess_frames, preprocess_frames

DEFAULT_HEIGHT, DEFAULT_WIDTH, DEFAULT_NUM_FRAMES = 480, 832, 81
DEFAULT_STEPS, DEFAULT_GUIDANCE, DEFAULT_SEED = 50, 5.0, 0
SIZE_MULTIPLE = 16  # VAE 8x times the transformer's 2x2 patches
# A saved pipeline may carry the settings it was trained for; the official model's are upstream's. ``whole_clip_vae``:
# the VAE on whole clips at once (``models.whole_clip_vae``), for small models, where it halves the VAE's time on a CPU.
RENDER_DEFAULTS_FILE = "render_defaults.json"
UPSTREAM_RENDER_DEFAULTS = {"height": DEFAULT_HEIGHT, "width": DEFAULT_WIDTH, "num_inference_steps": DEFAULT_STEPS,
                            "guidance_scale": DEFAULT_GUIDANCE, "motion_guidance": 1.0,
                            "whole_clip_vae": False}  # fmt: skip


def read_render_defaults(folder: str | Path | None) -> dict[str, float | int]:
    """Height, width, steps and guidances a saved pipeline was made for (``render_defaults.json``), else upstream's."""
    path = None if folder is None else Path(folder) / RENDER_DEFAULTS_FILE
    if path is None or not path.is_file():
        return dict(UPSTREAM_RENDER_DEFAULTS)
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelFilesNotFoundError(f"{path}: unreadable render defaults ({error})") from error
    if not isinstance(saved, dict) or set(saved) - set(UPSTREAM_RENDER_DEFAULTS):
        raise ModelFilesNotFoundError(f"{path}: expected keys among {', '.join(UPSTREAM_RENDER_DEFAULTS)}")
    return {**UPSTREAM_RENDER_DEFAULTS, **saved}


@dataclass
class ReCamMasterPipelineOutput(BaseOutput):
    """``frames``: (T, H, W, 3) uint8 for output_type 'np', (3, T, H, W) in [-1, 1] for 'pt', or latents."""

    frames: np.ndarray | torch.Tensor


def check_video_size(num_frames: int, height: int, width: int) -> None:
    """4k+1 frames (a ``TrajectoryError`` otherwise) and sides that are multiples of 16 (a ``ValueError``)."""
    latent_frame_indices(num_frames)
    for name, value in (("height", height), ("width", width)):
        if value < SIZE_MULTIPLE or value % SIZE_MULTIPLE:
            raise ValueError(f"{name} must be a positive multiple of {SIZE_MULTIPLE}, got {value}")


def check_render_inputs(
    num_frames: int,
    height: int,
    width: int,
    num_inference_steps: int,
    guidance_scale: float,
    video_frames: int | None = None,
    trajectory_frames: int | None = None,
    motion_guidance: float = 1.0,
) -> None:
    """Raise ``ValueError`` naming the argument for anything the model cannot take, before any work."""
    check_video_size(num_frames, height, width)
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
    if guidance_scale < 1:
        raise ValueError(f"guidance_scale must be at least 1 (1 disables guidance), got {guidance_scale}")
    if motion_guidance < 1:
        raise ValueError(f"motion_guidance must be at least 1 (1 disables it), got {motion_guidance}")
    if video_frames is not None and video_frames < num_frames:
        raise ValueError(f"the video has {video_frames} frames; {num_frames} are needed")
    if trajectory_frames is not None and trajectory_frames != num_frames:
        raise ValueError(f"the trajectory has {trajectory_frames} frames but the video has {num_frames}")


class ReCamMasterPipeline(DiffusionPipeline):
    r"""Re-film a video along a new camera trajectory (ReCamMaster, Bai et al., ICCV 2025).

    Args:
        tokenizer: the ``google/umt5-xxl`` tokenizer.
        text_encoder: the umT5 encoder.
        vae: the Wan2.1 ``AutoencoderKLWan``.
        transformer: the :class:`ReCamMasterTransformer3DModel`.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        text_encoder: UMT5EncoderModel,
        vae: AutoencoderKLWan,
        transformer: ReCamMasterTransformer3DModel,
    ) -> None:
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer)
        # the VAE on whole clips rather than diffusers' chunks: the same video to float rounding, faster for small
        # clips, but its memory grows with the clip and it bypasses offloading hooks (``load_pipeline`` decides)
        self.whole_clip_vae = False

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, torch_dtype: torch.dtype | None = None, **_: object
    ) -> ReCamMasterPipeline:
        """A pipeline saved with ``save_pretrained``: each component from its subfolder, by ``model_index.json``.

        diffusers' own loader looks a component's base classes up in the module that defines it, which
        fails for classes outside diffusers and transformers such as our transformer; this reads the
        same layout directly.
        """
        folder = Path(folder)
        index_path = folder / "model_index.json"
        if not index_path.is_file():
            raise ModelFilesNotFoundError(f"{folder}: not a saved pipeline (no model_index.json)")
        components = {}
        for name, entry in json.loads(index_path.read_text()).items():
            if name.startswith("_"):  # _class_name, _diffusers_version
                continue
            library, class_name = entry
            component_class = getattr(importlib.import_module(library), class_name)
            options = {} if name == "tokenizer" else {"torch_dtype": torch_dtype}
            components[name] = component_class.from_pretrained(folder / name, **options)
        return cls(**components)

    @classmethod
    def from_official(cls, weights: OfficialWeights, torch_dtype: torch.dtype = torch.bfloat16) -> ReCamMasterPipeline:
        """The pipeline from the files users download (Wan2.1-T2V-1.3B and ``step20000.ckpt``), on the CPU."""
        return cls(
            tokenizer=load_tokenizer(weights.tokenizer),
            text_encoder=load_umt5_encoder(weights.text_encoder, torch_dtype=torch_dtype),
            vae=load_wan_vae(weights.vae, torch_dtype=torch_dtype),
            transformer=load_transformer(
                weights.transformer, recammaster_checkpoint=weights.recammaster_checkpoint, torch_dtype=torch_dtype
            ),
        )

    @classmethod
    def load(cls, model_dir: str | Path | None, torch_dtype: torch.dtype = torch.bfloat16) -> ReCamMasterPipeline:
        """A saved pipeline folder (``model_index.json``), or the official files in ``model_dir`` or the hub cache.

        Raises :class:`ModelFilesNotFoundError` naming what is missing and how to get it.
        """
        if model_dir is not None and (Path(model_dir) / "model_index.json").is_file():
            return cls.from_pretrained(model_dir, torch_dtype=torch_dtype)
        weights = find_official_weights(model_dir, missing_ok=False)
        return cls.from_official(weights, torch_dtype=torch_dtype)

    # ------------------------------------------------------------------
    # Steps of the recipe
    # ------------------------------------------------------------------

    def encode_prompt(self, prompt: str, negative_prompt: str | None, max_sequence_length: int = 512):
        """Positive and (with guidance) negative embeddings, (1, L, D) each, in the transformer's dtype."""
        prompts = [prompt] if negative_prompt is None else [prompt, negative_prompt]
        embeddings = encode_prompt(
            self.tokenizer, self.text_encoder, prompts, max_length=max_sequence_length, device=self._execution_device
        ).to(self.transformer.dtype)
        return embeddings[:1], (embeddings[1:] if negative_prompt is not None else None)

    def prepare_source_latents(self, video: np.ndarray, num_frames: int, height: int, width: int) -> torch.Tensor:
        """Frames 0..num_frames-1, fitted to height x width, encoded to normalised latents (1, C, F, h, w)."""
        pixels = preprocess_frames(video[:num_frames], height, width)[None]  # (1, 3, T, H, W) in [-1, 1]
        latents = encode_video(self.vae, pixels.to(self._execution_device), whole_clip=self.whole_clip_vae)
        return latents.to(self.transformer.dtype)

    def prepare_camera(self, trajectory: Trajectory | torch.Tensor | np.ndarray) -> torch.Tensor:
        """(1, F, 12) condition: the trajectory relative to its own first frame, at frames 0, 4, 8, ..."""
        if isinstance(trajectory, Trajectory):
            trajectory = trajectory.condition()
        camera = torch.as_tensor(np.asarray(trajectory), dtype=torch.float32)
        if camera.ndim != 2 or camera.shape[1] != CONDITION_SIZE:
            raise ValueError(f"a camera condition must have shape (latent frames, 12), got {tuple(camera.shape)}")
        return camera[None].to(self._execution_device, self.transformer.dtype)

    def prepare_latents(
        self, shape: tuple[int, ...], generator: torch.Generator | None, latents: torch.Tensor | None
    ) -> torch.Tensor:
        """Float32 Gaussian noise from a CPU generator (seed 0 unless given), then moved and cast, as upstream."""
        if latents is None:
            generator = generator or torch.Generator("cpu").manual_seed(DEFAULT_SEED)
            latents = torch.randn(shape, generator=generator, dtype=torch.float32, device=generator.device)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        return latents.to(self._execution_device, self.transformer.dtype)

    def denoise(
        self,
        latents: torch.Tensor,
        source: torch.Tensor,
        camera: torch.Tensor,
        positive: torch.Tensor,
        negative: torch.Tensor | None,
        sigmas: torch.Tensor,
        guidance_scale: float = DEFAULT_GUIDANCE,
        callback_on_step_end: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
        source_reuse: int = 1,
        solver: str = "euler",
        still_source: torch.Tensor | None = None,
        motion_guidance: float = 1.0,
    ) -> torch.Tensor:
        """Euler steps from noisy target ``latents`` to clean ones, the clean ``source`` latents alongside.

        Guidance (with ``negative``) applies when ``guidance_scale`` > 1. Training samples call this too.
        ``source_reuse`` N > 1: a full forward every N steps records the source tokens' keys and values, and the
        steps between run on the target tokens alone (:mod:`recammaster.models.source_cache`); 1 is exact.
        ``motion_guidance`` > 1 (with ``still_source``, the latents of the source's first frame held still) adds
        ``(motion_guidance - 1)`` times the caption's velocity with the source minus that with the still source.
        """
        use_guidance = guidance_scale > 1.0 and negative is not None
        use_motion = motion_guidance > 1.0
        if source_reuse < 1:
            raise ValueError(f"source_reuse must be at least 1 (1: every step in full), got {source_reuse}")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        if use_motion and still_source is None:
            raise ValueError("motion_guidance > 1 needs still_source, the latents of the source's first frame held")

        group = getattr(self, "guidance_group", None)  # set by recammaster.pipeline.parallel.enable_multi_gpu
        if source_reuse > 1 and group is not None:
            raise ValueError("source_reuse > 1 does not work with guidance branches on separate GPUs yet")
        if use_motion and (source_reuse > 1 or group is not None):
            raise ValueError("motion_guidance does not work with source_reuse > 1 or guidance branches on several GPUs")
        cache = SourceKVCache.attach(self.transformer) if source_reuse > 1 else None
        steps_done = itertools.count()

        def branch(noisy: torch.Tensor, t: torch.Tensor, text: torch.Tensor, name: str, full: bool) -> torch.Tensor:
            whole = torch.cat([noisy, source], dim=2)
            if cache is None:
                return self.transformer(whole, t, text, camera, source_velocity=False).sample
            if full:
                with cache.recording(name):
                    return self.transformer(whole, t, text, camera, source_velocity=False).sample
            with cache.reusing(name):
                return self.transformer(noisy, t, text, camera, target_only=True).sample

        def velocity(noisy: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
            t = timestep.reshape(1).expand(len(noisy)).to(noisy.device, noisy.dtype)  # the DiT sees t in latent dtype
            full = next(steps_done) % source_reuse == 0
            if use_guidance and group is not None:  # the two branches on two halves of the GPUs
                model_input = torch.cat([noisy, source], dim=2)  # (B, C, 2F, h, w): target first
                predicted, unconditional = guided_velocity(self.transformer, model_input, t, positive, negative,
                                                           camera, group)  # fmt: skip
            elif use_guidance and cache is None and not self.transformer.sequence_split:  # one call, both captions:
                # they share the first block's self-attention
                whole = torch.cat([noisy, source], dim=2)
                both = self.transformer(whole, t, (positive, negative), camera, source_velocity=False).sample
                predicted, unconditional = both.chunk(2)
            else:
                predicted = branch(noisy, t, positive, "caption", full)
                unconditional = branch(noisy, t, negative, "negative", full) if use_guidance else None
            conditional = predicted
            if use_guidance:
                predicted = unconditional + guidance_scale * (predicted - unconditional)
            if use_motion:
                still = self.transformer(torch.cat([noisy, still_source], dim=2), t, positive, camera,
                                         source_velocity=False).sample  # fmt: skip
                predicted = predicted + (motion_guidance - 1.0) * (conditional - still)
            return predicted

        try:
            with self.progress_bar(total=len(sigmas) - 1) as progress:

                def after_step(step: int, current: torch.Tensor) -> torch.Tensor | None:
                    progress.update()
                    return callback_on_step_end(step, current) if callback_on_step_end else None

                return SOLVERS[solver](velocity, latents, sigmas, after_step)
        finally:
            if cache is not None:
                cache.detach()

    # ------------------------------------------------------------------
    # The recipe
    # ------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        video: np.ndarray,
        trajectory: Trajectory | str | Path | torch.Tensor | np.ndarray,
        prompt: str,
        negative_prompt: str | None = DEFAULT_NEGATIVE_PROMPT,
        height: int = DEFAULT_HEIGHT,
        width: int = DEFAULT_WIDTH,
        num_frames: int = DEFAULT_NUM_FRAMES,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        shift: float = DEFAULT_SHIFT,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
        max_sequence_length: int = 512,
        source_reuse: int = 1,
        solver: str = "euler",
        motion_guidance: float = 1.0,
    ) -> ReCamMasterPipelineOutput | tuple:
        """Re-render ``video`` ((T, H, W, 3) uint8 frames, T >= num_frames) along ``trajectory``.

        ``trajectory`` is a :class:`Trajectory` (num_frames poses), anything ``load_trajectory`` takes
        (a preset name or number, a file), or a ready (num_frames // 4 + 1, 12) condition.

        ``source_reuse`` N > 1 is the fast mode: a full forward every N steps, the target tokens alone between
        (about half the work), reusing the source tokens' keys and values; its quality cost is in
        ``benchmarks/RESULTS.md``. 1, the default, is exact. ``solver="ab2"`` integrates to second order, so
        fewer ``num_inference_steps`` reach upstream's Euler result more closely. ``motion_guidance`` > 1 pushes
        the result away from what the model makes of the source's first frame held still (a second transformer
        pass a step; 1, the default, is upstream's sampling).
        """
        # 1. Check inputs
        if isinstance(trajectory, str | Path):
            trajectory = load_trajectory(trajectory, num_frames=num_frames)
        video = np.asarray(video)
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ValueError(f"video must be (frames, height, width, 3) uint8 frames, got {video.shape} {video.dtype}")
        check_render_inputs(
            num_frames, height, width, num_inference_steps, guidance_scale, video_frames=len(video),
            trajectory_frames=trajectory.num_frames if isinstance(trajectory, Trajectory) else None,
            motion_guidance=motion_guidance,
        )  # fmt: skip
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"output_type must be 'np', 'pt' or 'latent', got {output_type!r}")
        use_guidance = guidance_scale > 1.0

        # 2. Text, source latents and camera
        positive, negative = self.encode_prompt(prompt, negative_prompt or "" if use_guidance else None,
                                                max_sequence_length)  # fmt: skip
        source = self.prepare_source_latents(video, num_frames, height, width)
        still_source = None
        if motion_guidance > 1.0:
            still_video = np.broadcast_to(video[:1], (num_frames, *video.shape[1:]))
            still_source = self.prepare_source_latents(still_video, num_frames, height, width)
        camera = self.prepare_camera(trajectory)
        if camera.shape[1] != source.shape[2]:
            raise ValueError(f"the camera has {camera.shape[1]} latent frames, the video {source.shape[2]}")

        # 3. Noise and schedule
        latents = self.prepare_latents(tuple(source.shape), generator, latents)
        sigmas = flow_match_sigmas(num_inference_steps, shift)

        # 4. Denoise the target half; the clean source latents ride along on the frame axis
        latents = self.denoise(latents, source, camera, positive, negative, sigmas, guidance_scale,
                               callback_on_step_end, source_reuse, solver, still_source, motion_guidance)  # fmt: skip

        # 5. Decode
        if output_type == "latent":
            frames = latents
        else:
            decoded = decode_latents(self.vae, latents.to(self.vae.dtype), whole_clip=self.whole_clip_vae)[0]
            frames = postprocess_frames(decoded) if output_type == "np" else decoded
        self.maybe_free_model_hooks()
        return ReCamMasterPipelineOutput(frames=frames) if return_dict else (frames,)
