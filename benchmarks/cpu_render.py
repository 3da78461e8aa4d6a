"""Where the seconds of a CPU re-render go: the embedded default's quickstart job, stage by stage.

    python benchmarks/cpu_render.py [MODEL_DIR]      # default: the model shipped in the package

Renders the bundled example clip (81 frames, 128x128) along pan-right at the model's render defaults and
prints load, text, VAE encode, sampling, VAE decode and video writing times. Weights do not change the
work, so a random pipeline of the same sizes times the same.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

from recammaster.cameras import get_preset
from recammaster.hub import embedded_model_dir, example_clip
from recammaster.models.vae import decode_latents
from recammaster.pipeline.loading import load_pipeline
from recammaster.pipeline.recammaster_pipeline import read_render_defaults
from recammaster.pipeline.sampler import flow_match_sigmas
from recammaster.video import postprocess_frames, read_video, side_by_side, write_video


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else embedded_model_dir()
    defaults = read_render_defaults(folder)
    times = {}
    start = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        times[name] = now - start
        start = now

    pipeline = load_pipeline(folder, "cpu", "none")  # as `recammaster demo` loads it (the VAE's mode too)
    pipeline.set_progress_bar_config(disable=True)
    clip, caption = example_clip()
    video = read_video(clip, 81)
    trajectory = get_preset("pan-right")()
    lap("load model and clip")
    with torch.no_grad():
        positive, _ = pipeline.encode_prompt(caption, None)
        lap("text")
        source = pipeline.prepare_source_latents(video, 81, defaults["height"], defaults["width"])
        lap("VAE encode")
        noise = pipeline.prepare_latents(tuple(source.shape), None, None)
        sigmas = flow_match_sigmas(defaults["num_inference_steps"])
        latents = pipeline.denoise(noise, source, pipeline.prepare_camera(trajectory), positive, None, sigmas, 1.0)
        lap(f"sampling ({defaults['num_inference_steps']} steps)")
        frames = postprocess_frames(decode_latents(pipeline.vae, latents, whole_clip=pipeline.whole_clip_vae)[0])
        lap("VAE decode")
    with tempfile.TemporaryDirectory() as scratch:
        write_video(Path(scratch) / "demo.mp4", frames, fps=15)
        write_video(Path(scratch) / "pair.mp4", side_by_side(video, frames, trajectory=trajectory), fps=15)
    lap("write mp4 + side-by-side")
    print(f"\n{torch.get_num_threads()} threads, {defaults}, VAE on whole clips: {pipeline.whole_clip_vae}\n")
    print("| stage | s |\n|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.1f} |")
    print(f"| total | {sum(times.values()):.1f} |")


if __name__ == "__main__":
    main()
