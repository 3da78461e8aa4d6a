"""``recammaster dataset``: unpack, check, count and look at the MultiCamVideo dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recammaster.cli.options import OutputOpt, OverwriteOpt

VERIFY_EXAMPLES = """Examples:

  recammaster dataset verify MultiCamVideo-Dataset

  recammaster dataset verify MultiCamVideo-Dataset/train/f18_aperture10/scene1
"""
EXTRACT_EXAMPLES = """Examples:

  recammaster dataset extract MultiCamVideo-Dataset.part* -o data/

  recammaster dataset extract MultiCamVideo-Dataset.part* -o data/ --verify
"""
STATS_EXAMPLES = """Example:

  recammaster dataset stats data/MultiCamVideo-Dataset --json stats.json
"""
SHOW_EXAMPLES = """Example:

  recammaster dataset show data/MultiCamVideo-Dataset/train/f18_aperture10/scene1 -o scene1.png
"""

DatasetArg = Annotated[
    Path, typer.Argument(help="The dataset folder (holding train/ and/or val/, or MultiCamVideo-Dataset/).")
]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")]

app = typer.Typer(help="The MultiCamVideo dataset: extract, verify, stats, show.", no_args_is_help=True)


def _print_report(report) -> bool:
    """Print every problem and a summary line; True when nothing is wrong."""
    for problem in report.problems:
        typer.echo(str(problem))
    bad = sum(not scene.ok for scene in report.scenes)
    resolutions = ", ".join(f"{w}x{h} ({n} scenes)" for (w, h), n in report.resolutions.most_common()) or "none"
    summary = f"{len(report.scenes)} scenes checked: {len(report.scenes) - bad} ok, {bad} with problems"
    if report.layout_problems:
        summary += f", {len(report.layout_problems)} layout problems"
    typer.echo(f"{summary}; resolution {resolutions}")
    return report.ok


@app.command(epilog=VERIFY_EXAMPLES)
def verify(
    dataset: Annotated[Path, typer.Argument(help="The dataset folder, or one scene folder.")],
    frames: Annotated[int, typer.Option("--frames", help="Frames every video and camera must have.")] = 81,
    no_progress: NoProgressOpt = False,
) -> None:
    """Check the layout, every video (cam01..cam10, frames, size) and every camera file; list all problems.

    Exits with status 1 if anything is wrong. Works on a partial download: what is there is checked.
    """
    from recammaster.data.multicam import verify_dataset

    if not _print_report(verify_dataset(dataset, frames, progress=not no_progress)):
        raise typer.Exit(1)


@app.command(epilog=EXTRACT_EXAMPLES)
def extract(
    parts: Annotated[list[Path], typer.Argument(help="The MultiCamVideo-Dataset.part* files, in any order.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to unpack into.")],
    verify_after: Annotated[bool, typer.Option("--verify", help="Verify the dataset after unpacking.")] = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Unpack the split archive as one stream (no joined copy on disk); resumable and safe."""
    from recammaster.data.extract import extract_parts

    result = extract_parts(parts, output, progress=not no_progress)
    typer.echo(
        f"extracted {result.extracted} files, skipped {result.skipped} already present "
        f"({result.bytes_read / 1e6:.1f} MB read) into {output}"
    )
    if verify_after:
        from recammaster.data.multicam import verify_dataset

        if not _print_report(verify_dataset(output, progress=not no_progress)):
            raise typer.Exit(1)


def _format_summary(summary: dict) -> str:
    return f"{summary['mean']:>8.3f} {summary['min']:>8.3f} {summary['max']:>8.3f}"


@app.command(epilog=STATS_EXAMPLES)
def stats(
    dataset: DatasetArg,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")] = None,
    no_probe: Annotated[
        bool, typer.Option("--no-probe", help="Count files only; skip opening videos (no frames or resolutions).")
    ] = False,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Scenes, videos and frames per split and lens; resolutions; camera path lengths and rotations."""
    from recammaster.data.multicam import dataset_stats
    from recammaster.errors import OutputExistsError
    from recammaster.fileio import write_text_atomic

    if json_path is not None and json_path.exists() and not overwrite:
        raise OutputExistsError(json_path)
    result = dataset_stats(dataset, probe=not no_probe, progress=not no_progress)
    numbers = result.to_dict()
    typer.echo(f"{'group':<32} {'scenes':>8} {'videos':>8} {'frames':>10}")
    for name, counts in [*numbers["groups"].items(), ("total", numbers["totals"])]:
        typer.echo(f"{name:<32} {counts['scenes']:>8} {counts['videos']:>8} {counts['frames']:>10}")
    resolutions = ", ".join(f"{size} ({count} videos)" for size, count in numbers["resolutions"].items())
    typer.echo(f"resolutions: {resolutions or 'not probed'}")
    typer.echo("")
    typer.echo(f"{'camera':<8} {'count':>6}  {'path length (m) mean/min/max':>26}  {'rotation (deg) mean/min/max':>26}")
    for name, summary in numbers["camera_summary"].items():
        path_length, rotation = summary["path_length_m"], summary["rotation_deg"]
        typer.echo(f"{name:<8} {path_length['count']:>6}  {_format_summary(path_length)}  {_format_summary(rotation)}")
    for problem in result.unreadable:
        typer.echo(f"left out: {problem}", err=True)
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(numbers, indent=2), overwrite=overwrite)
        typer.echo(f"wrote {json_path}")


@app.command(epilog=SHOW_EXAMPLES)
def show(
    scene: Annotated[Path, typer.Argument(help="A scene folder (holding videos/ and cameras/).")],
    output: OutputOpt = Path("scene.png"),
    frames: Annotated[str, typer.Option("--frames", help="Comma-separated frame indices to show.")] = "0,40,80",
    overwrite: OverwriteOpt = False,
) -> None:
    """Draw a contact sheet of the scene's ten cameras plus a map of their paths."""
    from recammaster.data.contact_sheet import write_contact_sheet

    try:
        indices = [int(text) for text in frames.split(",") if text.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated frame numbers, got {frames!r}", param_hint="--frames"
        ) from None
    if not indices or min(indices) < 0:
        raise typer.BadParameter(f"expected frame numbers >= 0, got {frames!r}", param_hint="--frames")
    path = write_contact_sheet(scene, output, frames=indices, overwrite=overwrite)
    typer.echo(f"wrote {path}")
