"""One 81-frame 480x832 re-render on several GPUs: guidance branches apart, and context parallelism.

Launch with torchrun; every layout is timed in the same run, against one GPU:

    torchrun --nproc_per_node 4 benchmarks/multi_gpu_render.py --steps 8

Random 1.3B transformer and Wan VAE weights in bf16; random caption embeddings stand in for umT5 (its
time is the same on every layout). The sampler runs ``--steps`` steps with guidance 5 (two passes per
step); seconds per video are projected to upstream's 50 steps plus the measured VAE encode and decode.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.distributed as dist
from diffusers import AutoencoderKLWan

from benchmarks.common import empty_cache, random_model, report
from recammaster.cameras import get_preset
from recammaster.models.configs import transformer_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.vae import WAN_VAE_CONFIG, decode_latents
from recammaster.pipeline import ReCamMasterPipeline
from recammaster.pipeline.parallel import ParallelLayout, enable_multi_gpu, init_distributed, plan_layout
from recammaster.pipeline.sampler import flow_match_sigmas


def timed(function):
    torch.cuda.synchronize()
    dist.barrier()
    start = time.perf_counter()
    result = function()
    torch.cuda.synchronize()
    return result, time.perf_counter() - start


def layouts(world: int) -> list[ParallelLayout]:
    """The planned layout first, then the others worth knowing: context parallelism alone (Ulysses where the
    12 heads allow, the ring), and the guidance branches with the ring."""
    candidates = [plan_layout(world, 12), ParallelLayout(1, 1, world), ParallelLayout(1, world, 1)]
    if world % 2 == 0:
        candidates += [ParallelLayout(2, world // 2, 1), ParallelLayout(2, 1, world // 2)]
    chosen = []
    for layout in candidates:
        if layout not in chosen and (12 % layout.ulysses == 0) and layout.world_size == world:
            chosen.append(layout)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    arguments = parser.parse_args()
    rank, world, device = init_distributed("cuda")
    device = torch.device(device)

    def build() -> ReCamMasterPipeline:  # a fresh one per layout: context parallelism cannot be switched off
        transformer = random_model(lambda: ReCamMasterTransformer3DModel(**transformer_config("wan2.1-t2v-1.3b")),
                                   device, torch.bfloat16)  # fmt: skip
        vae = random_model(lambda: AutoencoderKLWan(**WAN_VAE_CONFIG), device, torch.bfloat16)
        pipeline = ReCamMasterPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=transformer)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    generator = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (81, 480, 832, 3), generator=generator, dtype=torch.uint8).numpy()
    positive = torch.randn(1, 512, 4096, generator=generator).to(device, torch.bfloat16)
    negative = torch.randn(1, 512, 4096, generator=generator).to(device, torch.bfloat16)
    sigmas = flow_match_sigmas(arguments.steps)

    with torch.no_grad():
        pipeline = build()
        camera = pipeline.prepare_camera(get_preset("arc-left")())
        source, encode_time = timed(lambda: pipeline.prepare_source_latents(video, 81, 480, 832))
        noise = torch.randn(source.shape, generator=torch.Generator().manual_seed(1)).to(device, torch.bfloat16)
        _, decode_time = timed(lambda: decode_latents(pipeline.vae, noise))

        def sample(pipeline: ReCamMasterPipeline) -> torch.Tensor:
            return pipeline.denoise(noise, source, camera, positive, negative, sigmas, 5.0)

        sample(pipeline)  # warm-up: kernels, cuDNN plans
        reference, single_time = timed(lambda: sample(pipeline))
        results = [("1 GPU", single_time, 0.0)]
        for layout in layouts(world):
            del pipeline
            empty_cache(torch.device("cuda"))
            pipeline = build()
            try:  # a layout diffusers refuses (every rank alike) is reported, and the others still run
                enable_multi_gpu(pipeline, layout)
                sample(pipeline)
                latents, seconds = timed(lambda: sample(pipeline))  # noqa: B023
            except (RuntimeError, ValueError, NotImplementedError) as error:
                print(f"rank {rank}: {layout} failed: {error}", flush=True)
                results.append((f"{layout}: failed", float("nan"), float("nan")))
                continue
            difference = ((latents.float() - reference.float()).abs().mean() / reference.float().abs().mean()).item()
            results.append((str(layout), seconds, difference))

    if rank == 0:
        vae_time = encode_time + decode_time
        rows = [(name, seconds / arguments.steps, 50 * seconds / arguments.steps + vae_time,
                 single_time / seconds, difference) for name, seconds, difference in results]  # fmt: skip
        report(
            f"One re-render on {world} GPUs ({torch.cuda.get_device_name()}), 1.3B random weights, bf16, guidance 5; "
            f"VAE encode {encode_time:.1f} s + decode {decode_time:.1f} s included in s/video",
            ["layout", "s / step", "s / video (50 steps)", "speed-up", "mean |diff| / mean |latent|"],
            rows, ["s", ".2f", ".1f", ".2f", ".2e"], "multi_gpu_render",
        )  # fmt: skip
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
