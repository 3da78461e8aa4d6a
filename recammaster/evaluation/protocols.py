"""The two fixed protocols, each producing a folder of cases that :mod:`recammaster.evaluation.scoring` scores.

- **Ours** (``recammaster eval synthetic --cases DIR``): held-out synthetic scenes with fixed seeds
  (:mod:`recammaster.evaluation.synthetic`), re-rendered along the ten presets; every case carries its ground
  truth, the mask of the pixels the source shows, and the lens, so all metrics apply.
- **The paper's** (``recammaster eval paper VIDEOS``): the ten presets over a folder of the user's videos, each
  with a caption in a ``<video>.txt`` beside it (or one caption for all); no ground truth exists, so camera
  accuracy, matched pixels and the distribution metrics apply. Rendering resumes: cases already written are
  kept, so an interrupted run goes on where it stopped.

Each case's source is the video as the model saw it (upstream's resize and centre crop to the model's size),
so that source and result compare pixel for pixel in time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from recammaster.cameras.presets import get_preset
from recammaster.errors import ReCamMasterError
from recammaster.evaluation.cases import Case, CaseError, locate_parts, write_case
from recammaster.evaluation.synthetic import NOISE_SEED, OFFICIAL_PRESETS, HeldOutScene
from recammaster.video import postprocess_frames, preprocess_frames, read_video, require_frames

Array = np.ndarray
INPUT_VIDEO_SUFFIXES = (".mp4", ".mov", ".webm")


def case_name(stem: str, preset: int) -> str:
    """``<stem>_<NN>-<preset name>``: a video's cases sort together, in preset order."""
    return f"{stem}_{preset:02d}-{get_preset(preset).name}"


def synthetic_case(scene: HeldOutScene, preset: int, result: Array) -> Case:
    """One re-rendering of a held-out scene as a case with its ground truth, visibility mask and lens."""
    return Case(name=case_name(f"scene{scene.index:03d}", preset), source=scene.source, result=result,
                trajectory=scene.requests[preset], caption=scene.caption, target=scene.targets[preset],
                visible=scene.visible[preset], focal_px=scene.focal_px)  # fmt: skip


def case_writer(cases_dir: str | Path, *, overwrite: bool = False) -> Callable[[HeldOutScene, int, Array], None]:
    """What ``evaluate_presets(on_result=...)`` calls to keep every synthetic case in ``cases_dir``."""

    def write(scene: HeldOutScene, preset: int, result: Array) -> None:
        write_case(cases_dir, synthetic_case(scene, preset, result), overwrite=overwrite)

    return write


def user_videos(videos_dir: str | Path, caption: str | None = None) -> list[tuple[Path, str]]:
    """The videos of a folder (mp4, mov, webm; name order) with their captions: ``<video>.txt`` beside each, or
    ``caption`` for those without one. Every missing caption is reported at once, before anything renders."""
    folder = Path(videos_dir)
    if not folder.is_dir():
        raise ReCamMasterError(f"{folder}: not a folder of videos")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in INPUT_VIDEO_SUFFIXES and p.is_file())
    if not videos:
        raise ReCamMasterError(f"{folder}: no videos ({', '.join(INPUT_VIDEO_SUFFIXES)})")
    stems = [video.stem for video in videos]
    if clashes := sorted({video.name for video in videos if stems.count(video.stem) > 1}):
        raise ReCamMasterError(f"{folder}: {', '.join(clashes)} would share their cases; rename one")
    found, missing = [], []
    for video in videos:
        sidecar = video.with_suffix(".txt")
        text = sidecar.read_text().strip() if sidecar.is_file() else caption
        if not text:
            missing.append(sidecar.name)
        found.append((video, text))
    if missing:
        raise ReCamMasterError(f"{folder}: no caption for {', '.join(missing)}; write them, or pass --caption")
    return found


def is_complete(folder: Path) -> bool:
    """Whether a case folder has every part a case needs (an interrupted run may have left only some)."""
    if not folder.is_dir():
        return False
    try:
        locate_parts(folder)
    except CaseError:
        return False
    return True


def render_paper_cases(
    pipeline: Any,
    videos: Sequence[tuple[Path, str]],
    cases_dir: str | Path,
    *,
    height: int,
    width: int,
    num_frames: int,
    steps: int,
    guidance: float,
    presets: Sequence[int] = OFFICIAL_PRESETS,
    progress: bool = True,
    motion_guidance: float = 1.0,
) -> list[Path]:
    """Re-render every video along every preset with ``pipeline`` (noise seed 0, as ``recammaster render``) into
    ``cases_dir``; cases already there are kept, not rendered again. Returns the case folders in order."""
    cases_dir = Path(cases_dir)
    for video, _ in videos:  # a short or unreadable video stops the run before anything renders
        require_frames(video, num_frames)
    options = {"height": height, "width": width, "num_frames": num_frames, "num_inference_steps": steps,
               "guidance_scale": guidance, "motion_guidance": motion_guidance}  # fmt: skip
    folders = []
    with tqdm(total=len(videos) * len(presets), desc="re-rendering", unit="video", disable=not progress) as bar:
        for video, caption in videos:
            frames = source = None
            for preset in presets:
                name = case_name(video.stem, preset)
                folders.append(cases_dir / name)
                if not is_complete(cases_dir / name):
                    if frames is None:  # the source as the model sees it: upstream's resize and centre crop
                        frames = read_video(video, num_frames)
                        source = postprocess_frames(preprocess_frames(frames, height, width))
                    trajectory = get_preset(preset)(num_frames=num_frames)
                    generator = torch.Generator().manual_seed(NOISE_SEED)
                    result = np.asarray(pipeline(frames, trajectory, caption, generator=generator, **options).frames)
                    case = Case(name=name, source=source, result=result, trajectory=trajectory, caption=caption)
                    write_case(cases_dir, case, overwrite=True)  # what an interrupted run left of it, if anything
                bar.update()
    return folders
