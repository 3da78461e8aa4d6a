"""``recammaster dataset synth``: render a synthetic MultiCamVideo-style data set (see recammaster.data.synth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SYNTH_EXAMPLES = "Example: recammaster dataset synth --scenes 100 --size 256 --out data/synth --device cuda"


def synth(
    scenes: Annotated[int, typer.Option("--scenes", help="Number of scenes to render (10 videos each).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Data set folder; gets train/<lens>/sceneN/ and metadata.csv.")
    ],
    size: Annotated[int, typer.Option("--size", help="Square frame size in pixels, a multiple of 16.")] = 256,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; scene N depends only on (seed, N).")] = 0,
    device: Annotated[
        str, typer.Option("--device", help="Torch device of the ray caster: cpu, cuda, cuda:1 ...")
    ] = "cpu",
    frames: Annotated[int, typer.Option("--frames", help="Frames per video (MultiCamVideo: 81 at 15 fps).")] = 81,
    depth: Annotated[
        bool, typer.Option("--depth/--no-depth", help="Also write depth/camNN.npz (float16 metres).")
    ] = False,
    masks: Annotated[
        bool, typer.Option("--masks/--no-masks", help="Also write masks/camNN.npz (character ids).")
    ] = False,
    supersample: Annotated[bool, typer.Option("--supersample", help="Average 2x2 rays per pixel (4x slower).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Re-render scenes that are already complete.")] = False,
) -> None:
    """Render procedural scenes seen by ten MultiCamVideo cameras each, in the MultiCamVideo layout.

    An interrupted run resumes: complete scenes are skipped unless --overwrite.
    """
    if scenes < 1:
        raise typer.BadParameter(f"must be at least 1, got {scenes}", param_hint="--scenes")
    if size < 16 or size % 16:
        raise typer.BadParameter(f"must be a positive multiple of 16, got {size}", param_hint="--size")
    if frames < 2:
        raise typer.BadParameter(f"must be at least 2, got {frames}", param_hint="--frames")
    import torch

    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise typer.BadParameter(f"torch cannot use device {device!r} ({error})", param_hint="--device") from error

    from recammaster.data.synth.engine import synthesize

    result = synthesize(out, scenes, size=size, seed=seed, device=device, depth=depth, masks=masks,
                        num_frames=frames, supersample=supersample, overwrite=overwrite)  # fmt: skip
    typer.echo(f"rendered {result.rendered} scene(s), kept {result.skipped}; wrote {result.metadata}")
