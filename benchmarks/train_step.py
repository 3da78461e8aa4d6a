"""Seconds per training step, tokens per second and peak memory of ReCamMaster-1.3B training on one GPU.

The real training path: ``ReCamMasterTraining`` under a Lightning ``Trainer`` with bf16-mixed precision,
random 1.3B weights (frozen bf16, trained float32), batch 1 of random cached latents at 81 frames and
480x832 (target + source = 65,520 tokens), upstream's AdamW. Each variant runs ``--steps`` steps after
one warm-up step; the table gives the median step.

    python benchmarks/train_step.py                     # upstream's trainable set, gradient checkpointing
    python benchmarks/train_step.py --variants all      # also without checkpointing, and LoRA
    python benchmarks/train_step.py --variants compiled # upstream's set with and without compiled blocks
    python benchmarks/train_step.py --variants compiled --attention native flash4  # each on both kernels
    python benchmarks/train_step.py --variants selective --attention flash4  # compiled, full vs selective
    python benchmarks/train_step.py ... --profile       # and the GPU kernels of each variant's last step
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch

from benchmarks.common import RandomLatents, kernel_rows, random_model, report
from recammaster.models.attention import ATTENTION_KERNELS, set_attention
from recammaster.models.configs import transformer_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.training.module import ReCamMasterTraining
from recammaster.training.trainable import count_trainable

TOKENS = 2 * 21 * 30 * 52  # target + source after 2x2 patches
CHECKPOINTING_NAMES = {False: "off", True: "on", "selective": "selective"}


class ProfileStep(L.Callback):
    """Records the GPU kernels of training step ``index`` (after the compiling ones) with ``torch.profiler``."""

    def __init__(self, index: int) -> None:
        from torch.profiler import ProfilerActivity, profile

        self.index = index
        self.profiler = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])

    def on_train_batch_start(self, _trainer, _module, _batch, batch_index: int) -> None:
        if batch_index == self.index:
            torch.cuda.synchronize()
            self.profiler.start()

    def on_train_batch_end(self, _trainer, _module, _outputs, _batch, batch_index: int) -> None:
        if batch_index == self.index:
            torch.cuda.synchronize()
            self.profiler.stop()


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *_) -> None:
        torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, *_) -> None:
        torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)
        if len(self.times) == 1:
            torch.cuda.reset_peak_memory_stats()


def measure(
    trainable: str, checkpointing: bool | str, steps: int, compiled: bool = False, attention: str = "native",
    profile: bool = False,
):  # fmt: skip
    """One variant's row; ``profile``: also print the GPU kernels of its last step, by kind and the largest."""
    device = torch.device("cuda")
    transformer = random_model(lambda: ReCamMasterTransformer3DModel(**transformer_config("wan2.1-t2v-1.3b")),
                               device, torch.bfloat16)  # fmt: skip
    set_attention(transformer, attention)
    module = ReCamMasterTraining(transformer, trainable=trainable, gradient_checkpointing=checkpointing,
                                 compile_blocks=compiled)  # fmt: skip
    timer = StepTimer()
    profiler = ProfileStep(steps) if profile else None
    trainer = L.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_steps=steps + 1, logger=False,
                        callbacks=[timer, *([profiler] if profiler else [])], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    loader = torch.utils.data.DataLoader(RandomLatents(), batch_size=1, num_workers=2)
    try:
        trainer.fit(module, train_dataloaders=loader)
    except torch.OutOfMemoryError:
        return (trainable, CHECKPOINTING_NAMES[checkpointing], compiled, attention, count_trainable(module) / 1e6,
                float("nan"), float("nan"), float("nan"))  # fmt: skip
    finally:
        del trainer
    step = statistics.median(timer.times[1 : steps if profile else None])  # the profiled step runs slower
    if profiler is not None:
        total, rows = kernel_rows(profiler.profiler)
        report(f"GPU kernels of one training step ({trainable}, checkpointing {CHECKPOINTING_NAMES[checkpointing]}, "
               f"{attention}); {total:.0f} ms of kernels: kinds, then the largest kernels",
               ["kernel or kind", "kind", "calls", "ms", "share"], rows, ["", "", "d", ".1f", ".1%"],
               "train_step_profile")  # fmt: skip
    peak = torch.cuda.max_memory_allocated() / 2**30
    result = (trainable, CHECKPOINTING_NAMES[checkpointing], compiled, attention, count_trainable(module) / 1e6, step,
              TOKENS / step, peak)  # fmt: skip
    del module, transformer
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", choices=("upstream", "all", "compiled", "selective"), default="upstream")
    parser.add_argument("--attention", nargs="+", choices=ATTENTION_KERNELS, default=["native"],
                        help="run every variant on each of these attention kernels")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="also the GPU kernels of each variant's last step")
    arguments = parser.parse_args()
    variants = [("camera-attention", True, False)]
    if arguments.variants == "all":
        variants += [("lora", True, False), ("camera-attention", False, False)]
    if arguments.variants == "compiled":
        variants += [("camera-attention", True, True)]
    if arguments.variants == "selective":  # self-attention outputs kept, the rest recomputed; both compiled
        variants = [("camera-attention", True, True), ("camera-attention", "selective", True)]
    rows = []
    for attention in arguments.attention:
        for trainable, checkpointing, compiled in variants:
            rows.append(measure(trainable, checkpointing, arguments.steps, compiled, attention, arguments.profile))
            print(rows[-1], flush=True)
    report(
        f"ReCamMaster-1.3B training step, batch 1, 81 frames 480x832 ({TOKENS:,} tokens), bf16-mixed, "
        f"{torch.cuda.get_device_name()}",
        ["trainable", "grad. checkpointing", "compiled blocks", "attention", "trained (M)", "s / step", "tokens / s",
         "peak GiB"],
        rows, ["s", "s", "", "s", ".1f", ".2f", ",.0f", ".1f"], "train_step",
    )  # fmt: skip


if __name__ == "__main__":
    main()
