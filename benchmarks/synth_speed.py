"""Render speed of the synthetic data engine's ray caster, in images per second.

Renders all ten cameras of one scene (frames x 10 images) and reports images/s, excluding video
encoding. Example: ``python benchmarks/synth_speed.py --device cuda --size 64 --supersample``.
"""

from __future__ import annotations

import argparse
import time

import torch

from recammaster.data.synth.engine import make_scene, render_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    parser.add_argument("--size", type=int, default=64, help="square image size in pixels")
    parser.add_argument("--frames", type=int, default=81, help="frames per camera (10 cameras)")
    parser.add_argument("--scene", type=int, default=1, help="scene number to render")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supersample", action="store_true", help="2x2 rays per pixel")
    parser.add_argument("--depth-masks", action="store_true", help="also produce depth and masks")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up; the best counts")
    args = parser.parse_args()

    spec = make_scene(args.seed, args.scene, args.frames)
    options = {
        "device": args.device,
        "supersample": args.supersample,
        "depth": args.depth_masks,
        "masks": args.depth_masks,
    }
    render_scene(spec, args.size, **options)  # warm-up: allocator, kernels
    best = float("inf")
    for _ in range(args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        render_scene(spec, args.size, **options)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    images = 10 * args.frames
    print(
        f"device={args.device} size={args.size} supersample={args.supersample} threads={torch.get_num_threads()} "
        f"scene={args.scene} ({spec.environment}, {len(spec.characters)} characters): "
        f"{images} images in {best:.2f} s = {images / best:.1f} images/s"
    )


if __name__ == "__main__":
    main()
