"""``recammaster demo``: the bundled example clip re-filmed along a preset, with the default model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recammaster.cli.options import OverwriteOpt
from recammaster.cli.render import DeviceOpt, TrajectoryOpt, render_command
from recammaster.hub import example_clip

DEMO_EXAMPLES = """Examples:

  recammaster demo                       # pan-right, writes demo.mp4 and demo_side_by_side.mp4

  recammaster demo -t zoom-in -o zoom.mp4
"""


def demo(
    trajectory: TrajectoryOpt = "pan-right",
    output: Annotated[Path, typer.Option("-o", "--output", help="The re-filmed clip (mp4).")] = Path("demo.mp4"),
    device: DeviceOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Re-film the bundled synthetic clip (81 frames, 128x128) along a preset and write it with a side-by-side.

    Uses the official weights when they are installed, else the small model shipped in the package.
    """
    clip, caption = example_clip()
    render_command(video=clip, trajectory=trajectory, prompt=caption, output=output,
                   side_by_side=True, device=device, overwrite=overwrite)  # fmt: skip
