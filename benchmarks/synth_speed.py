"""Render speed of the synthetic data engine's ray caster, in images per second (or pairs per second).

Renders all ten cameras of one scene (frames x 10 images) and reports images/s, excluding video
encoding. Example: ``python benchmarks/synth_speed.py --device cuda --size 64 --supersample``, or a
non-square frame: ``--height 480 --width 832``. With ``--stream`` it times
:class:`recammaster.data.synth.stream.SyntheticPairStream` instead: training pairs (source and target
clips with the camera) per second, rendered and batched on the device.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from recammaster.data.synth.engine import make_scene, to_render_scene
from recammaster.data.synth.render import render
from recammaster.data.synth.stream import SyntheticPairStream, crop_intrinsics


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time_render(args, height: int, width: int) -> str:
    spec = make_scene(args.seed, args.scene, args.frames)
    scene = to_render_scene(spec)
    poses = np.stack([t.poses for t in spec.trajectories])
    intrinsics = crop_intrinsics(spec.lens, height, width)  # the lens's intrinsics when square
    options = {"device": args.device, "supersample": args.supersample, "depth": args.depth_masks,
               "masks": args.depth_masks, "chunk_rays": args.chunk_rays}  # fmt: skip
    render(scene, poses, intrinsics, (height, width), **options)  # warm-up: allocator, kernels
    best = float("inf")
    for _ in range(args.repeats):
        _synchronize(args.device)
        start = time.perf_counter()
        render(scene, poses, intrinsics, (height, width), **options)
        _synchronize(args.device)
        best = min(best, time.perf_counter() - start)
    images = 10 * args.frames
    return (
        f"device={args.device} size={height}x{width} supersample={args.supersample} "
        f"chunk={args.chunk_rays or 'default'} "
        f"threads={torch.get_num_threads()} scene={args.scene} ({spec.environment}, "
        f"{len(spec.characters)} characters): {images} images in {best:.2f} s = {images / best:.1f} images/s"
    )


def _time_stream(args, height: int, width: int) -> str:
    def stream(first_scene: int) -> SyntheticPairStream:
        return SyntheticPairStream(seed=args.seed, num_frames=args.frames, batch_size=args.batch_size,
                                   device=args.device, height=height, width=width, supersample=args.supersample,
                                   num_scenes=args.scenes, first_scene=first_scene)  # fmt: skip

    for _ in stream(args.scene):  # warm-up on the same scenes: allocator, kernels
        pass
    best = float("inf")
    pairs = 0
    for _ in range(args.repeats):
        _synchronize(args.device)
        start = time.perf_counter()
        pairs = sum(len(batch["caption"]) for batch in stream(args.scene))
        _synchronize(args.device)
        best = min(best, time.perf_counter() - start)
    return (
        f"stream device={args.device} size={height}x{width} frames={args.frames} batch={args.batch_size} "
        f"threads={torch.get_num_threads()} scenes={args.scene}..{args.scene + args.scenes - 1}: "
        f"{pairs} pairs in {best:.2f} s = {pairs / best:.2f} pairs/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    parser.add_argument("--size", type=int, default=64, help="square image size in pixels")
    parser.add_argument("--height", type=int, help="image height (with --width; overrides --size)")
    parser.add_argument("--width", type=int, help="image width (with --height; overrides --size)")
    parser.add_argument("--frames", type=int, default=81, help="frames per camera (10 cameras)")
    parser.add_argument("--scene", type=int, default=1, help="scene number to render (the first, with --stream)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supersample", action="store_true", help="2x2 rays per pixel")
    parser.add_argument("--depth-masks", action="store_true", help="also produce depth and masks")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up; the best counts")
    parser.add_argument("--chunk-rays", type=int, help="rays cast together (default: the renderer's for the device)")
    parser.add_argument("--stream", action="store_true", help="time SyntheticPairStream: pairs/s on the device")
    parser.add_argument("--scenes", type=int, default=2, help="scenes per timed run with --stream")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per batch with --stream")
    args = parser.parse_args()
    if (args.height is None) != (args.width is None):
        parser.error("give both --height and --width, or neither")
    height, width = (args.size, args.size) if args.height is None else (args.height, args.width)
    print(_time_stream(args, height, width) if args.stream else _time_render(args, height, width))


if __name__ == "__main__":
    main()
