"""``recammaster train fit`` at the full 1.3B size on several GPUs: DDP and FSDP against one GPU, same global batch.

    python benchmarks/multi_gpu_fit.py WORK --gpus 4 --steps 5
    python benchmarks/multi_gpu_fit.py WORK --gpus 2 --size tiny      # the same on CPU processes (gloo)

builds ``WORK/data``, a MultiCamVideo tree of two scenes whose clips are upstream's cached-latent files
(random latents at 81 frames and 480x832, random caption embeddings; the videos are empty placeholders,
since only the cache is read), then runs the real command three times with the same global batch:
one GPU with batch ``gpus``, and DDP and FSDP on ``gpus`` GPUs with batch 1 each (launched with torchrun,
as on a cluster). Each run trains a fresh ReCamMaster-1.3B transformer from seed 0 (upstream's trainable
set, bf16-mixed, gradient checkpointing) and writes float32 official checkpoints. The table compares each
run's logged losses and final checkpoint with the one-GPU run's, and its step time (the logged throughput).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import statistics
import subprocess
import sys
from pathlib import Path

import lightning as L
import torch
import yaml

from benchmarks.common import LATENT_SHAPE_81x480x832, report
from recammaster.cameras import get_preset, write_multicam_json
from recammaster.cameras.geometry import look_at, make_pose
from recammaster.models.checkpoints import read_state_dict
from recammaster.models.configs import transformer_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.weights import official_state_dict

SCENES = 2
TINY_LATENTS = (16, 21, 4, 4)


def write_dataset(root: Path, size: str) -> Path:
    """Two scenes of ten cameras (the ten presets around the origin), each clip's latents cached beside it."""
    generator = torch.Generator().manual_seed(0)
    for scene in range(1, SCENES + 1):
        folder = root / "train" / "f18_aperture10" / f"scene{scene}"
        trajectories = {}
        for camera in range(10):
            angle = 2 * torch.pi * camera / 10 + scene
            position = torch.tensor([4 * torch.cos(torch.tensor(angle)), 4 * torch.sin(torch.tensor(angle)), 1.5])
            start = make_pose(look_at(position.numpy(), [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]), position.numpy())
            trajectories[f"cam{camera + 1:02d}"] = get_preset(camera + 1)().placed_at(start)
        write_multicam_json(trajectories, folder / "cameras" / "camera_extrinsics.json", start_pose=None,
                            overwrite=True)  # fmt: skip
        (folder / "videos").mkdir(parents=True, exist_ok=True)
        for name in trajectories:
            (folder / "videos" / f"{name}.mp4").touch()
            shape = TINY_LATENTS if size == "tiny" else LATENT_SHAPE_81x480x832
            text = torch.randn(1, 512, transformer_config(size)["text_dim"], generator=generator)
            cached = {
                "latents": torch.randn(shape, generator=generator).bfloat16(),
                "prompt_emb": {"context": text.bfloat16()},
            }
            torch.save(cached, folder / "videos" / f"{name}.mp4.tensors.pth")
    return root


def run_fit(work: Path, size: str, name: str, gpus: int, strategy: str, batch_size: int, steps: int) -> Path:
    """One ``recammaster train fit`` run; several GPUs (or CPU processes) through torchrun, one process each."""
    output = work / name
    cpu = {"accelerator": "cpu", "gradient_checkpointing": False} if size == "tiny" else {}
    config = {
        **cpu, "output_dir": str(output), "from_scratch": True, "model_config": size, "data": "cached",
        "dataset": str(work / "data"), "cache_dir": None, "batch_size": batch_size, "max_steps": steps,
        "checkpoint_every": steps, "checkpoint_dtype": "float32", "log_every": 1, "devices": gpus,
        "strategy": strategy, "seed": 0,
    }  # fmt: skip
    (work / f"{name}.yaml").write_text(yaml.safe_dump(config))
    command = ["-m", "recammaster.cli", "train", "fit", "--config", str(work / f"{name}.yaml"), "--overwrite",
               "--no-progress"]  # fmt: skip
    launcher = [sys.executable] if gpus == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                   f"--nproc_per_node={gpus}"]  # fmt: skip
    subprocess.run(launcher + command, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return output


def logged(run: Path, metric: str) -> list[float]:
    with next((run / "logs").glob("chunk*")).joinpath("metrics.csv").open() as handle:
        return [float(row[metric]) for row in csv.DictReader(handle) if row.get(metric)]


def initial_weights(size: str) -> dict[str, torch.Tensor]:
    """The weights every run starts from: ``fit`` seeds with the config's seed, then builds the transformer."""
    L.seed_everything(0, verbose=False)
    return official_state_dict(ReCamMasterTransformer3DModel(conditioning="frame", **transformer_config(size)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--gpus", type=int, default=torch.cuda.device_count())
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--size", default="wan2.1-t2v-1.3b", help="tiny: a dry run on CPU processes")
    arguments = parser.parse_args()
    work, gpus, steps, size = arguments.work, arguments.gpus, arguments.steps, arguments.size
    write_dataset(work / "data", size)
    strategies = ["ddp"] if size == "tiny" else ["ddp", "fsdp"]  # Lightning's FSDP needs GPUs
    runs = {"1 GPU": run_fit(work, size, "one", 1, "auto", gpus, steps)}
    for strategy in strategies:
        runs[f"{strategy.upper()}, {gpus} GPUs"] = run_fit(work, size, strategy, gpus, strategy, 1, steps)
    initial = initial_weights(size)
    final = {name: read_state_dict(run / "checkpoints" / f"step{steps}.ckpt") for name, run in runs.items()}
    reference = final["1 GPU"]
    trained = [key for key in reference if not torch.equal(reference[key], initial[key])]
    update = sum(((reference[k] - initial[k]) ** 2).sum().item() for k in trained) ** 0.5
    reference_losses, one_step = logged(runs["1 GPU"], "train/loss"), None
    rows = []
    for name, run in runs.items():
        times = logged(run, "train/time")
        step = statistics.median(later - earlier for earlier, later in itertools.pairwise(times[1:]))
        one_step = one_step or step
        gap = sum(((final[name][k] - reference[k]) ** 2).sum().item() for k in trained) ** 0.5
        frozen_equal = all(torch.equal(final[name][k], reference[k]) for k in reference if k not in trained)
        losses = logged(run, "train/loss")
        loss_gap = max(abs(a - b) for a, b in zip(losses, reference_losses, strict=True))
        workers = 1 if name == "1 GPU" else gpus
        rows.append((name, step, gpus / step, one_step / step / workers, loss_gap, gap / update, frozen_equal))
    print("losses per step, 1 GPU:", [round(x, 5) for x in reference_losses])
    report(
        f"recammaster train fit, {size} from seed 0, global batch {gpus}, {steps} steps "
        f"({torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}); {len(trained)} trained tensors",
        ["run", "s / step", "samples / s", "scaling efficiency", "max loss diff", "weights diff / update",
         "frozen weights equal"],
        rows, ["s", ".2f", ".3f", ".1%", ".1e", ".2e", ""], "multi_gpu_fit",
    )  # fmt: skip


if __name__ == "__main__":
    main()
