"""``fit``: one training run from a config, resumable, on one GPU, several, or several hosts.

A run lives in one folder: ``config.yaml`` (what was asked), ``checkpoints/step{N}.ckpt`` (official-format
weights), ``trainer_state/last.ckpt`` (what resuming needs), ``logs/`` (CSV, and TensorBoard when
installed) and ``samples/``. Running the same command again resumes from ``trainer_state/last.ckpt`` at the
same step, with the same data order and the same random draws. Starting a different run in a folder
that holds one is refused unless asked (``overwrite``).

The base model is the official Wan2.1/ReCamMaster files or a saved pipeline (``model_dir``), or a fresh
transformer of a named size trained from scratch (``from_scratch``) with the VAE and text encoder of
``model_dir``. Data is cached MultiCamVideo latents (``data: cached``) or the synthetic engine rendering
pairs on the fly (``data: synthetic``). Several GPUs: ``devices``/``num_nodes`` with ``strategy`` ddp,
fsdp or deepspeed_stage_1/2 (deepspeed when installed); launch with ``torchrun`` or SLURM's ``srun``,
which Lightning detects.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ThroughputMonitor
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from recammaster.data.multicam import DatasetError
from recammaster.data.synth import SyntheticPairs
from recammaster.errors import OutputExistsError, ReCamMasterError
from recammaster.fileio import write_text_atomic
from recammaster.models.attention import ATTENTION_KERNELS, DEFAULT_ATTENTION, set_attention
from recammaster.models.configs import transformer_config
from recammaster.models.transformer import CONDITIONINGS, ReCamMasterTransformer3DModel
from recammaster.models.weights import load_transformer, warm_start
from recammaster.pipeline.recammaster_pipeline import ReCamMasterPipeline
from recammaster.training.callbacks import OfficialCheckpoints, SampleVideos, TimeLimit, TrainerState
from recammaster.training.data import STILL_SOURCES, CachedPairs, SyntheticLatentPool, TrainingOrder
from recammaster.training.module import CHECKPOINTING, ReCamMasterTraining
from recammaster.training.objective import ConditionAugmentation
from recammaster.training.schedule import TIMESTEP_WEIGHTINGS, RateSchedule
from recammaster.training.trainable import TRAINABLE_SETS

STRATEGIES = ("auto", "ddp", "fsdp", "deepspeed_stage_1", "deepspeed_stage_2")
DATA_SOURCES = ("cached", "synthetic", "synthetic-pool")
STATE_FILE = "trainer_state/last.ckpt"
THROUGHPUT_WINDOW = 10  # steps over which the logged samples per second are measured
# Options a resumed run may change: they decide how long and how loudly it runs, not what it computes
# (max_steps only without a decay, which ends at max_steps).
RESUMABLE_CHANGES = frozenset({"max_steps", "max_minutes", "checkpoint_every", "sample_every", "sample_count",
                               "sample_steps", "log_every", "num_workers", "logger", "compile_blocks",
                               "attention"})  # fmt: skip


@dataclass
class FitConfig:
    """Everything a run depends on. Field names are the YAML keys and, with dashes, the CLI options."""

    output_dir: str = "runs/recammaster"
    # model
    model_dir: str | None = None
    from_scratch: bool = False
    model_config: str | dict[str, Any] | None = None
    conditioning: str = "frame"  # from_scratch: how the source enters (frame, channel, view; the paper's Table 3)
    init_checkpoint: str | None = None  # official-format weights to start from (upstream's --resume_ckpt_path)
    warm_start: str | None = None  # weights whose tensors of matching name and shape start a from_scratch model
    trainable: str = "camera-attention"
    lora_rank: int = 64
    # data
    data: str = "cached"
    dataset: str | None = None
    cache_dir: str | None = None
    height: int = 480
    width: int = 832
    num_frames: int = 81
    pairs_per_scene: int = 10
    pool_scenes: int = 100  # synthetic-pool: scenes rendered and encoded once (90 pairs each)
    pool_refilm: int = 0  # synthetic-pool: >0 pairs cameras that share frame 0 instead (SyntheticLatentPool)
    pool_file: str | None = None  # synthetic-pool: where the pool is kept (default <output_dir>/scene_pool.pt)
    pool_walk_share: float | None = None  # synthetic-pool: the chance a character walks (default: 1 in 6)
    pool_still_share: float = 0.0  # synthetic-pool: the chance a re-filming stands still (needs pool_refilm)
    pool_still_sources: str = "none"  # synthetic-pool: "only"/"also": pairs whose source stands at its group's start
    pool_twin_speeds: list[float] = field(default_factory=list)  # synthetic-pool: each pair also on twins whose
    # characters' time runs this many times as fast ([0]: they stand as at frame 0; SyntheticLatentPool)
    batch_size: int = 1
    num_workers: int = 0
    # optimisation (upstream's README: lr 1e-4, AdamW with torch's defaults)
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    max_steps: int = 1000
    warmup_steps: int = 0  # the rate rises linearly over these steps (upstream: none)
    decay_steps: int = 0  # and falls linearly to 0 over the last of max_steps (upstream: none)
    max_minutes: float | None = None  # stop (and save the trainer state) after this long in this invocation
    accumulate_grad_batches: int = 1
    gradient_checkpointing: bool | str = True  # or "selective": keep each block's self-attention output
    compile_blocks: bool = False  # torch.compile each transformer block (the first steps compile)
    attention: str = "native"  # the attention kernel (models.attention.ATTENTION_KERNELS; flash4: FlashAttention-4)
    precision: str | None = None  # default: bf16-mixed on GPU, 32 on CPU
    seed: int = 0
    # the paper's tricks (off: upstream's released recipe)
    condition_noise: list[float] | None = None
    condition_drop: float = 0.0
    text_drop: float = 0.0
    character_weight: float = 1.0  # synthetic-pool: the loss weighs latents covered by characters this many times
    timestep_weighting: str = "upstream"  # the loss weight of each noise level: upstream's bump, or flat
    # hardware
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    # outputs
    checkpoint_every: int = 1000
    checkpoint_dtype: str = "bfloat16"
    sample_every: int = 0
    sample_count: int = 2
    sample_steps: int = 20
    log_every: int = 10
    logger: str = "csv"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> FitConfig:
        """A config file's values, then ``overrides`` (those not None) on top; unknown keys are an error."""
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ReCamMasterError(f"{path}: not a readable YAML config ({error})") from error
        if not isinstance(values, dict):
            raise ReCamMasterError(f"{path}: a config is a mapping of option: value")
        values = {key.replace("-", "_"): value for key, value in values.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ReCamMasterError(f"{path}: unknown options {', '.join(unknown)}")
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def check(self) -> None:
        """Raise naming the option for anything that cannot work, before any model loads."""
        problems = []
        if self.trainable not in TRAINABLE_SETS:
            problems.append(f"trainable must be one of {', '.join(TRAINABLE_SETS)}, got {self.trainable!r}")
        if self.data not in DATA_SOURCES:
            problems.append(f"data must be one of {', '.join(DATA_SOURCES)}, got {self.data!r}")
        if self.data == "cached" and not self.dataset:
            problems.append("data: cached needs dataset (the MultiCamVideo folder) and cache_dir")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
            problems.append(f"strategy {self.strategy} needs deepspeed: pip install deepspeed")
        if self.from_scratch and self.model_config is None:
            problems.append("from_scratch needs model_config (a size name or constructor arguments)")
        if self.warm_start and not self.from_scratch:
            problems.append("warm_start starts a from_scratch model; without from_scratch use init_checkpoint")
        if self.warm_start and self.init_checkpoint:
            problems.append("warm_start and init_checkpoint both set the starting weights; keep one")
        if self.conditioning not in CONDITIONINGS:
            problems.append(f"conditioning must be one of {', '.join(CONDITIONINGS)}, got {self.conditioning!r}")
        elif self.conditioning != "frame" and not self.from_scratch:
            problems.append(f"conditioning: {self.conditioning} needs from_scratch (pretrained weights are frame's)")
        if self.model_dir is None and self.data in ("synthetic", "synthetic-pool"):
            problems.append(f"data: {self.data} needs model_dir (its VAE and text encoder encode the frames)")
        if not isinstance(self.pool_refilm, int) or self.pool_refilm < 0:
            problems.append(f"pool_refilm must be a whole number of cameras (0 or more), got {self.pool_refilm!r}")
        elif self.pool_refilm and self.data != "synthetic-pool":
            problems.append(f"pool_refilm works with data: synthetic-pool, not {self.data}")
        for name in ("pool_walk_share", "pool_still_share"):
            share = getattr(self, name)
            if share is not None and (not isinstance(share, int | float) or not 0 <= share <= 1):
                problems.append(f"{name} must be a chance between 0 and 1, got {share!r}")
            elif share and self.data != "synthetic-pool":
                problems.append(f"{name} works with data: synthetic-pool, not {self.data}")
        if self.pool_still_share and not self.pool_refilm:
            problems.append("pool_still_share needs pool_refilm > 0: the still cameras are re-filmings")
        if self.pool_still_sources not in STILL_SOURCES:
            problems.append(f"pool_still_sources must be one of {', '.join(STILL_SOURCES)}, got "
                            f"{self.pool_still_sources!r}")  # fmt: skip
        elif self.pool_still_sources != "none" and not self.pool_refilm:
            problems.append("pool_still_sources needs pool_refilm > 0: the sources stand where their groups start")
        if not isinstance(self.pool_twin_speeds, list) or not all(
            isinstance(speed, int | float) and speed >= 0 for speed in self.pool_twin_speeds
        ):
            problems.append(f"pool_twin_speeds must be a list of speeds (0 or more), got {self.pool_twin_speeds!r}")
        elif self.pool_twin_speeds and self.data != "synthetic-pool":
            problems.append(f"pool_twin_speeds works with data: synthetic-pool, not {self.data}")
        if self.pool_file is not None and self.data != "synthetic-pool":
            problems.append(f"pool_file works with data: synthetic-pool, not {self.data}")
        if not isinstance(self.character_weight, int | float) or self.character_weight <= 0:
            problems.append(f"character_weight must be a positive number, got {self.character_weight!r}")
        elif self.character_weight != 1 and self.data != "synthetic-pool":
            problems.append(f"character_weight needs data: synthetic-pool (its character masks), not {self.data}")
        if self.timestep_weighting not in TIMESTEP_WEIGHTINGS:
            problems.append(f"timestep_weighting must be one of {', '.join(TIMESTEP_WEIGHTINGS)}, "
                            f"got {self.timestep_weighting!r}")  # fmt: skip
        for name in ("max_steps", "batch_size", "accumulate_grad_batches", "num_nodes"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        try:
            self.rate_schedule()
        except ValueError as error:
            problems.append(str(error))
        if self.attention not in ATTENTION_KERNELS:
            problems.append(f"attention must be one of {', '.join(ATTENTION_KERNELS)}, got {self.attention!r}")
        if self.gradient_checkpointing not in CHECKPOINTING:
            problems.append(f"gradient_checkpointing must be true, false or selective, "
                            f"got {self.gradient_checkpointing!r}")  # fmt: skip
        if self.logger not in ("csv", "tensorboard"):
            problems.append(f"logger must be csv or tensorboard, got {self.logger!r}")
        if self.condition_noise is not None and len(self.condition_noise) != 2:
            problems.append(f"condition_noise is two timesteps [low, high], got {self.condition_noise}")
        if problems:
            raise ReCamMasterError("training config: " + "; ".join(problems))

    def rate_schedule(self) -> RateSchedule:
        return RateSchedule(self.warmup_steps, self.decay_steps, self.max_steps)

    def augmentation(self) -> ConditionAugmentation:
        noise = tuple(self.condition_noise) if self.condition_noise is not None else None
        try:
            return ConditionAugmentation(noise, self.condition_drop, self.text_drop)
        except ValueError as error:
            raise ReCamMasterError(f"training config: {error}") from error

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


class PairsDataModule(L.LightningDataModule):
    """Batches in :class:`TrainingOrder`, starting where the run stands (so a resumed run continues its order)."""

    def __init__(self, dataset: Dataset, *, endless: bool, batch_size: int, seed: int, num_workers: int) -> None:
        super().__init__()
        self.dataset, self.endless = dataset, endless
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        if self.endless:  # the synthetic engine renders on this process's device
            self.dataset.device = trainer.strategy.root_device
        start = trainer.global_step * trainer.accumulate_grad_batches * self.batch_size
        order = TrainingOrder(None if self.endless else len(self.dataset), seed=self.seed, start=start,
                              rank=trainer.global_rank, world_size=trainer.world_size)  # fmt: skip
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=order, num_workers=self.num_workers)


def _load_models(config: FitConfig, dtype: torch.dtype) -> tuple[ReCamMasterTransformer3DModel, Any]:
    """The transformer to train and the pipeline whose VAE and text encoder it may use (or None)."""
    pipeline = ReCamMasterPipeline.load(config.model_dir, torch_dtype=dtype) if config.model_dir else None
    if config.from_scratch:
        arguments = config.model_config
        arguments = transformer_config(arguments) if isinstance(arguments, str) else dict(arguments)
        transformer = ReCamMasterTransformer3DModel(**{"conditioning": config.conditioning, **arguments})
        if config.warm_start:
            fresh = warm_start(transformer, config.warm_start)
            rank_zero_info(f"warm start from {config.warm_start}; fresh: {', '.join(fresh) or 'nothing'}")
    else:
        if pipeline is None:
            raise ReCamMasterError("training config: model_dir (the weights to fine-tune) or from_scratch is needed")
        transformer = pipeline.transformer
    if config.init_checkpoint:  # in the dtype the run would have had: a float32 checkpoint goes on exactly
        arguments = {key: value for key, value in transformer.config.items() if not key.startswith("_")}
        transformer = load_transformer(config.init_checkpoint, config=arguments, torch_dtype=transformer.dtype)
    return transformer, pipeline


POOL_FILE = "scene_pool.pt"  # a synthetic-pool run's rendered and encoded scenes, reused when it resumes


def _dataset(config: FitConfig, device: torch.device, pipeline=None, *, held_out: bool = False) -> tuple[Dataset, bool]:
    """The training pairs and whether they are endless; ``held_out``: a small set from the next seed, for samples."""
    seed = config.seed + held_out
    if config.data == "cached":
        return CachedPairs(config.dataset, config.cache_dir, seed=seed), False
    size = {"height": config.height, "width": config.width, "num_frames": config.num_frames}
    if config.data == "synthetic-pool":
        pipeline.vae.to(device)
        pipeline.text_encoder.to(device)
        kept = Path(config.pool_file) if config.pool_file else Path(config.output_dir) / POOL_FILE
        pool = SyntheticLatentPool(pipeline.vae, pipeline.tokenizer, pipeline.text_encoder, seed=seed,
                                   num_scenes=1 if held_out else config.pool_scenes, refilm=config.pool_refilm,
                                   walk_share=config.pool_walk_share, still_share=config.pool_still_share,
                                   still_sources=config.pool_still_sources,
                                   twin_speeds=config.pool_twin_speeds,
                                   device=device, cache=None if held_out else kept, **size)  # fmt: skip
        if config.character_weight != 1 and pool.characters is None:
            raise DatasetError(f"{kept}: a scene pool written before character masks were kept, which "
                               "character_weight needs; name another pool file")  # fmt: skip
        return pool, False
    return SyntheticPairs(seed=seed, device=device, pairs_per_scene=config.pairs_per_scene, **size), True


def batch_size(batch: dict[str, Any]) -> int:
    """Samples in a training batch (for the logged throughput): every kind of batch carries its cameras."""
    return len(batch["camera"])


def lightning_strategy(name: str) -> Any:
    """Lightning's strategy for a name; FSDP wraps each transformer block and gathers full state dicts."""
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        from recammaster.models.transformer import ReCamMasterTransformerBlock

        return FSDPStrategy(auto_wrap_policy={ReCamMasterTransformerBlock}, state_dict_type="full",
                            use_orig_params=True)  # fmt: skip  # frozen and trained weights share wrapped units
    return name


def run_logger(config: Any, run_dir: Path) -> Any:
    """A logger writing to ``logs/chunk{k}``: one folder per invocation, so a resumed run never loses old logs."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    chunk = f"chunk{len(list((run_dir / 'logs').glob('chunk*'))):03d}"
    logger_class = TensorBoardLogger if config.logger == "tensorboard" else CSVLogger
    return logger_class(run_dir, name="logs", version=chunk)


def prepare_run_dir(config: Any, *, overwrite: bool = False) -> tuple[Path, Path | None]:
    """The run folder, and the trainer state to resume from when it holds the same run."""
    run_dir = Path(config.output_dir)
    saved = run_dir / "config.yaml"
    state = run_dir / STATE_FILE
    if saved.is_file() and not overwrite:
        before = yaml.safe_load(saved.read_text()) or {}
        now = dataclasses.asdict(config)
        decays = bool(getattr(config, "decay_steps", 0))
        resumable = RESUMABLE_CHANGES - {"max_steps"} if decays else RESUMABLE_CHANGES
        if changed := sorted(key for key in set(before) | set(now) if key not in resumable
                             and before.get(key) != now.get(key)):  # fmt: skip
            why = " (its learning rate falls to 0 at max_steps: to train on, start a new run from its last " \
                  "checkpoint with init_checkpoint)" if decays and "max_steps" in changed else ""  # fmt: skip
            raise OutputExistsError(run_dir, f"holds a run with a different {', '.join(changed)} ({saved}){why}; "
                                             "pick another output_dir")  # fmt: skip
        write_text_atomic(saved, config.to_yaml(), overwrite=True)
        return run_dir, state if state.is_file() else None
    if overwrite and run_dir.exists():
        for name in ("config.yaml", "trainer_state", "checkpoints", "logs", "samples", POOL_FILE):
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    write_text_atomic(saved, config.to_yaml(), overwrite=True)
    return run_dir, None


def fit(config: FitConfig, *, overwrite: bool = False, progress: bool = True) -> Path:
    """Train (or resume) the run ``config`` describes; returns the run folder."""
    config.check()
    augmentation = config.augmentation()
    run_dir, resume_from = prepare_run_dir(config, overwrite=overwrite)
    L.seed_everything(config.seed, workers=True, verbose=False)

    on_gpu = torch.cuda.is_available() and config.accelerator in ("auto", "gpu", "cuda")
    precision = config.precision or ("bf16-mixed" if on_gpu else "32-true")
    dtype = torch.bfloat16 if on_gpu else torch.float32
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))  # torchrun, srun, Lightning
    device = torch.device("cuda", local_rank) if on_gpu else torch.device("cpu")
    if config.data == "cached":
        dataset, endless = _dataset(config, device)  # before the models: a missing cache fails in a second
    transformer, pipeline = _load_models(config, dtype)
    if config.attention != DEFAULT_ATTENTION:
        set_attention(transformer, config.attention)
    if config.data != "cached":
        dataset, endless = _dataset(config, device, pipeline)
    empty_text = dataset.empty_text() if hasattr(dataset, "empty_text") else None
    module = ReCamMasterTraining(
        transformer, trainable=config.trainable, lora_rank=config.lora_rank, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, rate_schedule=config.rate_schedule(), augmentation=augmentation,
        gradient_checkpointing=config.gradient_checkpointing, compile_blocks=config.compile_blocks, seed=config.seed,
        vae=pipeline.vae if pipeline is not None else None,
        text_encoder=pipeline.text_encoder if pipeline is not None and config.data == "synthetic" else None,
        tokenizer=pipeline.tokenizer if pipeline is not None else None, empty_text=empty_text,
        character_weight=config.character_weight,
        timestep_weighting=config.timestep_weighting,
    )  # fmt: skip
    callbacks: list[L.Callback] = [
        ThroughputMonitor(batch_size_fn=batch_size, window_size=THROUGHPUT_WINDOW),
        OfficialCheckpoints(run_dir, config.checkpoint_every, getattr(torch, config.checkpoint_dtype)),
        TrainerState(run_dir / STATE_FILE, config.checkpoint_every),
    ]
    if config.max_minutes:
        callbacks.append(TimeLimit(config.max_minutes))
    if config.sample_every > 0 and pipeline is not None:
        held_out = _dataset(config, device, pipeline, held_out=True)[0]
        examples = [held_out[index if endless else (index, 0)] for index in range(config.sample_count)]
        callbacks.append(SampleVideos(run_dir, examples, config.sample_every, num_inference_steps=config.sample_steps))
    trainer = L.Trainer(
        accelerator=config.accelerator, devices=config.devices, num_nodes=config.num_nodes,
        strategy=lightning_strategy(config.strategy), precision=precision, max_steps=config.max_steps,
        accumulate_grad_batches=config.accumulate_grad_batches, log_every_n_steps=config.log_every,
        logger=run_logger(config, run_dir), callbacks=callbacks, use_distributed_sampler=False,
        enable_progress_bar=progress, enable_model_summary=False, enable_checkpointing=False, default_root_dir=run_dir,
    )  # fmt: skip
    datamodule = PairsDataModule(dataset, endless=endless, batch_size=config.batch_size, seed=config.seed,
                                 num_workers=config.num_workers if config.data == "cached" else 0)  # fmt: skip
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    return run_dir
