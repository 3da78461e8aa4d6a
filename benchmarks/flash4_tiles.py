"""FlashAttention-4's Hopper forward at ReCamMaster's attention size, for several tile shapes.

One self-attention call of ReCamMaster-1.3B at 81 frames, 480x832: 65,520 tokens, 12 heads of 128, bf16.
flash-attn-4 picks 128x128 tiles (P in registers, intra-warpgroup overlap) for head dim 128 on SM90;
FlashAttention-3's C++ kernels use 128x176 for non-causal attention. Each shape is compiled once (CuTe DSL
JIT), then timed; its output is compared with cuDNN's.

    python benchmarks/flash4_tiles.py [--shapes 128x128:rs 128x176:rs ...]

Needs the flash-attn-4 package and a Hopper GPU. Prints a markdown table; with $OUT set, also writes
$OUT/flash4_tiles.json.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from common import report, timed
from flash_attn.cute import interface
from torch.nn.attention import SDPBackend, sdpa_kernel

TOKENS, HEADS, HEAD_DIM = 2 * 21 * 30 * 52, 12, 128


def flash4(query, key, value, tile_m: int, tile_n: int, registers: bool) -> torch.Tensor:
    return interface._flash_attn_fwd(query, key, value, tile_mn=(tile_m, tile_n), mma_pv_is_rs=registers,
                                     intra_wg_overlap=True)[0]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["128x128:rs", "128x176:rs", "128x160:rs", "128x192:rs",
                                                        "128x176:smem"])  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    generator = torch.Generator("cuda").manual_seed(3)
    query, key, value = (torch.randn(1, TOKENS, HEADS, HEAD_DIM, generator=generator, device="cuda").bfloat16()
                         for _ in range(3))  # fmt: skip
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        call = partial(
            torch.nn.functional.scaled_dot_product_attention, *(t.transpose(1, 2) for t in (query, key, value))
        )
        reference = call().transpose(1, 2)
        seconds, _ = timed(call, arguments.repeats)
    flops = 4 * TOKENS * TOKENS * HEAD_DIM * HEADS
    rows = [("cuDNN (SDPA)", 1000 * seconds, flops / seconds / 1e12, 0.0)]
    for shape in arguments.shapes:
        tiles, mode = shape.split(":")
        tile_m, tile_n = (int(size) for size in tiles.split("x"))
        call = partial(flash4, query, key, value, tile_m, tile_n, mode == "rs")
        try:
            output = call()
            seconds, _ = timed(call, arguments.repeats)
        except Exception as error:  # a shape the kernel's checks or the hardware reject
            print(f"{shape}: {type(error).__name__}: {error}".splitlines()[0], flush=True)
            continue
        difference = ((output.float() - reference.float()).abs().max()).item()
        rows.append((f"FA4 {tile_m}x{tile_n}, P in {'registers' if mode == 'rs' else 'shared memory'}",
                     1000 * seconds, flops / seconds / 1e12, difference))  # fmt: skip
        print(rows[-1], flush=True)
    title = (f"One attention call, {TOKENS:,} tokens, {HEADS} heads of {HEAD_DIM}, bf16 "
             f"({torch.cuda.get_device_name()}), min of {arguments.repeats}")  # fmt: skip
    columns = ["kernel", "ms / call", "TFLOP/s", "max |diff| to cuDNN"]
    report(title, columns, rows, ["", ".1f", ".0f", ".2e"], "flash4_tiles")


if __name__ == "__main__":
    main()
