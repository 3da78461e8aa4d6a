"""The Wan VAE by chunks (diffusers, upstream) against whole clips at once (recammaster.models.whole_clip_vae).

    python benchmarks/vae_whole_clip.py [VAE_DIR ...] [--device cuda] [--batch 8] [--size 128] [--frames 81]

For each VAE folder (default: the shipped embedded model's): a training step (encode, decode, L1, backward) and
an inference encode and decode, each way; the best of --repeats after a warm-up, peak memory on CUDA, and how far
apart the two ways' outputs are. Prints a markdown table last; with $OUT set, also writes
$OUT/vae_whole_clip.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import report
from diffusers import AutoencoderKLWan

from recammaster.hub import embedded_model_dir
from recammaster.models.whole_clip_vae import decode_whole_clip, encode_whole_clip


def train_step(vae: AutoencoderKLWan, video: torch.Tensor, whole: bool) -> torch.Tensor:
    posterior = encode_whole_clip(vae, video) if whole else vae.encode(video).latent_dist
    reconstruction = decode_whole_clip(vae, posterior.mean) if whole else vae.decode(posterior.mean).sample
    (reconstruction.float() - video.float()).abs().mean().backward()
    return reconstruction.detach()


@torch.no_grad()
def inference(vae: AutoencoderKLWan, video: torch.Tensor, whole: bool) -> torch.Tensor:
    latents = encode_whole_clip(vae, video).mean if whole else vae.encode(video).latent_dist.mean
    return decode_whole_clip(vae, latents) if whole else vae.decode(latents).sample


def measured(work, device: torch.device, repeats: int) -> tuple[torch.Tensor, float, float]:
    """The output of ``work()``, its best seconds over ``repeats`` runs after a warm-up, and peak GiB on CUDA."""
    cuda = device.type == "cuda"
    work()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        output = work()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return output, best, (torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vaes", nargs="*", type=Path, help="VAE folders (default: the embedded model's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--repeats", type=int, default=2)
    arguments = parser.parse_args()
    device = torch.device(arguments.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    folders = arguments.vaes or [embedded_model_dir() / "vae"]
    generator = torch.Generator().manual_seed(0)
    shape = (arguments.batch, 3, arguments.frames, arguments.size, arguments.size)
    video = (torch.rand(shape, generator=generator) * 2 - 1).to(device, dtype)

    rows = []
    for folder in folders:
        vae = AutoencoderKLWan.from_pretrained(folder).to(device, dtype)
        name = folder.parent.name if folder.name == "vae" else folder.name
        for task, work in (("train step", train_step), ("encode + decode", inference)):
            chunks, chunk_seconds, chunk_peak = measured(lambda: work(vae, video, False), device, arguments.repeats)  # noqa: B023
            whole, whole_seconds, whole_peak = measured(lambda: work(vae, video, True), device, arguments.repeats)  # noqa: B023
            difference = (whole.float() - chunks.float()).abs().max().item()
            rows.append((name, task, chunk_seconds, whole_seconds, chunk_seconds / whole_seconds, chunk_peak,
                         whole_peak, difference))  # fmt: skip
            vae.zero_grad(set_to_none=True)

    title = (f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}, {dtype}, "
             f"{torch.get_num_threads()} threads, video {tuple(shape)}")  # fmt: skip
    columns = ["VAE", "work", "s, chunks", "s, whole clip", "speed-up", "peak GiB, chunks", "peak GiB, whole clip",
               "max |whole - chunks|"]  # fmt: skip
    report(title, columns, rows, ["", "", ".2f", ".2f", ".2f", ".2f", ".2f", ".1e"], "vae_whole_clip")


if __name__ == "__main__":
    main()
