"""``recammaster eval``: measure a model. ``synthetic``: PSNR, SSIM and preset following per preset against the
ground truth of held-out synthetic scenes (see :mod:`recammaster.evaluation.synthetic`), optionally kept as a
folder of cases; ``paper``: the paper's protocol, the ten presets over a folder of the user's videos, then
scored; ``score``: the paper's metrics over a folder of cases any model generated (see
:mod:`recammaster.evaluation.scoring` and :mod:`recammaster.evaluation.protocols`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from recammaster.cli.dataset import NoProgressOpt
from recammaster.cli.options import FramesOpt, OverwriteOpt, resolve_device
from recammaster.cli.render import CheckpointOpt, DeviceOpt, ModelDirOpt
from recammaster.errors import OutputExistsError, ReCamMasterError

SYNTHETIC_EXAMPLES = """Examples:

  recammaster eval synthetic --model-dir my-pipeline/ -o eval/small

  recammaster eval synthetic --model-dir models/ --checkpoint runs/recam/checkpoints/step2000.ckpt -o eval/2000

  recammaster eval synthetic --model-dir my-pipeline/ --preset 1 --preset 9 --steps 20 -o eval/quick

  recammaster eval synthetic --model-dir my-pipeline/ --still-source -o eval/tripod
"""

SCORE_EXAMPLES = """Examples:

  recammaster eval score results/ -o eval/results

  recammaster eval score results/ -o eval/quick --runs 1 --sample-every 8

  recammaster eval score results/ -o eval/fvd --i3d i3d_torchscript.pt --device cuda

  recammaster eval score results/ -o eval/clip --clip openai/clip-vit-base-patch32
"""

PAPER_EXAMPLES = """Examples:

  recammaster eval paper my-videos/ -o eval/paper            # my-videos/clip.mp4 with its caption in clip.txt

  recammaster eval paper my-videos/ -o eval/paper --caption "a dog runs on a beach" --preset 1 --preset 9

  recammaster eval paper my-videos/ -o eval/paper --model-dir models/ --device cuda --i3d i3d_torchscript.pt
"""

app = typer.Typer(help="Measure a model's re-renderings.", no_args_is_help=True)

SizeOpt = Annotated[
    int | None, typer.Option("--size", help="Square frame size, a multiple of 16 (default: the model's, or 128).")
]
StepsOpt = Annotated[int | None, typer.Option("--steps", help="Sampling steps (default: the model's).")]
GuidanceOpt = Annotated[
    float | None, typer.Option("--guidance", help="Text guidance scale; 1 disables it (default: the model's).")
]
MotionGuidanceOpt = Annotated[
    float | None,
    typer.Option("--motion-guidance", help="Motion guidance scale; 1 disables it (default: the model's)."),
]
PresetOpt = Annotated[
    list[int] | None, typer.Option("--preset", help="An official preset 1-10; repeat it (default: all ten).")
]
RunsOpt = Annotated[int, typer.Option("--runs", help="COLMAP runs per case (seeds 0, 1, ...).")]
SampleEveryOpt = Annotated[
    int, typer.Option("--sample-every", help="Score frames 0, k, 2k, ... (COLMAP and matched pixels).")
]
NumThreadsOpt = Annotated[
    int, typer.Option("--num-threads", help="COLMAP threads; 1 repeats runs exactly, -1 uses every core.")
]
InceptionOpt = Annotated[
    Path | None, typer.Option("--inception-weights", help="FID: pt_inception-2015-12-05-6726825d.pth.")
]
I3dOpt = Annotated[Path | None, typer.Option("--i3d", help="FVD, FVD-V: StyleGAN-V's i3d_torchscript.pt.")]
ClipOpt = Annotated[str | None, typer.Option("--clip", help="CLIP-T/F/V: a transformers CLIP folder or hub id.")]


def render_settings(
    model_dir: Path | None, size: int | None, steps: int | None, guidance: float | None, motion_guidance: float | None
) -> tuple[Path | None, int, int, float, float]:
    """The model folder and its render defaults, overridden by the options given."""
    from recammaster.pipeline.loading import choose_model

    model_dir, defaults = choose_model(model_dir)
    square = defaults["height"] == defaults["width"]
    size = size or (defaults["height"] if square else 128)
    steps = steps or defaults["num_inference_steps"]
    guidance = guidance if guidance is not None else defaults["guidance_scale"]
    motion_guidance = motion_guidance if motion_guidance is not None else defaults["motion_guidance"]
    return model_dir, size, steps, guidance, motion_guidance


def score_and_report(folders: list[Path], output_dir: Path, *, runs: int, sample_every: int, num_threads: int,
                     networks: Any, overwrite: bool, progress: bool) -> None:  # fmt: skip
    """Score the case folders, write the report, print its summary."""
    from recammaster.evaluation.scoring import score_cases, write_report

    report = score_cases(folders, networks=networks, runs=runs, sample_every=sample_every, num_threads=num_threads,
                         progress=progress)  # fmt: skip
    write_report(report, output_dir, overwrite=overwrite)
    typer.echo(report.to_markdown(), nl=False)
    typer.echo(f"wrote {output_dir}")


@app.command("synthetic", epilog=SYNTHETIC_EXAMPLES)
def synthetic(
    model_dir: ModelDirOpt = None,
    checkpoint: CheckpointOpt = None,
    scenes: Annotated[int, typer.Option("--scenes", help="Held-out scenes: scenes 1..N of --seed.")] = 8,
    size: SizeOpt = None,
    frames: FramesOpt = 81,
    steps: StepsOpt = None,
    guidance: GuidanceOpt = None,
    motion_guidance: MotionGuidanceOpt = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the held-out scenes (training runs use small ones).")
    ] = 1000,
    preset: PresetOpt = None,
    device: DeviceOpt = None,
    output_dir: Annotated[
        Path, typer.Option("-o", "--output-dir", help="Folder for report.json, report.md, pictures and videos.")
    ] = Path("eval-synthetic"),
    no_videos: Annotated[
        bool, typer.Option("--no-videos", help="Skip the first scene's source | result | ground truth videos.")
    ] = False,
    cases: Annotated[
        Path | None,
        typer.Option("--cases", help="Also keep every result as a case (with ground truth) here, for `eval score`."),
    ] = None,
    still_source: Annotated[
        bool,
        typer.Option("--still-source", help="Film each source with a camera standing still at its first pose."),
    ] = False,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Re-render held-out synthetic scenes along each preset and compare with the true views.

    Prints the table of report.md: PSNR and SSIM of the model and of copying the source, and how often the
    result is nearest to the requested preset's ground truth among the ten.
    """
    from recammaster.evaluation.synthetic import OFFICIAL_PRESETS, check_settings, report_paths

    model_dir, size, steps, guidance, motion_guidance = render_settings(model_dir, size, steps, guidance,
                                                                        motion_guidance)  # fmt: skip
    try:
        presets = check_settings(scenes, size, frames, steps, guidance, preset or OFFICIAL_PRESETS, motion_guidance)
    except ValueError as error:
        raise ReCamMasterError(str(error)) from error
    existing = [path for path in report_paths(output_dir, presets, videos=not no_videos) if path.exists()]
    if existing and not overwrite:
        raise OutputExistsError(existing[0])
    if cases is not None and not overwrite and cases.is_dir() and any(cases.iterdir()):
        raise OutputExistsError(cases)
    if checkpoint is not None and not checkpoint.is_file():
        raise ReCamMasterError(f"{checkpoint}: checkpoint not found")
    device = resolve_device(device)

    from recammaster.evaluation.protocols import case_writer
    from recammaster.evaluation.synthetic import evaluate_presets, write_report
    from recammaster.pipeline.loading import load_pipeline

    pipeline = load_pipeline(model_dir, device, "none", checkpoint)
    pipeline.set_progress_bar_config(disable=no_progress, leave=False)
    report = evaluate_presets(
        pipeline, seed=seed, num_scenes=scenes, size=size, num_frames=frames, presets=presets, steps=steps,
        guidance=guidance, device=device, progress=not no_progress,
        on_result=None if cases is None else case_writer(cases, overwrite=overwrite), still_source=still_source,
        motion_guidance=motion_guidance,
    )  # fmt: skip
    write_report(report, output_dir, overwrite=overwrite, videos=not no_videos)
    typer.echo(report.to_markdown(), nl=False)
    typer.echo(f"wrote {output_dir}")


@app.command("score", epilog=SCORE_EXAMPLES)
def score(
    root: Annotated[
        Path,
        typer.Argument(
            help="Folder of cases: ROOT/<case>/ with source.*, result.*, trajectory.*; optional caption.txt, "
            "target.*, visible.npz, intrinsics.json (see recammaster.evaluation.cases)."
        ),
    ],
    output_dir: Annotated[
        Path, typer.Option("-o", "--output-dir", help="Folder for report.json, report.md and the plots.")
    ],
    runs: RunsOpt = 3,
    sample_every: SampleEveryOpt = 4,
    num_threads: NumThreadsOpt = 1,
    inception_weights: InceptionOpt = None,
    i3d: I3dOpt = None,
    clip: ClipOpt = None,
    device: DeviceOpt = None,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Score the generated videos in ROOT: RotErr, TransErr, matched pixels, PSNR/SSIM where a target is given,
    and FID, FVD, CLIP-T/F/V, FVD-V with the networks given (the others are listed as skipped, with the reason).

    Prints report.md.
    """
    from recammaster.evaluation.cases import find_cases
    from recammaster.evaluation.distribution import load_networks
    from recammaster.evaluation.scoring import check_output, check_settings

    check_settings(runs, sample_every)
    check_output(output_dir, overwrite=overwrite)
    folders = find_cases(root)
    device = resolve_device(device)
    networks = load_networks(inception_weights=inception_weights, i3d=i3d, clip=clip, device=device)
    score_and_report(folders, output_dir, runs=runs, sample_every=sample_every, num_threads=num_threads,
                     networks=networks, overwrite=overwrite, progress=not no_progress)  # fmt: skip


@app.command("paper", epilog=PAPER_EXAMPLES)
def paper(
    videos: Annotated[
        Path, typer.Argument(help="Folder of videos (mp4, mov, webm), each with its caption in <video>.txt.")
    ],
    output_dir: Annotated[
        Path, typer.Option("-o", "--output-dir", help="Folder for cases/ (the re-renderings), the report and plots.")
    ],
    caption: Annotated[str | None, typer.Option("--caption", help="The caption of videos without a .txt.")] = None,
    model_dir: ModelDirOpt = None,
    checkpoint: CheckpointOpt = None,
    size: SizeOpt = None,
    frames: FramesOpt = 81,
    steps: StepsOpt = None,
    guidance: GuidanceOpt = None,
    motion_guidance: MotionGuidanceOpt = None,
    preset: PresetOpt = None,
    runs: RunsOpt = 3,
    sample_every: SampleEveryOpt = 4,
    num_threads: NumThreadsOpt = 1,
    inception_weights: InceptionOpt = None,
    i3d: I3dOpt = None,
    clip: ClipOpt = None,
    device: DeviceOpt = None,
    overwrite: OverwriteOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """The paper's protocol: re-render every video along the ten presets (OUT/cases/, kept: run it again to go
    on after an interruption), then score the results as `eval score` does.

    Prints report.md.
    """
    from recammaster.evaluation.distribution import load_networks
    from recammaster.evaluation.protocols import render_paper_cases, user_videos
    from recammaster.evaluation.scoring import check_output, check_settings
    from recammaster.evaluation.synthetic import OFFICIAL_PRESETS
    from recammaster.evaluation.synthetic import check_settings as check_render_settings
    from recammaster.pipeline.loading import load_pipeline

    model_dir, size, steps, guidance, motion_guidance = render_settings(model_dir, size, steps, guidance,
                                                                        motion_guidance)  # fmt: skip
    try:
        presets = check_render_settings(1, size, frames, steps, guidance, preset or OFFICIAL_PRESETS,
                                        motion_guidance)  # fmt: skip
    except ValueError as error:
        raise ReCamMasterError(str(error)) from error
    check_settings(runs, sample_every)
    check_output(output_dir, overwrite=overwrite)
    found = user_videos(videos, caption)
    if checkpoint is not None and not checkpoint.is_file():
        raise ReCamMasterError(f"{checkpoint}: checkpoint not found")
    device = resolve_device(device)
    networks = load_networks(inception_weights=inception_weights, i3d=i3d, clip=clip, device=device)
    pipeline = load_pipeline(model_dir, device, "none", checkpoint)
    pipeline.set_progress_bar_config(disable=no_progress, leave=False)
    folders = render_paper_cases(pipeline, found, output_dir / "cases", height=size, width=size, num_frames=frames,
                                 steps=steps, guidance=guidance, presets=presets, progress=not no_progress,
                                 motion_guidance=motion_guidance)  # fmt: skip
    score_and_report(folders, output_dir, runs=runs, sample_every=sample_every, num_threads=num_threads,
                     networks=networks, overwrite=overwrite, progress=not no_progress)  # fmt: skip
