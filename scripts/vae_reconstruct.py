"""A video through a VAE and back: encode it, decode the latents, write the result, print its PSNR.

    python scripts/vae_reconstruct.py VAE_DIR VIDEO OUT.mp4 [--frames 81]

What the VAE alone keeps of a clip, before any transformer (docs/images/embedded-4x4c-vae.png and
embedded-characters-vae.png: these reconstructions side by side, through scripts/frame_grid.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from recammaster.evaluation.metrics import psnr
from recammaster.models.vae import decode_latents, encode_video, load_wan_vae
from recammaster.video import read_video, write_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vae", type=Path, help="a VAE folder (diffusers layout)")
    parser.add_argument("video", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=81, help="4k+1 frames from the start")
    args = parser.parse_args()
    frames = read_video(args.video, args.frames)  # (T, H, W, 3) uint8
    vae = load_wan_vae(args.vae, torch_dtype=torch.float32)
    video = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float().div(127.5).sub(1)  # (1, 3, T, H, W)
    with torch.no_grad():
        decoded = decode_latents(vae, encode_video(vae, video))[0]
    result = decoded.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).numpy()
    write_video(args.out, result, overwrite=True)
    print(f"wrote {args.out}: {float(np.mean(psnr(result, frames))):.2f} dB over {len(frames)} frames")


if __name__ == "__main__":
    main()
