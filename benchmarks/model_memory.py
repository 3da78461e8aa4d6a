"""Peak GPU memory of each ReCamMaster component, resident and with group offloading.

Random weights, bf16, one 81-frame 480x832 video (65,520 transformer tokens): the umT5-XXL text encoder
encoding two 512-token prompts, one transformer forward, and the VAE encoding the source video and
decoding the result. Peaks are per component, measured alone; a pipeline runs them one after another,
so its peak is the largest of the components that are on the GPU at the same time.

    python benchmarks/model_memory.py

Prints a markdown table last; with $OUT set, also writes $OUT/model_memory.json.
"""

from __future__ import annotations

from functools import partial

import torch
from common import random_model, report, timed
from diffusers import AutoencoderKLWan
from transformers import UMT5EncoderModel

from recammaster.models.configs import transformer_config
from recammaster.models.memory import MEMORY_MODES, place
from recammaster.models.text_encoder import UMT5_XXL_CONFIG
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.vae import WAN_VAE_CONFIG

DEVICE = torch.device("cuda")
DTYPE = torch.bfloat16


def both_modes(name: str, model: torch.nn.Module, *args: object, **kwargs: object) -> list[tuple]:
    """Time ``model(*args, **kwargs)`` resident on the GPU, then group-offloaded from the CPU."""
    rows = []
    for mode in MEMORY_MODES:
        placed = place(model, DEVICE, mode)
        seconds, peak = timed(partial(placed, *args, **kwargs), 1)
        rows.append((name, mode, seconds, peak))
        if mode == "resident":
            placed.to("cpu")
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    text_encoder = random_model(partial(UMT5EncoderModel, UMT5_XXL_CONFIG), DEVICE, DTYPE)
    ids = torch.randint(0, 256384, (2, 512), device=DEVICE)
    rows = both_modes(
        "umT5-XXL text encoder, 2 x 512 tokens", text_encoder, input_ids=ids, attention_mask=torch.ones_like(ids)
    )
    del text_encoder
    torch.cuda.empty_cache()

    config = transformer_config("wan2.1-t2v-1.3b")
    transformer = random_model(partial(ReCamMasterTransformer3DModel, **config), DEVICE, DTYPE)
    latents = torch.randn(1, 16, 42, 60, 104, device=DEVICE, dtype=DTYPE)
    context = torch.randn(1, 512, 4096, device=DEVICE, dtype=DTYPE)
    camera = torch.randn(1, 21, 12, device=DEVICE, dtype=DTYPE)
    timestep = torch.tensor([500.0], device=DEVICE)
    rows += both_modes("ReCamMaster transformer, 65,520 tokens", transformer, latents, timestep, context, camera)
    del transformer
    torch.cuda.empty_cache()

    vae = random_model(partial(AutoencoderKLWan, **WAN_VAE_CONFIG), DEVICE, DTYPE)
    video = torch.rand(1, 3, 81, 480, 832, device=DEVICE, dtype=DTYPE) * 2 - 1
    z = torch.randn(1, 16, 21, 60, 104, device=DEVICE, dtype=DTYPE)
    seconds, peak = timed(lambda: vae.encode(video).latent_dist.mode(), 1)
    rows.append(("Wan VAE encode, 81 x 480 x 832", "resident", seconds, peak))
    seconds, peak = timed(lambda: vae.decode(z).sample, 1)
    rows.append(("Wan VAE decode, 21 latent frames", "resident", seconds, peak))

    title = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, bf16, random weights, second call of two"
    columns = ["component", "memory mode", "seconds", "peak GiB allocated"]
    report(title, columns, rows, ["", "", ".2f", ".2f"], "model_memory")


if __name__ == "__main__":
    main()
