"""Options shared by several commands, defined once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from recammaster.errors import ReCamMasterError

OutputOpt = Annotated[Path, typer.Option("-o", "--output", help="File to write.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace the output file if it exists.")]
FramesOpt = Annotated[int, typer.Option("--frames", help="Frames of generated trajectories (4k+1 for the model).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same result.")]


def resolve_device(device: str | None) -> str:
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
