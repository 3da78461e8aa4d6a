"""One video on several GPUs: guidance branches side by side, and context parallelism within each branch.

With text guidance every step needs two transformer passes (caption and negative caption). On an even
number of GPUs the two run at once on two halves of the GPUs and swap results (``guidance`` groups), so
each GPU does half the passes: the output is the one-GPU output up to summation order. Within a branch,
diffusers' context parallelism splits the 65,520 tokens along the sequence: Ulysses exchanges attention
heads (it needs the head count, 12 at 1.3B, to divide by its degree), ring attention passes keys and
values around (any degree, but it needs an attention backend that returns log-sum-exp, such as
``_native_cudnn`` or flash). The layout takes Ulysses as far as the heads allow and the ring for the rest:
2 GPUs -> 2 guidance branches; 4 -> 2 x Ulysses 2; 8 -> 2 x Ulysses 4 (12 heads / 4); 6 -> 2 x Ulysses 3.

Every rank runs the whole pipeline (text, VAE, sampler) on the same inputs; rank 0 writes the result.
Launch with ``torchrun --nproc_per_node N -m recammaster.cli render ...``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from recammaster.errors import ReCamMasterError


@dataclass(frozen=True)
class ParallelLayout:
    """How ``world_size`` ranks share one video: guidance branches x ring x Ulysses."""

    guidance: int
    ring: int
    ulysses: int

    @property
    def world_size(self) -> int:
        return self.guidance * self.ring * self.ulysses

    def __str__(self) -> str:
        return f"{self.guidance} guidance branch(es) x ring {self.ring} x Ulysses {self.ulysses}"


def plan_layout(
    world_size: int, num_heads: int, *, guidance: bool = True, split_guidance: bool = True
) -> ParallelLayout:
    """The layout for ``world_size`` GPUs: guidance branches first (no communication inside a step), then
    Ulysses up to the largest degree dividing both the remaining GPUs and the heads, then the ring."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    branches = 2 if guidance and split_guidance and world_size % 2 == 0 else 1
    context = world_size // branches
    ulysses = max(d for d in range(1, context + 1) if context % d == 0 and num_heads % d == 0)
    return ParallelLayout(branches, context // ulysses, ulysses)


def distributed_environment() -> tuple[int, int, int]:
    """(rank, local rank, world size) from torchrun's or SLURM's variables; (0, 0, 1) when launched alone."""
    world = int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", 1)))
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", 0)))
    local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
    return rank, local, world


def init_distributed(device: str | None) -> tuple[int, int, str]:
    """Join the process group torchrun or SLURM set up: (rank, world size, this rank's device).

    NCCL on GPUs, gloo on CPUs. Launched alone: (0, 1, device or the default).
    """
    rank, local, world = distributed_environment()
    cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if world == 1:
        return 0, 1, device or ("cuda" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world, f"cuda:{local}" if cuda else "cpu"


def enable_multi_gpu(pipeline, layout: ParallelLayout, device_type: str = "cuda") -> None:
    """Set ``pipeline`` up for ``layout`` on an initialised process group of ``layout.world_size`` ranks."""
    from diffusers import ContextParallelConfig

    if not dist.is_initialized() or dist.get_world_size() != layout.world_size:
        raise ReCamMasterError(f"{layout} needs a process group of {layout.world_size} ranks")
    mesh = torch.distributed.device_mesh.init_device_mesh(
        device_type, (layout.guidance, layout.ring, layout.ulysses), mesh_dim_names=("guidance", "ring", "ulysses")
    )
    if layout.guidance > 1:
        pipeline.guidance_group = mesh["guidance"].get_group()
    if layout.ring * layout.ulysses > 1:
        if layout.ring > 1 and device_type == "cuda":
            pipeline.transformer.set_attention_backend("_native_cudnn")  # ring attention needs log-sum-exp
        config = ContextParallelConfig(ring_degree=layout.ring, ulysses_degree=layout.ulysses,
                                       mesh=mesh["ring", "ulysses"])  # fmt: skip
        pipeline.transformer.enable_parallelism(config=config)


def guided_velocity(transformer, model_input, timestep, positive, negative, camera, group) -> tuple[torch.Tensor, ...]:
    """(caption, negative caption) predictions of the target frames: rank 0 of the two-rank ``group`` computes
    the first, rank 1 the second, and they swap."""
    text = positive if dist.get_rank(group) == 0 else negative
    mine = transformer(model_input, timestep, text, camera, source_velocity=False).sample.contiguous()
    both = [torch.empty_like(mine), torch.empty_like(mine)]
    dist.all_gather(both, mine, group=group)
    return both[0], both[1]
