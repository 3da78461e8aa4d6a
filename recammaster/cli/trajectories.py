"""``recammaster trajectories``: list, draw, preview, export and sample camera trajectories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recammaster.cameras import (
    OFFICIAL_PRESET_NAMES,
    PRESETS,
    load_trajectory,
    write_multicam_json,
)
from recammaster.cli.options import FramesOpt, OutputOpt, OverwriteOpt, SeedOpt

TRAJECTORY_HELP = (
    "A preset number (1-10) or name (pan-right), a preset with parameters "
    "('arc-left:angle=60,radius=3,reach=1'), or a file: YAML/JSON keyframes, "
    "camera_extrinsics.json#cam03, or OpenCV camera-to-world .npy/.json."
)
TrajectoriesArg = Annotated[list[str] | None, typer.Argument(help=TRAJECTORY_HELP, show_default=False)]

app = typer.Typer(help="Camera trajectories: list, draw, preview, export, sample.", no_args_is_help=True)


def _load_all(specs: list[str] | None, frames: int) -> list:
    return [load_trajectory(spec, num_frames=frames) for spec in (specs or OFFICIAL_PRESET_NAMES)]


@app.command("list")
def list_presets() -> None:
    """List the preset trajectories and their parameters."""
    for preset in PRESETS.values():
        number = f"{preset.number:>2}" if preset.number else " -"
        typer.echo(f"{number}  {preset.name:<15} {preset.description:<52} [{', '.join(preset.parameters)}]")


@app.command(epilog="Example: recammaster trajectories show pan-right arc-left:angle=60 -o arcs.png")
def show(
    trajectories: TrajectoriesArg = None,
    output: OutputOpt = Path("trajectories.png"),
    frames: FramesOpt = 81,
    overwrite: OverwriteOpt = False,
) -> None:
    """Draw trajectories as camera frustums coloured by time, with a top-down view (default: the ten presets)."""
    from recammaster.cameras.plot import plot_trajectories

    path = plot_trajectories(_load_all(trajectories, frames), output, overwrite=overwrite)
    typer.echo(f"wrote {path}")


@app.command(epilog="Example: recammaster trajectories preview orbit-left -o orbit.gif")
def preview(
    trajectory: Annotated[str, typer.Argument(help=TRAJECTORY_HELP)],
    output: OutputOpt = Path("preview.gif"),
    frames: FramesOpt = 81,
    width: Annotated[int, typer.Option(help="Width of the animation in pixels.")] = 320,
    height: Annotated[int, typer.Option(help="Height of the animation in pixels.")] = 180,
    overwrite: OverwriteOpt = False,
) -> None:
    """Animate what the camera sees of a simple reference scene, as a GIF."""
    from recammaster.cameras.preview import write_preview_gif

    path = write_preview_gif(
        load_trajectory(trajectory, num_frames=frames),
        output,
        width=width,
        height=height,
        overwrite=overwrite,
    )
    typer.echo(f"wrote {path}")


@app.command(epilog="Example: recammaster trajectories export 1 2 my_path.yaml -o camera_extrinsics.json")
def export(
    trajectories: TrajectoriesArg = None,
    output: OutputOpt = Path("camera_extrinsics.json"),
    frames: FramesOpt = 81,
    keep_world: Annotated[
        bool,
        typer.Option("--keep-world", help="Keep each file's own world instead of the official start."),
    ] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write trajectories as a MultiCamVideo camera_extrinsics.json (cam01, cam02, ...)."""
    from recammaster.cameras import OFFICIAL_START_POSE

    path = write_multicam_json(
        _load_all(trajectories, frames),
        output,
        start_pose=None if keep_world else OFFICIAL_START_POSE,
        overwrite=overwrite,
    )
    typer.echo(f"wrote {path}")


@app.command()
def condition(
    trajectory: Annotated[str, typer.Argument(help=TRAJECTORY_HELP)],
    frames: FramesOpt = 81,
) -> None:
    """Print the model's camera condition: one 12-number row per latent frame, as JSON."""
    rows = load_trajectory(trajectory, num_frames=frames).condition()
    typer.echo(json.dumps([[round(float(v), 7) for v in row] for row in rows]))


@app.command(epilog="Example: recammaster trajectories sample --seed 7 -o camera_extrinsics.json --plot cams.png")
def sample(
    seed: SeedOpt = 0,
    output: OutputOpt = Path("camera_extrinsics.json"),
    cameras: Annotated[int, typer.Option("--cameras", help="Cameras in the scene (MultiCamVideo has 10).")] = 10,
    frames: FramesOpt = 81,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also draw the cameras to this PNG.")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Draw a scene's cameras by the MultiCamVideo rules and write them as camera_extrinsics.json."""
    from recammaster.cameras.sampling import sample_scene_cameras

    sampled = sample_scene_cameras(seed, num_cameras=cameras, num_frames=frames)
    for index, camera in enumerate(sampled, start=1):
        size = camera.angle_deg if camera.angle_deg is not None else camera.distance
        detail = "" if size is None else f" {size:.3g}{' deg' if camera.angle_deg is not None else ' m'}"
        typer.echo(
            f"cam{index:02d}  {camera.kind} {camera.direction or ''}{detail}  speed={camera.speed}  "
            f"start {camera.start_distance:.2f} m from the character  lens {camera.lens.folder_name}"
        )
    trajectories = [camera.trajectory for camera in sampled]
    path = write_multicam_json(trajectories, output, start_pose=None, overwrite=overwrite)
    typer.echo(f"wrote {path}")
    if plot is not None:
        from recammaster.cameras.plot import plot_trajectories

        typer.echo(f"wrote {plot_trajectories(trajectories, plot, overwrite=overwrite)}")
