"""One transformer forward at ReCamMaster's size: ours against diffusers' plain WanTransformer3DModel.

Random weights, bf16, batch 1, everything on the GPU; the plain model is measured at the same token
count (target + source frames) and at plain Wan's own (target only). Also: the same forward with
diffusers' group offloading (blocks kept on the CPU, streamed in), and whether a fresh ReCamMaster
model (zero camera encoder, identity projector) reproduces plain Wan on the same base weights.

    python benchmarks/transformer_forward.py [--frames 81 --height 480 --width 832 --repeats 3]

Prints a markdown table last; with $OUT set, also writes the numbers to $OUT/transformer_forward.json.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from common import empty_cache, random_model, report, timed
from diffusers import WanTransformer3DModel

from recammaster.models.configs import transformer_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", default="wan2.1-t2v-1.3b")
    parser.add_argument("--device", default="cuda", help="cpu with --config tiny: a smoke test of this script")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), torch.bfloat16
    config = transformer_config(args.config)
    latent_frames = (args.frames - 1) // 4 + 1
    shape = (1, 16, 2 * latent_frames, args.height // 8, args.width // 8)
    tokens = shape[2] * shape[3] * shape[4] // 4
    generator = torch.Generator(device).manual_seed(1)
    latents = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    context = torch.randn(1, 512, config["text_dim"], generator=generator, device=device, dtype=dtype)
    camera = torch.randn(1, latent_frames, 12, generator=generator, device=device, dtype=dtype)
    timestep = torch.tensor([500.0], device=device)
    rows = []

    wan = random_model(partial(WanTransformer3DModel, **config), device, dtype)
    ours = random_model(partial(ReCamMasterTransformer3DModel, **config), device, dtype)
    missing, unexpected = ours.load_state_dict(wan.state_dict(), strict=False)
    if unexpected or not all(".cam_encoder." in k or ".projector." in k for k in missing):
        raise RuntimeError(f"base weights do not fit: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        plain_out = wan(latents, timestep, context).sample.float()
        ours_out = ours(latents, timestep, context, camera).sample.float()
    difference = (plain_out - ours_out).abs()
    agreement = (difference.max().item(), (difference.mean() / plain_out.abs().mean()).item())
    # bf16 noise for scale: the same plain model in float32 against itself in bf16
    wan.float()
    with torch.no_grad():
        reference = wan(latents.float(), timestep, context.float()).sample
    noise = ((plain_out - reference).abs().mean() / reference.abs().mean()).item()
    wan.to(dtype)
    del plain_out, ours_out, difference, reference

    ours = ours.to("cpu")  # each model is timed alone on the GPU, so its peak is its own
    with torch.no_grad():
        seconds, peak = timed(partial(wan, latents, timestep, context), args.repeats)
        rows.append(("diffusers WanTransformer3DModel", tokens, seconds, peak))
        half = latents[:, :, :latent_frames]
        seconds, peak = timed(partial(wan, half, timestep, context), args.repeats)
        rows.append(("diffusers WanTransformer3DModel, target only", tokens // 2, seconds, peak))
    del wan
    empty_cache(device)
    ours = ours.to(device)
    with torch.no_grad():
        seconds, peak = timed(partial(ours, latents, timestep, context, camera), args.repeats)
        rows.append(("ReCamMasterTransformer3DModel", tokens, seconds, peak))
    ours = ours.to("cpu")
    empty_cache(device)
    ours.enable_group_offload(
        onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
        num_blocks_per_group=1, use_stream=device.type == "cuda",
    )  # fmt: skip
    with torch.no_grad():
        seconds, peak = timed(partial(ours, latents, timestep, context, camera), args.repeats)
    rows.append(("ReCamMasterTransformer3DModel, group offload (1 block)", tokens, seconds, peak))

    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(
        "fresh ReCamMaster vs plain Wan on the same weights: "
        f"max |diff| {agreement[0]:.3g}, mean |diff| / mean |output| {agreement[1]:.3g} "
        f"(plain Wan bf16 vs float32: {noise:.3g})"
    )
    title = f"{card}, torch {torch.__version__}, bf16, batch 1, random weights, min of {args.repeats}"
    columns = ["model", "tokens", "s / forward", "peak GiB allocated"]
    report(title, columns, rows, ["", ",", ".3f", ".2f"], "transformer_forward",
           diff_vs_wan_max_and_mean_relative=agreement, bf16_vs_fp32_mean_relative=noise)  # fmt: skip


if __name__ == "__main__":
    main()
