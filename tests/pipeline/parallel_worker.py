"""Run by ``torchrun`` from test_parallel.py: one render on one rank, then the same render spread over all ranks.

Usage: torchrun --nproc_per_node N parallel_worker.py PIPELINE_DIR GUIDANCE RING ULYSSES RESULT_JSON
"""

import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist

from recammaster.pipeline import ReCamMasterPipeline
from recammaster.pipeline.parallel import ParallelLayout, enable_multi_gpu

# diffusers picks a device index modulo the accelerator count, which is 0 on a CPU-only machine
torch.accelerator.device_count = lambda: 1


def render(pipeline: ReCamMasterPipeline) -> np.ndarray:
    video = (np.arange(5 * 32 * 32 * 3).reshape(5, 32, 32, 3) % 251).astype(np.uint8)
    latents = pipeline(video, "arc-left", "a scene", height=32, width=32, num_frames=5, num_inference_steps=3,
                       guidance_scale=3.0, output_type="latent").frames  # fmt: skip
    return latents.float().numpy()


def main() -> None:
    folder, guidance, ring, ulysses, result = sys.argv[1:]
    dist.init_process_group("gloo")
    pipeline = ReCamMasterPipeline.load(folder, torch_dtype=torch.float32)
    pipeline.set_progress_bar_config(disable=True)
    alone = render(pipeline)
    enable_multi_gpu(pipeline, ParallelLayout(int(guidance), int(ring), int(ulysses)), "cpu")
    together = render(pipeline)
    differences = [None] * dist.get_world_size()
    dist.all_gather_object(differences, float(np.abs(together - alone).max()))
    if dist.get_rank() == 0:
        with open(result, "w") as handle:
            json.dump({"max_difference": differences, "scale": float(np.abs(alone).max())}, handle)
    dist.barrier()
    dist.destroy_process_group()
    # Functional collectives leave a C++ thread behind whose destructor can abort the interpreter's teardown
    # ("terminate called without an active exception"); everything is written, so leave without teardown.
    os._exit(0)


if __name__ == "__main__":
    main()
