"""Whole-pipeline peak GPU memory of an 81-frame 480x832 re-render in each memory mode.

Random weights at full size (umT5-XXL, the 1.3B ReCamMaster transformer, the Wan VAE), bf16, a stand-in
tokenizer (every prompt becomes 512 token ids: the official one cannot be downloaded here), 2 sampling
steps with guidance (peak memory does not depend on the step count). Modes: ``render --offload``'s
(``recammaster.pipeline.loading.OFFLOAD_MODES``).

    python benchmarks/pipeline_memory.py

Prints a markdown table last; with $OUT set, also writes $OUT/pipeline_memory.json.
"""

from __future__ import annotations

import time
from functools import partial

import numpy as np
import torch
from common import empty_cache, random_model, report
from diffusers import AutoencoderKLWan
from transformers import UMT5EncoderModel

from recammaster.cameras import get_preset
from recammaster.models.configs import transformer_config
from recammaster.models.text_encoder import UMT5_XXL_CONFIG
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.vae import WAN_VAE_CONFIG
from recammaster.pipeline import ReCamMasterPipeline
from recammaster.pipeline.loading import OFFLOAD_MODES, place_pipeline

DEVICE, DTYPE = torch.device("cuda"), torch.bfloat16


class StandInTokenizer:
    """Returns 512 pseudo-random ids per prompt with a full mask, like a padded umT5 tokenizer would."""

    def __call__(self, prompts, max_length=512, **_):
        generator = torch.Generator().manual_seed(len(prompts))
        ids = torch.randint(3, 256384, (len(prompts), max_length), generator=generator)
        return type("Tokens", (), {"input_ids": ids, "attention_mask": torch.ones_like(ids)})()


def build() -> ReCamMasterPipeline:
    config = transformer_config("wan2.1-t2v-1.3b")
    components = {
        "text_encoder": random_model(partial(UMT5EncoderModel, UMT5_XXL_CONFIG), DEVICE, DTYPE).to("cpu"),
        "transformer": random_model(partial(ReCamMasterTransformer3DModel, **config), DEVICE, DTYPE).to("cpu"),
        "vae": random_model(partial(AutoencoderKLWan, **WAN_VAE_CONFIG), DEVICE, DTYPE).to("cpu"),
    }
    torch.cuda.empty_cache()
    return ReCamMasterPipeline(tokenizer=StandInTokenizer(), **components)


def main() -> None:
    video = (np.random.default_rng(0).random((81, 480, 832, 3)) * 255).astype(np.uint8)
    trajectory = get_preset("arc-left")()
    rows = []
    for mode in OFFLOAD_MODES:
        if (left := torch.cuda.memory_allocated() / 2**30) > 0.01:  # it would count in this mode's peak
            raise RuntimeError(f"{left:.2f} GiB of the modes before {mode} are still allocated")
        pipeline = place_pipeline(build(), DEVICE, mode)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        frames = pipeline(video, trajectory, "a prompt", num_inference_steps=2).frames
        torch.cuda.synchronize()
        rows.append((mode, time.perf_counter() - start, torch.cuda.max_memory_allocated() / 2**30,
                     torch.cuda.max_memory_reserved() / 2**30))  # fmt: skip
        assert frames.shape == (81, 480, 832, 3)
        del pipeline, frames
        empty_cache(DEVICE)

    title = (
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, bf16, random weights, 81 x 480 x 832, "
        "2 steps with guidance"
    )
    columns = ["memory mode", "seconds (2 steps)", "peak GiB allocated", "peak GiB reserved"]
    report(title, columns, rows, ["", ".1f", ".2f", ".2f"], "pipeline_memory")


if __name__ == "__main__":
    main()
