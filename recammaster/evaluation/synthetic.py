"""Ground-truth quality per preset: re-render held-out synthetic scenes and compare with the true views.

Real videos have no ground truth for a new camera; the synthetic engine (:mod:`recammaster.data.synth`)
has one for any camera. For scene N of a seed no training run uses (``make_scene(seed, N)``, default
seed 1000), the source video is the scene seen by its first camera. For each of the ten official presets
the request is exactly what ``recammaster render -t <preset>`` asks the model: the preset relative to its
own first frame. Its ground truth is the scene rendered along that preset placed at the source camera's
frame-0 pose, with the same lens, so frame 0 of every ground truth is the source's frame 0.

Per (scene, preset) this measures, against the ground truth:

- PSNR and SSIM (:mod:`recammaster.evaluation.metrics`) of the result and of the copied source (the
  baseline a model that ignores the camera gets), per frame; video numbers are means over frames
  1..T-1, since frame 0 is given (the copy's frame 0 is exact, its PSNR infinite);
- frame-0 PSNR of the result: the model should reproduce the source's first frame;
- character PSNR: the PSNR over the pixels where the ground truth shows a character (the engine's masks),
  frames 1..T-1 pooled, of the result and of the copied source: whether the characters are where and as
  they should be, which whole-frame numbers barely see (characters cover a few percent of the pixels);
- preset following: the result is "following" when, among the ten presets' ground truths of the scene,
  the requested one is nearest to it (MSE over all frames); chance is 10%.

Per preset, numbers are means over scenes. :func:`write_report` writes ``report.json``, ``report.md``, a
bar chart, a contact sheet and source | result | ground truth videos of the first scene.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from recammaster.cameras.presets import PRESETS_BY_NUMBER, get_preset
from recammaster.cameras.trajectory import Trajectory
from recammaster.data.contact_sheet import THUMB_IN
from recammaster.data.synth.engine import FPS, make_scene, to_render_scene
from recammaster.data.synth.render import render_tensors
from recammaster.data.synth.scene import NUM_FRAMES, describe_scene
from recammaster.data.synth.stream import crop_intrinsics
from recammaster.errors import OutputExistsError
from recammaster.evaluation.metrics import mse, psnr, ssim
from recammaster.evaluation.regions import masked_psnr, visible_mask
from recammaster.fileio import atomic_output, write_text_atomic
from recammaster.pipeline.recammaster_pipeline import DEFAULT_STEPS, check_render_inputs
from recammaster.video import side_by_side, write_video

Array = np.ndarray
Pipeline = Callable[..., Any]  # a ReCamMasterPipeline, or anything called like one that returns ``.frames``

DEFAULT_SEED = 1000  # training runs use small seeds, so scenes of this seed are held out
DEFAULT_SCENES = 8
DEFAULT_SIZE = 128
DEFAULT_GUIDANCE = 1.0  # synthetic captions are plain descriptions; guidance would double the cost
NOISE_SEED = 0  # every video starts from the same noise, as `recammaster render` without --seed
OFFICIAL_PRESETS = tuple(sorted(PRESETS_BY_NUMBER))  # upstream's --cam_type 1..10
CHANCE = 1 / len(OFFICIAL_PRESETS)  # preset following of a result that ignores the camera
SOURCE_KINDS = {False: "", True: " filmed by a camera standing still"}  # the report's words for its sources
SCORED_FRAMES = slice(1, None)  # video means skip frame 0: it is the source's frame 0 by construction
SHEET_FRAMES = 3  # frames per preset on the contact sheet, evenly spaced from the first to the last
PLOT_PSNR_CAP_DB = 60.0  # bars of identical videos (infinite PSNR) are drawn this high


# ---------------------------------------------------------------------------
# Held-out scenes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOutScene:
    """One held-out scene: the source video and, for every official preset, the request and its ground truth."""

    index: int
    caption: str
    source: Array  # (T, H, W, 3) uint8, the scene's first camera
    requests: dict[int, Trajectory]  # preset number -> the preset relative to its own first frame
    targets: dict[int, Array]  # preset number -> (T, H, W, 3) uint8 ground truth
    visible: dict[int, Array]  # preset number -> (T, H, W) bool: target pixels the source shows at that time
    characters: dict[int, Array]  # preset number -> (T, H, W) bool: target pixels that show a character
    focal_px: float  # the lens, in pixels (both axes)


def held_out_scene(index: int, *, seed: int, size: int, num_frames: int, device: str | torch.device,
                   still_source: bool = False, character_speed: float = 1.0,
                   walk_share: float | None = None) -> HeldOutScene:  # fmt: skip
    """Render scene ``index`` of ``seed`` from its first camera and along the ten presets placed there.

    One render call for all eleven cameras, as ``SyntheticPairStream.render`` draws a scene's cameras; its
    depth tells which pixels of each ground truth the source shows (:func:`regions.visible_mask`), its masks
    which show a character. ``still_source``: the first camera stands still at its first pose (the simplest
    source whose characters move: where they are at a time is where the source shows them then).
    ``character_speed``: how fast the characters' time runs in every video
    (:func:`recammaster.data.synth.engine.to_render_scene`); 0 holds them as they stand at frame 0, the truth of a
    model that moves the source's first frame by the camera. ``walk_share``: the scenes' mix of a training pool that set
    it (``SyntheticLatentPool(walk_share=)``), so that its seed gives the very scenes it trained on.
    """
    spec = make_scene(seed, index, num_frames, walk_share)
    start = spec.trajectories[0].poses
    if still_source:
        start = np.broadcast_to(start[0], start.shape).copy()
    requests = {number: get_preset(number)(num_frames=num_frames) for number in OFFICIAL_PRESETS}
    poses = np.stack([start] + [request.placed_at(start[0]).poses for request in requests.values()])
    intrinsics = crop_intrinsics(spec.lens, size, size)
    rendered = render_tensors(to_render_scene(spec, character_speed=character_speed), poses, intrinsics,
                              (size, size), device=device, depth=True, masks=True)  # fmt: skip
    images, depth = rendered.images.cpu().numpy(), rendered.depth.cpu().numpy()
    targets = dict(zip(requests, images[1:], strict=True))
    visible = {number: visible_mask(depth[camera], depth[0], poses[camera], poses[0], intrinsics)
               for camera, number in enumerate(requests, start=1)}  # fmt: skip
    characters = dict(zip(requests, rendered.masks[1:].cpu().numpy() > 0, strict=True))
    return HeldOutScene(index, describe_scene(spec), images[0], requests, targets, visible, characters,
                        float(intrinsics[0, 0]))  # fmt: skip


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseScores:
    """One (scene, preset): per-frame metrics of the result and of the copied source against the ground truth."""

    scene: int
    preset: int
    psnr_model: Array  # (T,) dB
    psnr_copy: Array
    ssim_model: Array  # (T,)
    ssim_copy: Array
    nearest: int  # the preset whose ground truth is nearest (MSE over all frames) to the result
    character_psnr_model: float  # dB over the ground truth's character pixels, frames 1..T-1; NaN if none
    character_psnr_copy: float

    @property
    def follows(self) -> bool:
        return self.nearest == self.preset


def pooled_psnr(prediction: Array, target: Array, mask: Array) -> float:
    """PSNR over every pixel of every frame where ``mask`` (T, H, W) is true, as one number: NaN if none is."""
    width = np.shape(target)[2]
    return float(masked_psnr(prediction.reshape(1, -1, width, 3), target.reshape(1, -1, width, 3),
                             mask.reshape(1, -1, width))[0])  # fmt: skip


def score_case(scene: HeldOutScene, preset: int, result: Array) -> CaseScores:
    """Compare ``result`` (the re-rendering of ``scene`` along ``preset``) and the source with the ground truth."""
    target, characters = scene.targets[preset], scene.characters[preset][SCORED_FRAMES]
    distances = {number: float(mse(result, candidate).mean()) for number, candidate in scene.targets.items()}
    return CaseScores(
        scene=scene.index,
        preset=preset,
        psnr_model=psnr(result, target),
        psnr_copy=psnr(scene.source, target),
        ssim_model=ssim(result, target),
        ssim_copy=ssim(scene.source, target),
        nearest=min(distances, key=distances.__getitem__),
        character_psnr_model=pooled_psnr(result[SCORED_FRAMES], target[SCORED_FRAMES], characters),
        character_psnr_copy=pooled_psnr(scene.source[SCORED_FRAMES], target[SCORED_FRAMES], characters),
    )


@dataclass(frozen=True)
class PresetScores:
    """One preset's numbers, means over scenes; video PSNR/SSIM also over frames 1..T-1."""

    preset: int
    name: str
    psnr_model: float
    psnr_copy: float
    ssim_model: float
    ssim_copy: float
    follows: float  # fraction of scenes whose result is nearest to this preset's ground truth
    frame0_psnr: float  # the result's frame 0 against the source's frame 0
    character_psnr_model: float  # means over the scenes whose ground truth shows a character (NaN if none does)
    character_psnr_copy: float
    per_frame: dict[str, Array]  # psnr_model, psnr_copy, ssim_model, ssim_copy: (T,) means over scenes

    @property
    def beats_copy(self) -> bool:
        """Better than copying the source on both PSNR and SSIM."""
        return self.psnr_model > self.psnr_copy and self.ssim_model > self.ssim_copy


def summarise(cases: Sequence[CaseScores], preset: int) -> PresetScores:
    mine = [case for case in cases if case.preset == preset]
    per_frame = {
        key: np.mean([getattr(case, key) for case in mine], axis=0)
        for key in ("psnr_model", "psnr_copy", "ssim_model", "ssim_copy")
    }
    video = {key: float(np.mean([getattr(case, key)[SCORED_FRAMES].mean() for case in mine])) for key in per_frame}
    return PresetScores(
        preset=preset,
        name=get_preset(preset).name,
        follows=float(np.mean([case.follows for case in mine])),
        frame0_psnr=float(np.mean([case.psnr_model[0] for case in mine])),
        character_psnr_model=_mean_where_shown([case.character_psnr_model for case in mine]),
        character_psnr_copy=_mean_where_shown([case.character_psnr_copy for case in mine]),
        per_frame=per_frame,
        **video,
    )


def _mean_where_shown(values: Sequence[float]) -> float:
    """The mean of the cases' character PSNRs, skipping scenes without a character in view (NaN)."""
    shown = [value for value in values if not np.isnan(value)]
    return float(np.mean(shown)) if shown else math.nan


@dataclass(frozen=True)
class PresetReport:
    """Every (scene, preset) case, per-preset summaries, and the first scene's videos for the pictures."""

    settings: dict[str, Any]
    cases: list[CaseScores]
    example: HeldOutScene = field(repr=False)
    example_results: dict[int, Array] = field(repr=False)  # preset -> the first scene's result

    @property
    def presets(self) -> list[PresetScores]:
        return [summarise(self.cases, number) for number in self.settings["presets"]]

    @property
    def follows(self) -> float:
        """Preset following over every case."""
        return float(np.mean([case.follows for case in self.cases]))

    def to_json(self) -> str:
        """Strict JSON; an infinite PSNR (identical frames) is written as null."""
        presets = self.presets
        payload = {
            "settings": self.settings,
            "overall": {"follows": self.follows, "chance": CHANCE, "beats_copy": sum(s.beats_copy for s in presets)},
            "presets": [{**asdict(s), "beats_copy": s.beats_copy} for s in presets],
            "cases": [{**asdict(c), "follows": c.follows} for c in self.cases],
        }
        return json.dumps(_plain(payload), indent=1, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        """The per-preset table with an overall row, and how the numbers were made."""
        s = self.settings
        motion = "" if s["motion_guidance"] == 1 else f", motion guidance {s['motion_guidance']}"
        lines = [
            f"Held-out synthetic scenes {s['first_scene']}..{s['first_scene'] + s['num_scenes'] - 1} of seed "
            f"{s['seed']}{SOURCE_KINDS[s['still_source']]}, {s['size']}x{s['size']}, {s['num_frames']} frames, "
            f"{s['steps']} steps, guidance {s['guidance']}{motion}. PSNR (dB) and SSIM against the ground truth, "
            f"means over scenes and frames 1.."
            f"{s['num_frames'] - 1}; copy = the source video as the prediction; follows = the result is nearest to "
            f"the requested preset's ground truth among the ten (chance {CHANCE:.0%}).",
            "",
            "| preset | PSNR model | PSNR copy | SSIM model | SSIM copy | follows | beats copy | characters model "
            "| characters copy |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        presets = self.presets
        for p in presets:
            lines.append(
                f"| {p.preset} {p.name} | {p.psnr_model:.2f} | {p.psnr_copy:.2f} | {p.ssim_model:.4f} | "
                f"{p.ssim_copy:.4f} | {p.follows:.0%} | {'yes' if p.beats_copy else 'no'} | "
                f"{p.character_psnr_model:.2f} | {p.character_psnr_copy:.2f} |"
            )

        def mean(key: str) -> float:
            return _mean_where_shown([getattr(p, key) for p in presets])

        lines.append(
            f"| all | {mean('psnr_model'):.2f} | {mean('psnr_copy'):.2f} | {mean('ssim_model'):.4f} | "
            f"{mean('ssim_copy'):.4f} | {self.follows:.0%} | {sum(p.beats_copy for p in presets)}/{len(presets)} | "
            f"{mean('character_psnr_model'):.2f} | {mean('character_psnr_copy'):.2f} |"
        )
        lines += ["", f"Frame 0 PSNR of the result against the source's frame 0: {mean('frame0_psnr'):.2f} dB.",
                  "Characters: PSNR (dB) over the pixels where the ground truth shows a character, frames 1.."
                  f"{s['num_frames'] - 1} pooled."]  # fmt: skip
        return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    """Arrays to lists and non-finite floats to None, so that the report is strict JSON."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------------------
# The evaluation
# ---------------------------------------------------------------------------


def official_preset(key: int | str) -> int:
    """The upstream number (1-10) of an official preset given by number or name."""
    number = get_preset(key).number
    if number is None:
        raise ValueError(f"preset {key!r} is not one of the ten official presets (1-10)")
    return number


def check_settings(
    num_scenes: int,
    size: int,
    num_frames: int,
    steps: int,
    guidance: float,
    presets: Sequence[int | str],
    motion_guidance: float = 1.0,
) -> tuple[int, ...]:
    """Raise ``ValueError`` naming the setting that cannot work, before any rendering; the preset numbers."""
    if num_scenes < 1:
        raise ValueError(f"num_scenes must be at least 1, got {num_scenes}")
    if size < 16 or size % 16:
        raise ValueError(f"size must be a positive multiple of 16, got {size}")
    check_render_inputs(num_frames, size, size, steps, guidance, motion_guidance=motion_guidance)
    if num_frames < 2:
        raise ValueError(f"num_frames must be at least 5 (4k+1, and the presets move), got {num_frames}")
    if not presets:
        raise ValueError("presets: give at least one preset")
    return tuple(dict.fromkeys(official_preset(key) for key in presets))


def re_render(pipeline: Pipeline, scene: HeldOutScene, preset: int, **options: Any) -> Array:
    """The pipeline's result for ``scene`` along ``preset``, checked to be a video like the ground truth."""
    frames = np.asarray(pipeline(scene.source, scene.requests[preset], scene.caption, **options).frames)
    expected = scene.targets[preset]
    if frames.shape != expected.shape or frames.dtype != np.uint8:
        raise ValueError(
            f"scene {scene.index}, preset {preset}: the pipeline returned {frames.dtype} {frames.shape} frames, "
            f"expected uint8 {expected.shape}"
        )
    return frames


def evaluate_presets(
    pipeline: Pipeline,
    *,
    seed: int = DEFAULT_SEED,
    num_scenes: int = DEFAULT_SCENES,
    size: int = DEFAULT_SIZE,
    num_frames: int = NUM_FRAMES,
    presets: Sequence[int | str] = OFFICIAL_PRESETS,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    device: str | torch.device = "cpu",
    progress: bool = True,
    on_result: Callable[[HeldOutScene, int, Array], None] | None = None,
    still_source: bool = False,
    motion_guidance: float = 1.0,
) -> PresetReport:
    """Re-render scenes 1..num_scenes of ``seed`` along each preset with ``pipeline`` and score the results.

    ``pipeline`` is called as ``recammaster render`` calls it (noise seed 0 for every video), so any
    callable with that signature can stand in for the model, e.g. the ground truth itself in tests.
    Scenes are rendered on ``device``. ``on_result(scene, preset, result)`` sees every result (e.g. to keep
    it as a case, :func:`recammaster.evaluation.protocols.case_writer`). ``still_source``: each scene's
    source is filmed by a camera standing still at its first camera's first pose (:func:`held_out_scene`).
    ``motion_guidance`` is the pipeline's (1: off).
    """
    numbers = check_settings(num_scenes, size, num_frames, steps, guidance, presets, motion_guidance)
    options = {"height": size, "width": size, "num_frames": num_frames, "num_inference_steps": steps,
               "guidance_scale": guidance, "motion_guidance": motion_guidance}  # fmt: skip
    cases: list[CaseScores] = []
    with tqdm(total=num_scenes * len(numbers), desc="re-rendering", unit="video", disable=not progress) as bar:
        for index in range(1, num_scenes + 1):
            scene = held_out_scene(index, seed=seed, size=size, num_frames=num_frames, device=device,
                                   still_source=still_source)  # fmt: skip
            results = {}
            for number in numbers:
                generator = torch.Generator().manual_seed(NOISE_SEED)
                results[number] = re_render(pipeline, scene, number, generator=generator, **options)
                if on_result is not None:
                    on_result(scene, number, results[number])
                cases.append(score_case(scene, number, results[number]))
                bar.update()
            if index == 1:  # kept for the pictures
                example, example_results = scene, results
    settings = {"seed": seed, "first_scene": 1, "num_scenes": num_scenes, "size": size, "num_frames": num_frames,
                "steps": steps, "guidance": guidance, "motion_guidance": motion_guidance, "noise_seed": NOISE_SEED,
                "presets": list(numbers), "still_source": still_source}  # fmt: skip
    return PresetReport(settings, cases, example, example_results)


# ---------------------------------------------------------------------------
# Files: report, pictures, videos
# ---------------------------------------------------------------------------


def video_name(preset: int) -> str:
    return f"videos/{preset:02d}_{get_preset(preset).name}.mp4"


def report_paths(out_dir: str | Path, presets: Sequence[int], *, videos: bool = True) -> list[Path]:
    """Every file :func:`write_report` writes for these presets."""
    names = ["report.json", "report.md", "scores.png", "contact_sheet.png", *map(video_name, presets if videos else [])]
    return [Path(out_dir) / name for name in names]


def plot_scores(report: PresetReport, path: str | Path, *, overwrite: bool = False) -> Path:
    """Bars per preset: PSNR and SSIM of the model against the copied source, and preset following."""
    presets = report.presets
    positions = np.arange(len(presets))
    figure = Figure(figsize=(max(6.0, 0.9 * len(presets) + 2), 8.5), layout="constrained")
    panels = figure.subplots(3, 1, sharex=True)
    for axis, key, label, cap in ((panels[0], "psnr", "PSNR (dB)", PLOT_PSNR_CAP_DB), (panels[1], "ssim", "SSIM", 1)):
        for offset, who, legend in ((-0.2, "model", "model"), (0.2, "copy", "copy the source")):
            values = np.array([getattr(p, f"{key}_{who}") for p in presets])
            axis.bar(positions + offset, np.minimum(values, cap), width=0.4, label=legend)
        axis.set_ylabel(label)
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize=8)
    panels[2].bar(positions, [100 * p.follows for p in presets], width=0.5, color="tab:green")
    panels[2].axhline(100 * CHANCE, color="grey", linestyle="--", linewidth=1, label="chance")
    panels[2].set_ylabel("follows the preset (%)")
    panels[2].set_ylim(0, 100)
    panels[2].legend(fontsize=8)
    panels[2].set_xticks(positions, [f"{p.preset}\n{p.name}" for p in presets], fontsize=8)
    s = report.settings
    figure.suptitle(f"{s['num_scenes']} held-out synthetic scenes (seed {s['seed']}), {s['size']} px, "
                    f"{s['num_frames']} frames, {s['steps']} steps", fontsize=10)  # fmt: skip
    with atomic_output(path, overwrite=overwrite) as temporary:
        figure.savefig(temporary, dpi=100)
    return Path(path)


def draw_contact_sheet(report: PresetReport, path: str | Path, *, overwrite: bool = False) -> Path:
    """The first scene: a row per preset of ground truth and result frames, the source on top."""
    scene, results = report.example, report.example_results
    frames = np.unique(np.linspace(0, len(scene.source) - 1, SHEET_FRAMES).round().astype(int))
    columns = [(kind, frame) for frame in frames for kind in ("ground truth", "result")]
    rows = [("source", None), *((f"{n} {get_preset(n).name}", n) for n in results)]
    width, height = len(columns) * THUMB_IN + 0.6, len(rows) * THUMB_IN + 0.8  # inches, margins for the labels
    figure = Figure(figsize=(width, height))
    grid = figure.add_gridspec(len(rows), len(columns), left=0.4 / width, right=0.99, bottom=0.1 / height,
                               top=1 - 0.65 / height, hspace=0.08, wspace=0.04)  # fmt: skip
    figure.suptitle(f"scene {scene.index} of seed {report.settings['seed']}: ground truth | result", fontsize=10,
                    y=1 - 0.1 / height)  # fmt: skip
    for row, (label, preset) in enumerate(rows):
        for column, (kind, frame) in enumerate(columns):
            axis = figure.add_subplot(grid[row, column])
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(f"{kind}, frame {frame}", fontsize=8)
            if column == 0:
                axis.set_ylabel(label, fontsize=8)
            if preset is not None:
                axis.imshow((scene.targets[preset] if kind == "ground truth" else results[preset])[frame])
            elif kind == "ground truth":
                axis.imshow(scene.source[frame])
            else:
                axis.set_axis_off()
    with atomic_output(path, overwrite=overwrite) as temporary:
        figure.savefig(temporary, dpi=100)
    return Path(path)


def write_report(
    report: PresetReport, out_dir: str | Path, *, overwrite: bool = False, videos: bool = True
) -> list[Path]:
    """Write report.json, report.md, scores.png, contact_sheet.png and (``videos``) videos/NN_<preset>.mp4 of
    the first scene.

    Existing files are refused (:class:`OutputExistsError`, before anything is written) unless ``overwrite``.
    """
    presets = report.settings["presets"]
    paths = report_paths(out_dir, presets, videos=videos)
    for path in paths:
        if path.exists() and not overwrite:
            raise OutputExistsError(path)
    json_path, markdown_path, scores_path, sheet_path, *video_paths = paths
    write_text_atomic(json_path, report.to_json(), overwrite=overwrite)
    write_text_atomic(markdown_path, report.to_markdown(), overwrite=overwrite)
    plot_scores(report, scores_path, overwrite=overwrite)
    draw_contact_sheet(report, sheet_path, overwrite=overwrite)
    scene = report.example
    for preset, path in zip(presets if videos else [], video_paths, strict=True):
        result = report.example_results[preset]
        inner = side_by_side(result, scene.targets[preset], labels=("", "ground truth"),
                             trajectory=scene.requests[preset])  # fmt: skip
        write_video(path, side_by_side(scene.source, inner, labels=("source", "result")), FPS, overwrite=overwrite)
    return paths
