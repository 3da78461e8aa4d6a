"""``recammaster train``: fit ReCamMaster on MultiCamVideo; ``data-process`` first caches the encoders' outputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from recammaster.cli.dataset import DatasetArg, NoProgressOpt
from recammaster.cli.options import OverwriteOpt, resolve_device
from recammaster.cli.render import DeviceOpt, HeightOpt, ModelDirOpt, WidthOpt
from recammaster.errors import ReCamMasterError

DATA_PROCESS_EXAMPLES = """Examples:

  recammaster train data-process data/MultiCamVideo-Dataset -o cache/

  torchrun --no-python --nproc_per_node 8 recammaster train data-process data/MultiCamVideo-Dataset -o cache/

  recammaster train data-process synthetic/ -o cache-256/ --height 256 --width 256 --model-dir my-pipeline/
"""

app = typer.Typer(help="Train ReCamMaster: cache latents, fit.", no_args_is_help=True)


def _shard(shard_index: int | None, num_shards: int | None) -> tuple[int, int]:
    """The flags, else torchrun's RANK and WORLD_SIZE, else one shard."""
    index = shard_index if shard_index is not None else int(os.environ.get("RANK", 0))
    count = num_shards if num_shards is not None else int(os.environ.get("WORLD_SIZE", 1))
    if count < 1 or not 0 <= index < count:
        raise ReCamMasterError(f"--shard-index must be in 0..{count - 1} for --num-shards {count}, got {index}")
    return index, count


@app.command("data-process", epilog=DATA_PROCESS_EXAMPLES)
def data_process(
    dataset: DatasetArg,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Cache folder: one .safetensors per clip, cache.json, the report.")
    ],
    model_dir: ModelDirOpt = None,
    height: HeightOpt = 480,
    width: WidthOpt = 832,
    frames: Annotated[int, typer.Option("--frames", help="Frames per clip from frame 0, 4k+1.")] = 81,
    device: DeviceOpt = None,
    shard_index: Annotated[
        int | None, typer.Option("--shard-index", help="Cache clips i with i % num_shards == index (default RANK).")
    ] = None,
    num_shards: Annotated[
        int | None, typer.Option("--num-shards", help="Processes sharing the work (default WORLD_SIZE).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Processes decoding videos ahead of the encoder.")] = 2,
    no_progress: NoProgressOpt = False,
) -> None:
    """Encode every clip with the VAE and its caption with umT5, once, so that training skips both encoders.

    Resumable: cached clips are skipped. Captions come from DATASET/metadata.csv (file_name,text).

    A clip that cannot be read is listed with its reason, the others are cached, and the exit status is 1.
    """
    from recammaster.training.cache import cache_dataset, check_cache_inputs, report_path

    index, count = _shard(shard_index, num_shards)
    if workers < 0:
        raise ReCamMasterError(f"--workers must be 0 or more, got {workers}")
    check_cache_inputs(dataset, output, height=height, width=width, num_frames=frames)
    device = resolve_device(device)

    import torch

    from recammaster.pipeline import ReCamMasterPipeline

    if no_progress:  # the loaders' bars too, or eight processes' logs fill with them
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    pipeline = ReCamMasterPipeline.load(model_dir, torch_dtype=dtype)
    pipeline.text_encoder.to(device)  # the transformer is not needed and stays where it loaded
    pipeline.vae.to(device)
    report = cache_dataset(
        pipeline, dataset, output, height=height, width=width, num_frames=frames, device=device,
        shard_index=index, num_shards=count, num_workers=workers, progress=not no_progress,
    )  # fmt: skip

    shard = f"shard {index} of {count}: " if count > 1 else ""
    typer.echo(
        f"{shard}encoded {report.encoded} clips, skipped {report.skipped} already cached, "
        f"{len(report.failed)} failed, of {report.clips}"
    )
    for path, reason in report.failed:
        typer.echo(f"failed: {path}: {reason}", err=True)
    if report.missing_captions:
        typer.echo(
            f"warning: {len(report.missing_captions)} clips have no caption in metadata.csv; they are cached with "
            "the empty caption (listed in the report)",
            err=True,
        )
    typer.echo(f"wrote {report_path(output, index, count)}")
    if report.failed:
        raise typer.Exit(1)


FIT_EXAMPLES = """Examples:

  recammaster train fit --dataset data/MultiCamVideo-Dataset --cache-dir cache/ --model-dir models/ -o runs/recam

  recammaster train fit --config configs/embedded.yaml               # run it again to resume

  torchrun --nproc_per_node 8 -m recammaster.cli train fit --config run.yaml --devices 8 --strategy ddp

  srun --ntasks-per-node 8 recammaster train fit --config run.yaml --devices 8 --num-nodes 4 --strategy fsdp
"""


def _option(flag: str, text: str, *extra: str):
    return typer.Option(flag, *extra, help=text, show_default=False)


@app.command("fit", epilog=FIT_EXAMPLES)
def fit_command(
    config: Annotated[Path | None, _option("--config", "A YAML file of options; the flags below override it.")] = None,
    output: Annotated[Path | None, _option("--output", "Run folder (default runs/recammaster).", "-o")] = None,
    model_dir: Annotated[Path | None, _option("--model-dir", "Official weights or a saved pipeline.")] = None,
    from_scratch: Annotated[bool | None, _option("--from-scratch", "A fresh transformer of --model-config.")] = None,
    model_config: Annotated[str | None, _option("--model-config", "Transformer size for --from-scratch.")] = None,
    conditioning: Annotated[
        str | None, _option("--conditioning", "How the source enters a --from-scratch model: frame, channel, view.")
    ] = None,
    init_checkpoint: Annotated[Path | None, _option("--init-checkpoint", "Official weights to start from.")] = None,
    warm_start: Annotated[
        Path | None, _option("--warm-start", "Weights whose matching tensors start a --from-scratch model.")
    ] = None,
    trainable: Annotated[str | None, _option("--trainable", "camera-attention (default), full or lora.")] = None,
    lora_rank: Annotated[int | None, _option("--lora-rank", "Rank of the LoRA adapters (default 64).")] = None,
    data: Annotated[str | None, _option("--data", "cached (default) or synthetic.")] = None,
    dataset: Annotated[Path | None, _option("--dataset", "The MultiCamVideo folder.")] = None,
    cache_dir: Annotated[Path | None, _option("--cache-dir", "Where `train data-process` wrote latents.")] = None,
    height: Annotated[int | None, _option("--height", "Synthetic frames' height (default 480).")] = None,
    width: Annotated[int | None, _option("--width", "Synthetic frames' width (default 832).")] = None,
    frames: Annotated[int | None, _option("--frames", "Synthetic clips' frames, 4k+1 (default 81).")] = None,
    pool_scenes: Annotated[int | None, _option("--pool-scenes", "synthetic-pool: scenes in the pool.")] = None,
    batch_size: Annotated[int | None, _option("--batch-size", "Pairs per GPU and step (default 1).")] = None,
    learning_rate: Annotated[float | None, _option("--learning-rate", "AdamW rate (default 1e-4).")] = None,
    max_steps: Annotated[int | None, _option("--max-steps", "Stop after this many steps (default 1000).")] = None,
    max_minutes: Annotated[float | None, _option("--max-minutes", "Stop (and save) after this long.")] = None,
    accumulate: Annotated[int | None, _option("--accumulate", "Gradient accumulation (default 1).")] = None,
    gradient_checkpointing: Annotated[
        bool | None, _option("--gradient-checkpointing/--no-gradient-checkpointing", "Default on.")
    ] = None,
    condition_noise: Annotated[
        str | None, _option("--condition-noise", "Noise the source latents at timesteps LOW,HIGH (paper: 200,500).")
    ] = None,
    condition_drop: Annotated[float | None, _option("--condition-drop", "Drop source latents (paper: 0.2).")] = None,
    text_drop: Annotated[float | None, _option("--text-drop", "Train on the empty caption this often.")] = None,
    accelerator: Annotated[str | None, _option("--accelerator", "auto (default), gpu or cpu.")] = None,
    devices: Annotated[str | None, _option("--devices", "GPUs per host: a number or auto.")] = None,
    num_nodes: Annotated[int | None, _option("--num-nodes", "Hosts (torchrun or SLURM start them).")] = None,
    strategy: Annotated[str | None, _option("--strategy", "auto, ddp, fsdp, deepspeed_stage_1/2.")] = None,
    precision: Annotated[str | None, _option("--precision", "bf16-mixed on GPU, 32-true on CPU.")] = None,
    checkpoint_every: Annotated[int | None, _option("--checkpoint-every", "Steps between checkpoints.")] = None,
    sample_every: Annotated[int | None, _option("--sample-every", "Steps between sample videos (0: none).")] = None,
    logger: Annotated[str | None, _option("--logger", "csv (default) or tensorboard.")] = None,
    seed: Annotated[int | None, _option("--seed", "Seeds data order, noise and initial weights (default 0).")] = None,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Train ReCamMaster; run the same command again to resume where it stopped.

    Weights go to RUN/checkpoints/step{N}.ckpt in the official flat format (they load into upstream's
    inference code and into `recammaster render`); RUN/trainer_state/last.ckpt holds what resuming needs.
    """
    from recammaster.training.fit import FitConfig, fit

    noise = None
    if condition_noise is not None:
        try:
            noise = [float(value) for value in condition_noise.split(",")]
        except ValueError as error:
            raise ReCamMasterError(f"--condition-noise takes LOW,HIGH timesteps, got {condition_noise!r}") from error
    if devices is not None and devices != "auto":
        devices = int(devices) if devices.isdigit() else devices
    overrides = {
        "output_dir": output, "model_dir": model_dir, "from_scratch": from_scratch, "model_config": model_config,
        "conditioning": conditioning, "init_checkpoint": init_checkpoint, "warm_start": warm_start,
        "trainable": trainable, "lora_rank": lora_rank, "data": data,
        "dataset": dataset, "cache_dir": cache_dir, "height": height, "width": width, "num_frames": frames,
        "pool_scenes": pool_scenes, "batch_size": batch_size, "learning_rate": learning_rate, "max_steps": max_steps,
        "max_minutes": max_minutes,
        "accumulate_grad_batches": accumulate, "gradient_checkpointing": gradient_checkpointing,
        "condition_noise": noise, "condition_drop": condition_drop, "text_drop": text_drop,
        "accelerator": accelerator, "devices": devices, "num_nodes": num_nodes, "strategy": strategy,
        "precision": precision, "checkpoint_every": checkpoint_every, "sample_every": sample_every, "logger": logger,
        "seed": seed,
    }  # fmt: skip
    overrides = {key: str(value) if isinstance(value, Path) else value for key, value in overrides.items()}
    if config is not None:
        settings = FitConfig.from_yaml(config, **overrides)
    else:
        settings = FitConfig(**{key: value for key, value in overrides.items() if value is not None})
    run_dir = fit(settings, overwrite=overwrite, progress=not no_progress)
    typer.echo(f"trained to step {_last_step(run_dir)}; weights in {run_dir / 'checkpoints'}")


def _last_step(run_dir: Path) -> int:
    steps = [int(path.stem.removeprefix("step")) for path in (run_dir / "checkpoints").glob("step*.ckpt")]
    return max(steps, default=0)


VAE_EXAMPLES = """Examples:

  recammaster train vae --config configs/embedded-vae.yaml           # run it again to resume

  recammaster train vae --config configs/embedded-vae.yaml --max-minutes 20     # train on where it stopped

  recammaster train vae --config configs/embedded-vae.yaml -o runs/vae-try --max-steps 200 --overwrite
"""


@app.command("vae", epilog=VAE_EXAMPLES)
def vae_command(
    config: Annotated[Path | None, _option("--config", "A YAML file of options (VaeConfig's fields).")] = None,
    output: Annotated[Path | None, _option("--output", "Run folder (default runs/vae).", "-o")] = None,
    max_steps: Annotated[int | None, _option("--max-steps", "Stop after this many steps in all.")] = None,
    max_minutes: Annotated[float | None, _option("--max-minutes", "Stop (and save) after this much training.")] = None,
    init_from: Annotated[Path | None, _option("--init-from", "Start from this VAE folder's weights.")] = None,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Train the embedded model's small Wan-style VAE from scratch on synthetic clips; run again to resume.

    RUN/vae/ is a diffusers AutoencoderKLWan folder with its latent statistics (`load_wan_vae` reads it);
    RUN/vae_metrics.json holds its held-out PSNR (whole clips, and the pixels showing characters) and how long it
    trained.
    """
    import json

    from recammaster.training.vae import METRICS_FILE, VAE_FOLDER, VaeConfig, train_vae

    overrides = {"output_dir": None if output is None else str(output), "max_steps": max_steps,
                 "max_minutes": max_minutes, "init_from": None if init_from is None else str(init_from)}  # fmt: skip
    if config is not None:
        settings = VaeConfig.from_yaml(config, **overrides)
    else:
        settings = VaeConfig(**{key: value for key, value in overrides.items() if value is not None})
    run_dir = train_vae(settings, overwrite=overwrite, progress=not no_progress)
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    characters = metrics.get("character_psnr_db")
    typer.echo(f"trained to step {metrics['steps']} in {metrics['train_minutes']:.1f} min; held-out PSNR "
               f"{metrics['psnr_db']:.2f} dB" + ("" if characters is None else f" ({characters:.2f} dB on characters)")
               + f"; VAE in {run_dir / VAE_FOLDER}")  # fmt: skip
