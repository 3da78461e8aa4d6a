"""``recammaster train``: fit ReCamMaster on MultiCamVideo; ``data-process`` first caches the encoders' outputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from recammaster.cli.dataset import DatasetArg, NoProgressOpt
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


def _device(device: str | None) -> str:
    """cuda if present; a bare ``cuda`` under torchrun means this process's GPU (LOCAL_RANK)."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise ReCamMasterError(f"--device: torch cannot use {device!r} ({error})") from error
    return device


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
    device = _device(device)

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
