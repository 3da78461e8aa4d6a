"""``recammaster render``: re-film one video, or a folder of them in upstream's layout.

Every input is checked before any model is loaded: the videos (readable, long enough), the captions, the
trajectory (valid, the right length) and the resolution. Outputs are written atomically; existing ones
are refused in single mode unless ``--overwrite``, and skipped in batch mode, so an interrupted batch
resumes where it stopped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from recammaster.cameras import Trajectory, load_trajectory
from recammaster.cli.options import FramesOpt, OverwriteOpt, SeedOpt
from recammaster.errors import ReCamMasterError

RENDER_EXAMPLES = """Examples:

  recammaster render dance.mp4 -t arc-left -p "A couple dances on a street at dusk." -o arc.mp4 --side-by-side

  recammaster render --dataset_path example_test_data --cam_type 3    # upstream's batch layout

  torchrun --nproc_per_node 4 -m recammaster.cli render dance.mp4 -t 3 -p "..."   # one video on 4 GPUs

  torchrun --nproc_per_node 8 -m recammaster.cli render --dataset_path videos/ --cam_type 3   # 8 videos at once
"""


@dataclass(frozen=True)
class RenderJob:
    video: Path
    prompt: str
    output: Path


def _single_job(video: Path, prompt: str | None, output: Path | None, trajectory: str) -> RenderJob:
    if not prompt or not prompt.strip():
        raise ReCamMasterError("a caption is needed: pass --prompt 'what the video shows'")
    name = Path(trajectory).stem if Path(trajectory).suffix else trajectory.split(":")[0]
    return RenderJob(video, prompt, output or video.with_name(f"{video.stem}_{name}.mp4"))


def read_batch_jobs(dataset: Path, cam_type: int, output_dir: Path) -> list[RenderJob]:
    """Upstream's layout: ``metadata.csv`` (file_name,text) and ``videos/``; results in ``cam_type{N}/video{i}.mp4``.

    Every problem (missing file, column, caption or video) is reported at once, not only the first.
    """
    metadata = dataset / "metadata.csv"
    if not metadata.is_file():
        raise ReCamMasterError(
            f"{metadata}: not found; a dataset folder holds metadata.csv (file_name,text) and videos/"
        )
    with metadata.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"file_name", "text"} <= set(reader.fieldnames or ()):
            raise ReCamMasterError(f"{metadata}: needs the columns file_name and text, found {reader.fieldnames}")
        rows = list(reader)
    if not rows:
        raise ReCamMasterError(f"{metadata}: no rows")
    jobs, problems = [], []
    for index, row in enumerate(rows):
        video = dataset / "videos" / (row["file_name"] or "").strip()
        if not (row["file_name"] or "").strip():
            problems.append(f"row {index + 2}: no file_name")
        elif not video.is_file():
            problems.append(f"row {index + 2}: {video} not found")
        if not (row["text"] or "").strip():
            problems.append(f"row {index + 2}: no caption")
        jobs.append(RenderJob(video, row["text"] or "", output_dir / f"cam_type{cam_type}" / f"video{index}.mp4"))
    if problems:
        raise ReCamMasterError(f"{metadata}: " + "; ".join(problems))
    return jobs


VideoArg = Annotated[Path | None, typer.Argument(help="The source video (mp4, mov, webm, ...).", show_default=False)]
TrajectoryOpt = Annotated[
    str, typer.Option("--trajectory", "-t", help="Preset number or name, preset with parameters, or a trajectory file.")
]
PromptOpt = Annotated[str | None, typer.Option("--prompt", "-p", help="A caption of the source video.")]
OutputVideoOpt = Annotated[
    Path | None, typer.Option("-o", "--output", help="Output mp4 (default: VIDEO_TRAJECTORY.mp4).")
]
StepsOpt = Annotated[int | None, typer.Option("--steps", help="Sampling steps (default: the model's; official 50).")]
GuidanceOpt = Annotated[
    float | None,
    typer.Option("--guidance", help="Text guidance scale, 1 disables it (default: the model's; official 5)."),
]
MotionGuidanceOpt = Annotated[
    float | None,
    typer.Option(
        "--motion-guidance",
        help="Motion guidance scale: away from the source's first frame held still; 1 disables it (default: the "
        "model's; official 1).",
    ),
]
HeightOpt = Annotated[int, typer.Option("--height", help="Model height, a multiple of 16.")]
WidthOpt = Annotated[int, typer.Option("--width", help="Model width, a multiple of 16.")]
ModelHeightOpt = Annotated[
    int | None, typer.Option("--height", help="Height, a multiple of 16 (default: the model's; official 480).")
]
ModelWidthOpt = Annotated[
    int | None, typer.Option("--width", help="Width, a multiple of 16 (default: the model's; official 832).")
]
FpsOpt = Annotated[float | None, typer.Option("--fps", help="Output frame rate (default: the source's).")]
LoopOpt = Annotated[bool, typer.Option("--loop", help="Too short a video plays forward then backward.")]
ResampleOpt = Annotated[bool, typer.Option("--resample", help="Too short a video has its frames spread out.")]
OffloadOpt = Annotated[
    str,
    typer.Option(
        "--offload",
        help="none, text (the text encoder streamed), model (CPU offload), group (every model streamed by blocks) "
        "or group-tiled (and the VAE in tiles: least memory).",
    ),
]
SourceReuseOpt = Annotated[
    int,
    typer.Option(
        "--source-reuse", help="Fast mode: a full step every N steps, target tokens alone between (1: exact)."
    ),
]
SolverOpt = Annotated[
    str, typer.Option("--solver", help="euler (upstream's) or ab2 (second order; benchmarks/RESULTS.md has its cost).")
]
CompileOpt = Annotated[
    bool,
    typer.Option("--compile", help="torch.compile the transformer's blocks: ~10% faster steps after the first video."),
]
AttentionOpt = Annotated[
    str,
    typer.Option(
        "--attention",
        help="Attention kernel: native (torch's choice: cuDNN on an H100), _native_cudnn, _native_flash, "
        "_native_efficient, or flash4 (FlashAttention-4, the flash4 extra: steps 12% shorter at 1.3B on an H200).",
    ),
]
SideBySideOpt = Annotated[
    bool, typer.Option("--side-by-side", help="Also write source | result with a trajectory inset.")
]
ModelDirOpt = Annotated[
    Path | None, typer.Option("--model-dir", help="Folder with the official model files, or a saved pipeline.")
]
CheckpointOpt = Annotated[
    Path | None, typer.Option("--checkpoint", help="Transformer weights to use instead (a train fit step{N}.ckpt).")
]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cuda, cuda:1, cpu (default: cuda if present).")]
DatasetOpt = Annotated[
    Path | None, typer.Option("--dataset_path", "--dataset-path", help="Batch: folder with metadata.csv and videos/.")
]
CamTypeOpt = Annotated[int | None, typer.Option("--cam_type", "--cam-type", help="Batch: preset 1-10.")]
OutputDirOpt = Annotated[Path, typer.Option("--output_dir", "--output-dir", help="Batch: where cam_type{N}/ goes.")]


def render_command(
    video: VideoArg = None,
    trajectory: TrajectoryOpt = "pan-right",
    prompt: PromptOpt = None,
    output: OutputVideoOpt = None,
    steps: StepsOpt = None,
    guidance: GuidanceOpt = None,
    motion_guidance: MotionGuidanceOpt = None,
    seed: SeedOpt = 0,
    height: ModelHeightOpt = None,
    width: ModelWidthOpt = None,
    frames: FramesOpt = 81,
    fps: FpsOpt = None,
    loop: LoopOpt = False,
    resample: ResampleOpt = False,
    offload: OffloadOpt = "none",
    side_by_side: SideBySideOpt = False,
    source_reuse: SourceReuseOpt = 1,
    solver: SolverOpt = "euler",
    compile_blocks: CompileOpt = False,
    attention: AttentionOpt = "native",
    model_dir: ModelDirOpt = None,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = None,
    dataset_path: DatasetOpt = None,
    cam_type: CamTypeOpt = None,
    output_dir: OutputDirOpt = Path("results"),
    overwrite: OverwriteOpt = False,
) -> None:
    """Re-film a video along a new camera trajectory."""
    from tqdm import tqdm

    from recammaster.models.attention import ATTENTION_KERNELS
    from recammaster.pipeline.loading import OFFLOAD_MODES, choose_model, load_pipeline
    from recammaster.pipeline.recammaster_pipeline import check_render_inputs
    from recammaster.pipeline.sampler import SOLVERS
    from recammaster.video import check_writable_name, require_frames

    # 1. Everything that can be checked without a model
    if (video is None) == (dataset_path is None):
        raise ReCamMasterError("give either a VIDEO or --dataset_path DIR (batch mode), not both or neither")
    if loop and resample:
        raise ReCamMasterError("--loop and --resample exclude each other; pick one")
    if source_reuse < 1:
        raise ReCamMasterError(f"--source-reuse must be at least 1 (1: every step in full), got {source_reuse}")
    if solver not in SOLVERS:
        raise ReCamMasterError(f"--solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if offload not in OFFLOAD_MODES:
        raise ReCamMasterError(f"--offload must be one of {', '.join(OFFLOAD_MODES)}, got {offload!r}")
    if attention not in ATTENTION_KERNELS:
        raise ReCamMasterError(f"--attention must be one of {', '.join(ATTENTION_KERNELS)}, got {attention!r}")
    fit = "loop" if loop else "resample" if resample else "error"
    if dataset_path is not None:
        if cam_type is None:
            raise ReCamMasterError("batch mode needs --cam_type N (1-10)")
        trajectory = str(cam_type)
        jobs = [
            job for job in read_batch_jobs(dataset_path, cam_type, output_dir) if overwrite or not job.output.exists()
        ]
    else:
        jobs = [_single_job(video, prompt, output, trajectory)]
        check_writable_name(jobs[0].output)
        if jobs[0].output.exists() and not overwrite:
            raise ReCamMasterError(f"{jobs[0].output}: exists already; pass --overwrite to replace it")
    camera: Trajectory = load_trajectory(trajectory, num_frames=frames)
    model_dir, defaults = choose_model(model_dir)
    height, width = height or defaults["height"], width or defaults["width"]
    steps = steps or defaults["num_inference_steps"]
    guidance = guidance if guidance is not None else defaults["guidance_scale"]
    motion_guidance = motion_guidance if motion_guidance is not None else defaults["motion_guidance"]
    try:
        check_render_inputs(frames, height, width, steps, guidance, trajectory_frames=camera.num_frames,
                            motion_guidance=motion_guidance)  # fmt: skip
    except ValueError as error:
        raise ReCamMasterError(str(error)) from error
    for job in jobs:
        require_frames(job.video, frames, fit)
    if checkpoint is not None and not checkpoint.is_file():
        raise ReCamMasterError(f"{checkpoint}: checkpoint not found")
    if not jobs:
        typer.echo(f"nothing to do: every output in {output_dir / f'cam_type{cam_type}'} exists")
        return

    # 2. The model, then one video after another
    import torch

    from recammaster.pipeline.parallel import enable_multi_gpu, init_distributed, plan_layout
    from recammaster.video import probe_video, read_video, write_video
    from recammaster.video import side_by_side as compose

    rank, world, device = init_distributed(device)
    if world > 1 and dataset_path is None and source_reuse > 1:
        raise ReCamMasterError("--source-reuse works with one GPU per video (batch mode), not one video on several")
    if world > 1 and dataset_path is None and motion_guidance > 1:
        raise ReCamMasterError("--motion-guidance works with one GPU per video (batch mode), not one video on several")
    if world > 1 and dataset_path is not None:
        jobs = jobs[rank::world]  # a batch: one worker per GPU, each with its own videos
    pipeline = load_pipeline(model_dir, device, offload, checkpoint, compile_blocks=compile_blocks, attention=attention)
    if world > 1 and dataset_path is None:  # one video: every GPU works on it
        layout = plan_layout(world, pipeline.transformer.config.num_attention_heads, guidance=guidance > 1)
        enable_multi_gpu(pipeline, layout, torch.device(device).type)
        if rank == 0:
            typer.echo(f"{world} processes: {layout}")
    writes = world == 1 or dataset_path is not None or rank == 0
    for job in tqdm(jobs, desc="videos", unit="video", disable=len(jobs) <= 1):
        source = read_video(job.video, frames, fit=fit)
        result = pipeline(
            source, camera, job.prompt, height=height, width=width, num_frames=frames, num_inference_steps=steps,
            guidance_scale=guidance, generator=torch.Generator("cpu").manual_seed(seed), source_reuse=source_reuse,
            solver=solver, motion_guidance=motion_guidance,
        ).frames  # fmt: skip
        if not writes:
            continue
        rate = fps or probe_video(job.video).fps
        write_video(job.output, result, fps=rate, overwrite=overwrite)
        typer.echo(f"wrote {job.output}")
        if side_by_side:
            pair = job.output.with_name(f"{job.output.stem}_side_by_side.mp4")
            write_video(pair, compose(source, result, trajectory=camera), fps=rate, overwrite=overwrite)
            typer.echo(f"wrote {pair}")
