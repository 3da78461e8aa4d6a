"""Does a model take its characters from the source frame of the same time? One prediction from pure noise, or
(``--motion``) whole re-renders scored against the characters' true motion.

    python scripts/source_use.py [--model-dir DIR ...] [--scenes 3] [--seed 1000 [--walk-share W]] [--presets 1 2 6 9]
                                 [--still-source] [--motion [--steps 16] [--motion-guidance G]] [--size N]
                                 [-o OUT.json]

For held-out scenes of ``recammaster eval synthetic``, the model predicts the clean target in one step from pure
noise (sigma 1: all it knows comes from the source and the camera), once with the source video as it is and once
with its first frame held for all 81 frames. Both predictions are scored on the pixels where the ground truth shows
a character, per quarter of the clip. A model that re-films the characters' motion needs the source's later frames:
"as is" beats "frozen", the more so the later the quarter. A model that warps the first frame by the camera scores
the same on both. Session 14 (H100, bf16, scenes 1-3, presets 1, 2, 6, 9): the shipped model scores 0.1-0.3 dB
*higher* with the frozen source in every quarter (as is 16.34 / 15.31 / 14.67 / 14.28 dB, frozen 16.44 / 15.47 /
15.02 / 14.57): its characters come from the first frame, moved by the camera (docs/embedded.md).

``--motion`` asks the same of what a user sees. Each model re-renders the source along each preset as ``recammaster
render`` does (noise seed 0, no guidance), and the result is compared with two truths: the scene's, and the same
scene with the characters held as they stand at frame 0 (``held_out_scene(character_speed=0)``). Over the pixels
where the two truths differ (a character, or its shadow, that has moved since frame 0) the score is 10 log10 of the
result's squared error against the frozen truth over its error against the true one, pooled over scenes and presets,
per quarter: above 0 dB the characters are nearer to where they really are, below 0 nearer to where they stood at
frame 0. It puts issue 7's "a person should see the characters keep their motion" in numbers (session 16).

Each model runs at the frame size and motion guidance it was made for (its ``render_defaults.json``) unless
``--size`` or ``--motion-guidance`` sets one for all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recammaster.evaluation.synthetic import DEFAULT_SEED, NOISE_SEED, held_out_scene, pooled_psnr, re_render
from recammaster.fileio import write_text_atomic
from recammaster.hub import embedded_model_dir
from recammaster.models.vae import decode_latents
from recammaster.pipeline.loading import load_pipeline
from recammaster.pipeline.recammaster_pipeline import postprocess_frames, read_render_defaults

QUARTERS = ((1, 21), (21, 41), (41, 61), (61, 81))  # frames; frame 0 is the source's own
SOURCES = ("as is", "frozen")
FRAMES = 81


@torch.no_grad()
def one_step_prediction(pipeline, video: np.ndarray, request, caption: str, noise: torch.Tensor) -> np.ndarray:
    """The frames of the model's clean target predicted at sigma 1 (x0 = noise - velocity)."""
    text, _ = pipeline.encode_prompt(caption, None, 512)
    source = pipeline.prepare_source_latents(video, len(video), *video.shape[1:3])
    camera = pipeline.prepare_camera(request)
    noise = noise.to(source)
    timestep = torch.full((1,), 1000.0, device=source.device, dtype=source.dtype)
    velocity = pipeline.transformer(torch.cat([noise, source], 2), timestep, text, camera, source_velocity=False).sample
    clean = (noise - velocity).to(pipeline.vae.dtype)
    return postprocess_frames(decode_latents(pipeline.vae, clean, whole_clip=pipeline.whole_clip_vae)[0])


def character_scores(pipeline, scenes: int, presets: list[int], size: int, device: str,
                     **scene_options: Any) -> dict[str, list[float]]:  # fmt: skip
    """Mean character PSNR per quarter, over scenes and presets, for each kind of source; ``scene_options``:
    ``held_out_scene``'s seed, still_source and walk_share."""
    scores = {kind: [] for kind in SOURCES}
    for index in range(1, scenes + 1):
        scene = held_out_scene(index, size=size, num_frames=FRAMES, device=device, **scene_options)
        frozen = np.repeat(scene.source[:1], len(scene.source), axis=0)
        for preset in presets:
            target, shown = scene.targets[preset], scene.characters[preset]
            noise = torch.randn((1, *_latent_shape(pipeline, size)), generator=torch.Generator().manual_seed(0))
            for kind, video in zip(SOURCES, (scene.source, frozen), strict=True):
                frames = one_step_prediction(pipeline, video, scene.requests[preset], scene.caption, noise)
                scores[kind].append([pooled_psnr(frames[a:b], target[a:b], shown[a:b]) for a, b in QUARTERS])
    return {kind: np.nanmean(np.array(rows), axis=0).round(2).tolist() for kind, rows in scores.items()}


def motion_errors(result: np.ndarray, truth: np.ndarray, frozen: np.ndarray) -> np.ndarray:
    """(quarters, 2): the result's summed squared error against the frozen truth and against the true one, over
    the pixels where the two truths differ."""
    moved = (truth != frozen).any(axis=-1)
    errors = []
    for a, b in QUARTERS:
        shown = moved[a:b]
        result_q = result[a:b][shown].astype(np.float64)
        errors.append([((result_q - frozen[a:b][shown]) ** 2).sum(), ((result_q - truth[a:b][shown]) ** 2).sum()])
    return np.array(errors)


def motion_scores(pipeline, scenes: int, presets: list[int], steps: int, size: int, device: str,
                  motion_guidance: float = 1.0, **scene_options: Any) -> list[float]:  # fmt: skip
    """Per quarter, dB by which the results are nearer to the characters' true motion than to frame 0's poses."""
    totals = np.zeros((len(QUARTERS), 2))
    for index in range(1, scenes + 1):
        options = {"size": size, "num_frames": FRAMES, "device": device, **scene_options}
        scene = held_out_scene(index, **options)
        frozen = held_out_scene(index, character_speed=0, **options)
        for preset in presets:
            result = re_render(pipeline, scene, preset, generator=torch.Generator().manual_seed(NOISE_SEED),
                               height=size, width=size, num_frames=FRAMES, num_inference_steps=steps,
                               guidance_scale=1.0, motion_guidance=motion_guidance)  # fmt: skip
            totals += motion_errors(result, scene.targets[preset], frozen.targets[preset])
    return (10 * np.log10(totals[:, 0] / totals[:, 1])).round(2).tolist()


def _latent_shape(pipeline, size: int) -> tuple[int, int, int, int]:
    config = pipeline.vae.config
    spatial = size // config.scale_factor_spatial
    return config.z_dim, FRAMES // config.scale_factor_temporal + 1, spatial, spatial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, action="append", help="a saved pipeline (default: the shipped one)")
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="the scenes' seed (default: the held-out one; 0 gives scenes the shipped model trained on)",
    )
    parser.add_argument(
        "--walk-share",
        type=float,
        help="the chance a character walks, as a pool's pool_walk_share (with its seed: the scenes it trained on)",
    )
    parser.add_argument("--presets", type=int, nargs="+", default=[1, 2, 6, 9])
    parser.add_argument("--still-source", action="store_true", help="film the source with a camera standing still")
    parser.add_argument("--motion", action="store_true", help="score whole re-renders against the characters' motion")
    parser.add_argument("--steps", type=int, default=16, help="--motion's sampling steps (the shipped model's: 16)")
    parser.add_argument("--size", type=int, help="square frame size for every model (default: each model's own)")
    parser.add_argument("--motion-guidance", type=float, help="--motion's motion guidance (default: each model's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("-o", "--output", type=Path, help="also write the numbers here (JSON)")
    args = parser.parse_args()
    results = {}
    scene_options = {"seed": args.seed, "still_source": args.still_source, "walk_share": args.walk_share}
    for model_dir in args.model_dir or [embedded_model_dir()]:
        pipeline = load_pipeline(model_dir, args.device, "none")
        defaults = read_render_defaults(model_dir)
        size = args.size or int(defaults["height"])
        motion_guidance = args.motion_guidance if args.motion_guidance is not None else defaults["motion_guidance"]
        pipeline.set_progress_bar_config(disable=True)
        if args.motion:
            scores = motion_scores(pipeline, args.scenes, args.presets, args.steps, size, args.device,
                                   motion_guidance, **scene_options)  # fmt: skip
            results[str(model_dir)] = {"motion (dB)": scores}
        else:
            results[str(model_dir)] = character_scores(pipeline, args.scenes, args.presets, size, args.device,
                                                       **scene_options)  # fmt: skip
    if args.output:
        write_text_atomic(args.output, json.dumps(results, indent=1) + "\n")
    print("| model | measure | " + " | ".join(f"frames {a}-{b - 1}" for a, b in QUARTERS) + " |")
    print("|---|---|" + "---|" * len(QUARTERS))
    for model, kinds in results.items():
        for kind, values in kinds.items():
            print(f"| {model} | {kind} | " + " | ".join(f"{value:.2f}" for value in values) + " |")


if __name__ == "__main__":
    main()
