"""Speed levers for ReCamMaster-1.3B on one GPU (issue 10): attention backends, compiled blocks, the fast mode.

Random weights at full size, bf16, 81 frames at 480x832 (65,520 tokens with the source). Parts:

- ``attention``: one self-attention call at that size (12 heads of 128) on each SDPA kernel: seconds, TFLOP/s,
  and the first 1,024 query rows against a float32 computation.
- ``forward``: one transformer forward with each attention kernel that runs here (``--flash4`` adds
  FlashAttention-4, needs the flash-attn-4 package; ``--backends`` picks some), then the default and the fastest
  with their blocks compiled (``compile_repeated_blocks``), then the fastest asked for the target velocity alone
  (what sampling and training read: the last block computes the target tokens alone), plain, then with each
  exact saving for inference added in turn (``SAVINGS``); each output against a float32 forward, whose distance
  to the default bf16 forward is the bf16 noise that "exact" allows.
- ``profile``: the GPU kernels of one compiled forward with all the exact savings (FlashAttention-4 with
  ``--flash4``, else ``native``), by kind and the largest by name.
- ``kernels``: 8 guided sampling steps with the cuDNN backend, and with compiled blocks, against the default:
  how far two exact computations drift apart over a sampling run (the yardstick for the ring's drift on
  several GPUs).
- ``render``: whole re-renders through the pipeline (umT5-XXL with a stand-in tokenizer, the Wan VAE,
  the transformer, with the exact savings ``render`` makes on a GPU): upstream's 50 steps with guidance 5
  projected from ``--exact-steps`` timed steps (all 50 run when it is 50), and fast-mode settings run end to end;
  ``--compile``: with compiled blocks.

    python benchmarks/speed.py [--parts attention,forward,profile,kernels,render] [--fast 10:2 8:4] [--compile]
                               [--flash4] [--backends native flash4]

Prints a markdown table per part; with $OUT set, also writes $OUT/speed_<part>.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
from common import empty_cache, kernel_rows, random_model, report, timed
from diffusers import AutoencoderKLWan
from pipeline_memory import StandInTokenizer
from transformers import UMT5EncoderModel

from recammaster.cameras import get_preset
from recammaster.models.attention import FLASH4, set_attention
from recammaster.models.configs import transformer_config
from recammaster.models.text_encoder import UMT5_XXL_CONFIG
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.vae import WAN_VAE_CONFIG
from recammaster.pipeline import ReCamMasterPipeline
from recammaster.pipeline.sampler import flow_match_sigmas

DEVICE, DTYPE = torch.device("cuda"), torch.bfloat16
SIZE = "wan2.1-t2v-1.3b"
BACKENDS = ["native", "_native_cudnn", "_native_flash", "_native_efficient"]  # --flash4 adds flash4
SDPA_KERNELS = ["CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION"]
LATENT_FRAMES, HEIGHT, WIDTH = 21, 480, 832


def transformer() -> ReCamMasterTransformer3DModel:
    """Random weights; projectors near the identity, as trained ones are, rather than a fresh model's identity."""
    model = random_model(partial(ReCamMasterTransformer3DModel, **transformer_config(SIZE)), DEVICE, DTYPE)
    generator = torch.Generator(DEVICE).manual_seed(4)
    with torch.no_grad():
        for block in model.blocks:
            noise = torch.randn(block.projector.weight.shape, generator=generator, device=DEVICE)
            block.projector.weight.add_(0.02 * noise.to(DTYPE))
    return model


def inputs(seed: int = 1) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator(DEVICE).manual_seed(seed)
    latents = torch.randn(1, 16, 2 * LATENT_FRAMES, HEIGHT // 8, WIDTH // 8, generator=generator, device=DEVICE)
    context = torch.randn(1, 512, transformer_config(SIZE)["text_dim"], generator=generator, device=DEVICE)
    camera = torch.randn(1, LATENT_FRAMES, 12, generator=generator, device=DEVICE)
    return latents.to(DTYPE), torch.tensor([500.0], device=DEVICE), context.to(DTYPE), camera.to(DTYPE)


def relative(output: torch.Tensor, reference: torch.Tensor) -> float:
    return ((output.float() - reference.float()).abs().mean() / reference.float().abs().mean()).item()


def attention_part(repeats: int) -> None:
    """The kernels alone: 30 of these calls are 70% of a forward (2026-11-25 profile)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    tokens, heads, head_dim, rows_checked = 2 * LATENT_FRAMES * (HEIGHT // 16) * (WIDTH // 16), 12, 128, 1024
    generator = torch.Generator(DEVICE).manual_seed(3)
    query, key, value = (torch.randn(1, heads, tokens, head_dim, generator=generator, device=DEVICE).to(DTYPE)
                         for _ in range(3))  # fmt: skip
    scores = query[:, :, :rows_checked].float() @ key.float().transpose(-1, -2) / head_dim**0.5
    reference = torch.softmax(scores, dim=-1) @ value.float()
    del scores
    flops = 4 * tokens * tokens * head_dim * heads
    rows = []
    for name in SDPA_KERNELS:

        def call(name: str = name) -> torch.Tensor:
            with sdpa_kernel(getattr(SDPBackend, name)):
                return torch.nn.functional.scaled_dot_product_attention(query, key, value)

        try:
            output = call()
            seconds, _ = timed(call, repeats)
        except RuntimeError as error:  # a kernel this build or card lacks
            print(f"{name}: {error}".splitlines()[0], flush=True)
            continue
        rows.append((name, 1000 * seconds, flops / seconds / 1e12, relative(output[:, :, :rows_checked], reference)))
        print(rows[-1], flush=True)
    flash = getattr(torch.nn.attention, "current_flash_attention_impl", lambda: None)() or "FA2"
    report(
        f"One attention call, {tokens:,} tokens, {heads} heads of {head_dim}, bf16 ({torch.cuda.get_device_name()}, "
        f"torch {torch.__version__}; FLASH_ATTENTION is {flash}), min of {repeats}; difference of the "
        f"first {rows_checked} rows to float32",
        ["SDPA kernel", "ms / call", "TFLOP/s", "difference to float32"], rows, ["", ".1f", ".0f", ".2e"],
        "speed_attention",
    )  # fmt: skip


# The exact savings for inference, in the order they came (benchmarks/RESULTS.md); ``render`` makes all on a GPU.
SAVINGS = {
    "folded projectors": ReCamMasterTransformer3DModel.fold_projectors,
    "GELU in the product's epilogue": ReCamMasterTransformer3DModel.fuse_feedforward_activations,
    "norm and rotation in one kernel": ReCamMasterTransformer3DModel.fuse_norm_rotations,
}


def inference_model(backend: str, savings: Sequence[str] = tuple(SAVINGS)) -> ReCamMasterTransformer3DModel:
    """Compiled blocks on ``backend`` with ``savings`` (names from :data:`SAVINGS`)."""
    model = transformer()
    set_attention(model, backend)
    for saving in savings:
        SAVINGS[saving](model)
    model.compile_repeated_blocks(fullgraph=True)
    return model


def forward_part(repeats: int, backends: list[str]) -> None:
    model, arguments = transformer(), inputs()
    with torch.no_grad():
        model.float()
        reference = model(*(a.float() if a.is_floating_point() else a for a in arguments)).sample
        model.to(DTYPE)
    rows = []
    for backend in backends:
        try:
            set_attention(model, backend)
            with torch.no_grad():
                output = model(*arguments).sample
            seconds, peak = timed(partial(model, *arguments), repeats)
        except (RuntimeError, ValueError) as error:  # a backend this build or card lacks
            print(f"{backend}: {error}".splitlines()[0], flush=True)
            continue
        rows.append((backend, seconds, relative(output, reference), peak))
        print(rows[-1], flush=True)
    best = min(rows, key=lambda row: row[1])[0]
    del model
    for backend in dict.fromkeys(("native", best)):  # each compiled on a fresh model: one graph per kernel
        model = transformer()
        set_attention(model, backend)
        model.compile_repeated_blocks(fullgraph=True)
        start = time.perf_counter()
        with torch.no_grad():
            output = model(*arguments).sample
        torch.cuda.synchronize()
        compile_seconds = time.perf_counter() - start
        seconds, peak = timed(partial(model, *arguments), repeats)
        rows.append((f"{backend}, compiled blocks ({compile_seconds:.0f} s to compile)", seconds,
                     relative(output, reference), peak))  # fmt: skip
        print(rows[-1], flush=True)
        del model
        empty_cache(DEVICE)
        torch._dynamo.reset()
    every = list(SAVINGS)
    for count in range(len(every) + 1):  # what sampling and training ask for: the target velocity alone (its last
        model = inference_model(best, every[:count])  # block computes the target tokens alone); then each saving
        call = partial(model, *arguments, source_velocity=False)
        with torch.no_grad():
            output = call().sample
        seconds, peak = timed(call, repeats)
        name = ", ".join([f"{best}, compiled blocks, target velocity alone", *every[:count]])
        rows.append((name, seconds, relative(output, reference[:, :, :LATENT_FRAMES]), peak))
        print(rows[-1], flush=True)
        del model
        empty_cache(DEVICE)  # a compiled model that ran is freed only by a collection: not in the next peak
        torch._dynamo.reset()  # each model's blocks count towards the compiler's recompile limit
    report(
        f"Transformer forward, 65,520 tokens ({torch.cuda.get_device_name()}, torch {torch.__version__}), bf16, "
        f"min of {repeats}; difference: mean |bf16 - float32| / mean |float32|",
        ["attention", "s / forward", "difference to float32", "peak GiB"], rows, ["", ".3f", ".2e", ".2f"],
        "speed_forward",
    )  # fmt: skip


def profile_part(backend: str) -> None:
    """Where a forward's time goes: the GPU kernels of one compiled forward with the exact savings, by kind
    and the largest by name."""
    from torch.profiler import ProfilerActivity, profile

    model, arguments = inference_model(backend), inputs()
    call = partial(model, *arguments, source_velocity=False)
    timed(call, 1)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        call()
        torch.cuda.synchronize()
    total, rows = kernel_rows(profiler)
    report(
        f"GPU kernels of one compiled forward, {backend}, target velocity alone, all exact savings "
        f"({torch.cuda.get_device_name()}); {total:.0f} ms of kernels: kinds, then the largest kernels",
        ["kernel or kind", "kind", "calls", "ms", "share"], rows, ["", "", "d", ".1f", ".1%"], "speed_profile",
    )  # fmt: skip


def kernels_part(steps: int) -> None:
    """The same guided sampling computed in other exact ways: their drift is bf16 noise, amplified by sampling."""
    model = transformer()
    pipeline = ReCamMasterPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=model)
    latents, _, positive, _ = inputs()
    camera = pipeline.prepare_camera(get_preset("arc-left")())
    generator = torch.Generator(DEVICE).manual_seed(2)
    negative = torch.randn(positive.shape, generator=generator, device=DEVICE).to(DTYPE)
    noise, source = latents[:, :, :LATENT_FRAMES], latents[:, :, LATENT_FRAMES:]
    sigmas = flow_match_sigmas(steps)
    results = {}
    for variant in ("native", "_native_cudnn", "native, compiled blocks"):
        model.set_attention_backend(variant.split(",")[0])
        if variant.endswith("compiled blocks"):
            model.compile_repeated_blocks(fullgraph=True)
        with torch.no_grad():
            results[variant] = pipeline.denoise(noise, source, camera, positive, negative, sigmas, 5.0)
    rows = [(f"{variant} vs native", relative(results[variant], results["native"])) for variant in list(results)[1:]]
    report(f"{steps} guided steps (guidance 5), random 1.3B: exact variants against the default",
           ["pair", "mean |diff| / mean |latent|"], rows, ["", ".2e"], "speed_kernels")  # fmt: skip


def render_part(exact_steps: int, fast: list[str], backend: str, compiled: bool) -> None:
    pipeline = ReCamMasterPipeline(
        tokenizer=StandInTokenizer(),
        text_encoder=random_model(partial(UMT5EncoderModel, UMT5_XXL_CONFIG), DEVICE, DTYPE),
        transformer=transformer(),
        vae=random_model(partial(AutoencoderKLWan, **WAN_VAE_CONFIG), DEVICE, DTYPE),
    )
    pipeline.set_progress_bar_config(disable=True)
    for saving in SAVINGS.values():  # as recammaster.pipeline.load_pipeline does on a GPU
        saving(pipeline.transformer)
    set_attention(pipeline.transformer, backend)
    if compiled:
        pipeline.transformer.compile_repeated_blocks()
    video = (np.random.default_rng(0).random((81, HEIGHT, WIDTH, 3)) * 255).astype(np.uint8)
    trajectory = get_preset("arc-left")()

    def run(steps: int, source_reuse: int = 1) -> tuple[float, float]:
        """Seconds for the whole call, and the seconds its sampling steps took."""
        step_times: list[float] = []

        def after_step(_step: int, _latents: torch.Tensor) -> None:
            torch.cuda.synchronize()
            step_times.append(time.perf_counter())

        torch.cuda.synchronize()
        start = time.perf_counter()
        pipeline(video, trajectory, "a prompt", height=HEIGHT, width=WIDTH, num_inference_steps=steps,
                 guidance_scale=5.0, source_reuse=source_reuse, callback_on_step_end=after_step)  # fmt: skip
        torch.cuda.synchronize()
        end = time.perf_counter()
        return end - start, step_times[-1] - step_times[0] if len(step_times) > 1 else 0.0

    settings = [tuple(int(part) for part in setting.split(":")) for setting in fast]
    run(2)  # warm-up: kernels, cuDNN plans, the compiler
    if compiled:  # each fast setting compiles its own variants in its first video (target-only shapes, and
        for steps, reuse in settings:  # recording into blocks that already hold keys): what a second video skips
            run(steps, reuse)
    total, sampling = run(exact_steps)
    per_step = sampling / (exact_steps - 1)  # between the first step's end and the last's
    fixed = total - per_step * exact_steps
    exact = "run" if exact_steps == 50 else "projected"
    rows = [(f"exact: 50 steps, guidance 5 ({exact})", 50, 1, fixed + 50 * per_step, per_step)]
    for steps, reuse in settings:
        total, _ = run(steps, reuse)
        rows.append((f"fast: {steps} steps, source_reuse {reuse}", steps, reuse, total, float("nan")))
    report(
        f"Whole re-render, 81 x {HEIGHT} x {WIDTH}, random full-size weights, {backend} attention"
        f"{', compiled blocks' if compiled else ''} "
        f"({torch.cuda.get_device_name()}); fixed costs (text, VAE encode and decode) {fixed:.1f} s",
        ["setting", "steps", "source_reuse", "s / video", "s / exact step"], rows, ["", "d", "d", ".1f", ".2f"],
        "speed_render",
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="attention,forward,kernels,render")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kernel-steps", type=int, default=8)
    parser.add_argument("--backends", nargs="*", help="the forward part's uncompiled kernels (default: all that "
                        "run here); the fastest of them is then compiled")  # fmt: skip
    parser.add_argument("--exact-steps", type=int, default=4)
    parser.add_argument("--fast", nargs="*", default=["10:2", "8:4"], help="steps:source_reuse settings")
    parser.add_argument("--backend", default="native", help="the render part's attention backend")
    parser.add_argument("--compile", action="store_true", help="the render part with compiled blocks")
    parser.add_argument("--flash4", action="store_true", help="FlashAttention-4 behind SDPA's flash kernel, and "
                        "flash4 among the forward part's kernels (needs the flash-attn-4 package)")  # fmt: skip
    arguments = parser.parse_args()
    parts = arguments.parts.split(",")
    if arguments.flash4:
        from recammaster.models.attention import enable_flash_attention_4

        enable_flash_attention_4()
        BACKENDS[BACKENDS.index("_native_flash")] = FLASH4  # the same kernel from now on
    if "attention" in parts:
        attention_part(arguments.repeats)
    if "forward" in parts:
        forward_part(arguments.repeats, arguments.backends or BACKENDS)
    if "profile" in parts:
        profile_part(FLASH4 if arguments.flash4 else "native")
    if "kernels" in parts:
        kernels_part(arguments.kernel_steps)
    if "render" in parts:
        render_part(arguments.exact_steps, arguments.fast, arguments.backend, arguments.compile)


if __name__ == "__main__":
    main()
