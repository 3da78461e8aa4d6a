"""ReCamMaster-1.3B training on several GPUs of one host: DDP and FSDP against one GPU with the same global batch.

Random 1.3B weights (the same on every run), random cached latents at 81 frames and 480x832, upstream's
trainable set, bf16-mixed, gradient checkpointing; the data order and every random draw come from
``TrainingOrder`` and the per-sample generators, so the runs see the same samples with the same noise.

    python benchmarks/multi_gpu_train.py --devices 1 --batch-size 2 --save one.pt
    python benchmarks/multi_gpu_train.py --devices 2 --batch-size 1 --strategy ddp --save ddp.pt
    python benchmarks/multi_gpu_train.py --devices 2 --batch-size 1 --strategy fsdp --save fsdp.pt
    python benchmarks/multi_gpu_train.py --compare one.pt ddp.pt fsdp.pt
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch

from benchmarks.common import RandomLatents, random_model, report
from recammaster.models.configs import transformer_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.training.fit import PairsDataModule, lightning_strategy
from recammaster.training.module import ReCamMasterTraining


class Record(L.Callback):
    """Step times, the loss averaged over ranks, and the trained weights at the end (rank 0 saves them)."""

    def __init__(self, path: str | None) -> None:
        self.path, self.times, self.losses = path, [], []

    def on_train_start(self, trainer, module) -> None:
        state = trainer.strategy.lightning_module_state_dict()
        self.initial = {key: value.float().cpu() for key, value in state.items() if key in module.trained_keys}

    def on_train_batch_start(self, *_) -> None:
        torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, *_) -> None:
        torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)
        self.losses.append(float(trainer.strategy.reduce(outputs["loss"].detach(), reduce_op="mean")))
        if len(self.times) == 1:
            torch.cuda.reset_peak_memory_stats()

    def on_train_end(self, trainer, module) -> None:
        state = trainer.strategy.lightning_module_state_dict()  # FSDP: gathered in full
        if trainer.is_global_zero and self.path:
            trained = {key: value.float().cpu() for key, value in state.items() if key in module.trained_keys}
            torch.save({"losses": self.losses, "weights": trained, "initial": self.initial, "times": self.times},
                       self.path)  # fmt: skip


def train(devices: int, strategy: str, batch_size: int, steps: int, save: str | None) -> None:
    transformer = random_model(lambda: ReCamMasterTransformer3DModel(**transformer_config("wan2.1-t2v-1.3b")),
                               torch.device("cuda", torch.cuda.current_device()), torch.bfloat16)  # fmt: skip
    module = ReCamMasterTraining(transformer.cpu(), gradient_checkpointing=True)
    module.trained_keys = {f"transformer.{n}" for n, p in module.transformer.named_parameters() if p.requires_grad}
    record = Record(save)
    trainer = L.Trainer(
        accelerator="gpu", devices=devices, strategy=lightning_strategy(strategy), precision="bf16-mixed",
        max_steps=steps, logger=False, callbacks=[record], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, use_distributed_sampler=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=PairsDataModule(RandomLatents(), endless=False, batch_size=batch_size, seed=0,
                                                   num_workers=2))  # fmt: skip
    if trainer.is_global_zero:
        step = statistics.median(record.times[1:])
        peak = torch.cuda.max_memory_allocated() / 2**30
        samples = devices * batch_size / step
        print(f"RESULT {strategy} devices={devices} batch={batch_size} s/step={step:.2f} samples/s={samples:.3f} "
              f"peak={peak:.1f} losses={[round(x, 5) for x in record.losses]}", flush=True)  # fmt: skip


def compare(paths: list[str]) -> None:
    runs = {path: torch.load(path, weights_only=False) for path in paths}
    reference = runs[paths[0]]
    rows = []
    for path, run in runs.items():
        initial, weights, base = reference["initial"], run["weights"], reference["weights"]
        gap = sum(((weights[k] - base[k]) ** 2).sum().item() for k in base) ** 0.5
        update = sum(((base[k] - initial[k]) ** 2).sum().item() for k in base) ** 0.5
        loss_gap = max(abs(a - b) for a, b in zip(run["losses"], reference["losses"], strict=True))
        step = statistics.median(run["times"][1:])
        rows.append((path, step, gap / update, loss_gap))
    report("Trained weights and losses against the first run (weights: |run - first| / |first's update|, L2)",
           ["run", "s / step", "weights diff / update", "max loss diff"], rows, ["s", ".2f", ".2e", ".2e"],
           "multi_gpu_train")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto", choices=("auto", "ddp", "fsdp"))
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--save")
    parser.add_argument("--compare", nargs="+")
    arguments = parser.parse_args()
    if arguments.compare:
        compare(arguments.compare)
    else:
        train(arguments.devices, arguments.strategy, arguments.batch_size, arguments.steps, arguments.save)


if __name__ == "__main__":
    main()
