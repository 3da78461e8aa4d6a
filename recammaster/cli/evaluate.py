"""``recammaster eval``: measure a model. ``synthetic``: PSNR, SSIM and preset following per preset against the
ground truth of held-out synthetic scenes (see :mod:`recammaster.evaluation.synthetic`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recammaster.cli.dataset import NoProgressOpt
from recammaster.cli.options import FramesOpt, OverwriteOpt, resolve_device
from recammaster.cli.render import CheckpointOpt, DeviceOpt, ModelDirOpt, choose_model, load_pipeline
from recammaster.errors import OutputExistsError, ReCamMasterError

SYNTHETIC_EXAMPLES = """Examples:

  recammaster eval synthetic --model-dir my-pipeline/ -o eval/small

  recammaster eval synthetic --model-dir models/ --checkpoint runs/recam/checkpoints/step2000.ckpt -o eval/2000

  recammaster eval synthetic --model-dir my-pipeline/ --preset 1 --preset 9 --steps 20 -o eval/quick
"""

app = typer.Typer(help="Measure a model's re-renderings.", no_args_is_help=True)


@app.command("synthetic", epilog=SYNTHETIC_EXAMPLES)
def synthetic(
    model_dir: ModelDirOpt = None,
    checkpoint: CheckpointOpt = None,
    scenes: Annotated[int, typer.Option("--scenes", help="Held-out scenes: scenes 1..N of --seed.")] = 8,
    size: Annotated[
        int | None, typer.Option("--size", help="Square frame size, a multiple of 16 (default: the model's, or 128).")
    ] = None,
    frames: FramesOpt = 81,
    steps: Annotated[int | None, typer.Option("--steps", help="Sampling steps (default: the model's).")] = None,
    guidance: Annotated[
        float | None, typer.Option("--guidance", help="Text guidance scale; 1 disables it (default: the model's).")
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the held-out scenes (training runs use small ones).")
    ] = 1000,
    preset: Annotated[
        list[int] | None, typer.Option("--preset", help="An official preset 1-10; repeat it (default: all ten).")
    ] = None,
    device: DeviceOpt = None,
    output_dir: Annotated[
        Path, typer.Option("-o", "--output-dir", help="Folder for report.json, report.md, pictures and videos.")
    ] = Path("eval-synthetic"),
    no_videos: Annotated[
        bool, typer.Option("--no-videos", help="Skip the first scene's source | result | ground truth videos.")
    ] = False,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Re-render held-out synthetic scenes along each preset and compare with the true views.

    Prints the table of report.md: PSNR and SSIM of the model and of copying the source, and how often the
    result is nearest to the requested preset's ground truth among the ten.
    """
    from recammaster.evaluation.synthetic import OFFICIAL_PRESETS, check_settings, report_paths

    model_dir, defaults = choose_model(model_dir)
    square = defaults["height"] == defaults["width"]
    size = size or (defaults["height"] if square else 128)
    steps = steps or defaults["num_inference_steps"]
    guidance = guidance if guidance is not None else defaults["guidance_scale"]
    try:
        presets = check_settings(scenes, size, frames, steps, guidance, preset or OFFICIAL_PRESETS)
    except ValueError as error:
        raise ReCamMasterError(str(error)) from error
    existing = [path for path in report_paths(output_dir, presets, videos=not no_videos) if path.exists()]
    if existing and not overwrite:
        raise OutputExistsError(existing[0])
    if checkpoint is not None and not checkpoint.is_file():
        raise ReCamMasterError(f"{checkpoint}: checkpoint not found")
    device = resolve_device(device)

    from recammaster.evaluation.synthetic import evaluate_presets, write_report

    pipeline = load_pipeline(model_dir, device, "none", checkpoint)
    pipeline.set_progress_bar_config(disable=no_progress, leave=False)
    report = evaluate_presets(
        pipeline, seed=seed, num_scenes=scenes, size=size, num_frames=frames, presets=presets, steps=steps,
        guidance=guidance, device=device, progress=not no_progress,
    )  # fmt: skip
    write_report(report, output_dir, overwrite=overwrite, videos=not no_videos)
    typer.echo(report.to_markdown(), nl=False)
    typer.echo(f"wrote {output_dir}")
