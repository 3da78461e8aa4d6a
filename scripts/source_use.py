"""Does a model take its characters from the source frame of the same time? One prediction from pure noise.

    python scripts/source_use.py [--model-dir DIR ...] [--scenes 3] [--presets 1 2 6 9] [--still-source] [-o OUT.json]

For held-out scenes of ``recammaster eval synthetic``, the model predicts the clean target in one step from pure
noise (sigma 1: all it knows comes from the source and the camera), once with the source video as it is and once
with its first frame held for all 81 frames. Both predictions are scored on the pixels where the ground truth shows
a character, per quarter of the clip. A model that re-films the characters' motion needs the source's later frames:
"as is" beats "frozen", the more so the later the quarter. A model that warps the first frame by the camera scores
the same on both. Session 14 (H100, bf16, scenes 1-3, presets 1, 2, 6, 9): the shipped model scores 0.1-0.3 dB
*higher* with the frozen source in every quarter (as is 16.34 / 15.31 / 14.67 / 14.28 dB, frozen 16.44 / 15.47 /
15.02 / 14.57): its characters come from the first frame, moved by the camera (docs/embedded.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from recammaster.evaluation.synthetic import DEFAULT_SEED, held_out_scene, pooled_psnr
from recammaster.fileio import write_text_atomic
from recammaster.hub import embedded_model_dir
from recammaster.models.vae import decode_latents
from recammaster.pipeline.loading import load_pipeline
from recammaster.pipeline.recammaster_pipeline import postprocess_frames

QUARTERS = ((1, 21), (21, 41), (41, 61), (61, 81))  # frames; frame 0 is the source's own
SOURCES = ("as is", "frozen")


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


def character_scores(pipeline, scenes: int, presets: list[int], device: str,
                     still_source: bool = False) -> dict[str, list[float]]:  # fmt: skip
    """Mean character PSNR per quarter, over scenes and presets, for each kind of source."""
    scores = {kind: [] for kind in SOURCES}
    for index in range(1, scenes + 1):
        scene = held_out_scene(index, seed=DEFAULT_SEED, size=128, num_frames=81, device=device,
                               still_source=still_source)  # fmt: skip
        frozen = np.repeat(scene.source[:1], len(scene.source), axis=0)
        for preset in presets:
            target, shown = scene.targets[preset], scene.characters[preset]
            noise = torch.randn((1, *_latent_shape(pipeline)), generator=torch.Generator().manual_seed(0))
            for kind, video in zip(SOURCES, (scene.source, frozen), strict=True):
                frames = one_step_prediction(pipeline, video, scene.requests[preset], scene.caption, noise)
                scores[kind].append([pooled_psnr(frames[a:b], target[a:b], shown[a:b]) for a, b in QUARTERS])
    return {kind: np.nanmean(np.array(rows), axis=0).round(2).tolist() for kind, rows in scores.items()}


def _latent_shape(pipeline) -> tuple[int, int, int, int]:
    config = pipeline.vae.config
    spatial = 128 // config.scale_factor_spatial
    return config.z_dim, 81 // config.scale_factor_temporal + 1, spatial, spatial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, action="append", help="a saved pipeline (default: the shipped one)")
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--presets", type=int, nargs="+", default=[1, 2, 6, 9])
    parser.add_argument("--still-source", action="store_true", help="film the source with a camera standing still")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("-o", "--output", type=Path, help="also write the numbers here (JSON)")
    args = parser.parse_args()
    results = {}
    for model_dir in args.model_dir or [embedded_model_dir()]:
        pipeline = load_pipeline(model_dir, args.device, "none")
        pipeline.set_progress_bar_config(disable=True)
        results[str(model_dir)] = character_scores(pipeline, args.scenes, args.presets, args.device, args.still_source)
    if args.output:
        write_text_atomic(args.output, json.dumps(results, indent=1) + "\n")
    print("| model | source | " + " | ".join(f"frames {a}-{b - 1}" for a, b in QUARTERS) + " |")
    print("|---|---|" + "---|" * len(QUARTERS))
    for model, kinds in results.items():
        for kind, values in kinds.items():
            print(f"| {model} | {kind} | " + " | ".join(f"{value:.2f}" for value in values) + " |")


if __name__ == "__main__":
    main()
