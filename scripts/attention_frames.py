"""Which source frames does a model read? Self-attention mass of the target tokens by key frame, block by block.

    python scripts/attention_frames.py [--model-dir DIR] [--scene 1] [--presets 1 6] [--sigma 1.0] [--by-frame BLOCK]

For a held-out scene of ``recammaster eval synthetic`` the model sees the target noised to ``sigma`` (1: pure noise,
so everything comes from the source and the camera) beside the clean source. For the target's latent frames 1..F-1,
each block's attention (heads averaged) is summed over the keys of each frame and averaged over the queries of a
frame, then reported as the mass on the whole source, on the source frame of the same time (and its neighbours),
on the source's first frame and on the query's own frame. A model that re-films motion reads the same time; a
model that moves the first frame by the camera reads frame 0. Session 14, the shipped model (CPU): block 3 puts
24-31% of all its attention on the source's frame 0, 10-13 times a frame's even share; no block gives the
same-time frame more than 3 times it. Session 15 (``--by-frame``): the same-time frame gets 20-26% of blocks 2, 3
and 5's attention at target frame 1 and at most 3% from frame 9 on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from recammaster.evaluation.synthetic import DEFAULT_SEED, held_out_scene
from recammaster.hub import embedded_model_dir
from recammaster.models.self_attention import SelfAttentionProcessor, queries_keys_values
from recammaster.pipeline.loading import load_pipeline


class FrameMassRecorder(SelfAttentionProcessor):
    """The block's self-attention, unchanged, and its (frames, frames) attention mass kept in ``masses``."""

    def __init__(self, replaced, frames: int, masses: list[np.ndarray]) -> None:
        super().__init__(replaced)
        self.frames, self.masses = frames, masses

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        query, key, _ = queries_keys_values(attn, hidden_states, rotary_emb)
        query, key = query.transpose(1, 2), key.transpose(1, 2)  # (B, heads, L, D)
        weights = torch.softmax(query @ key.transpose(-1, -2) / query.shape[-1] ** 0.5, dim=-1)[0]
        per_frame = hidden_states.shape[1] // self.frames  # tokens are frame-major
        mass = weights.reshape(len(weights), self.frames, per_frame, self.frames, per_frame).sum(-1).mean(2)
        self.masses.append(mass.mean(0).float().numpy())
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)


def summarise(mass: np.ndarray) -> dict[str, float]:
    """Mean masses over the target's frames 1..F-1, from one block's (2F, 2F) frame masses (target frames first)."""
    frames = len(mass) // 2
    t = np.arange(1, frames)
    neighbours = [mass[i, frames + i - 1 : frames + min(i + 2, frames)].sum() for i in t]
    return {
        "source": float(mass[t, frames:].sum(1).mean()),
        "same time": float(mass[t, frames + t].mean()),
        "same time ±1": float(np.mean(neighbours)),
        "source frame 0": float(mass[t, frames].mean()),
        "own frame": float(mass[t, t].mean()),
    }


def by_query_frame(mass: np.ndarray) -> list[tuple[float, float]]:
    """For each target frame 1..F-1 of one block's (2F, 2F) masses: its mass on source frame 0 and on the same time."""
    frames = len(mass) // 2
    return [(float(mass[i, frames]), float(mass[i, frames + i])) for i in range(1, frames)]


@torch.no_grad()
def frame_masses(pipeline, scene, preset: int, sigma: float) -> list[np.ndarray]:
    text, _ = pipeline.encode_prompt(scene.caption, None, 512)
    source = pipeline.prepare_source_latents(scene.source, 81, 128, 128)
    target = pipeline.prepare_source_latents(scene.targets[preset], 81, 128, 128)
    camera = pipeline.prepare_camera(scene.requests[preset])
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    masses: list[np.ndarray] = []
    for block in pipeline.transformer.blocks:
        block.attn1.set_processor(FrameMassRecorder(block.attn1.processor, 2 * source.shape[2], masses))
    noisy = (1 - sigma) * target + sigma * noise
    timestep = torch.tensor([sigma * 1000.0])
    pipeline.transformer(torch.cat([noisy, source], 2), timestep, text, camera)  # every block through its processor
    return masses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a saved pipeline (default: the shipped one)")
    parser.add_argument("--scene", type=int, default=1)
    parser.add_argument("--presets", type=int, nargs="+", default=[1, 6])
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--by-frame", type=int, metavar="BLOCK", help="also this block's masses per target frame")
    args = parser.parse_args()
    pipeline = load_pipeline(args.model_dir or embedded_model_dir(), "cpu", "none")
    scene = held_out_scene(args.scene, seed=DEFAULT_SEED, size=128, num_frames=81, device="cpu")
    for preset in args.presets:
        masses = frame_masses(pipeline, scene, preset, args.sigma)
        rows = [summarise(mass) for mass in masses]
        print(f"\nscene {args.scene}, preset {preset}, sigma {args.sigma}: attention mass of target frames 1-20 "
              f"(a frame's even share: {1 / 42:.3f})")  # fmt: skip
        print("| block | " + " | ".join(rows[0]) + " |")
        print("|---|" + "---|" * len(rows[0]))
        for index, row in enumerate(rows):
            print(f"| {index} | " + " | ".join(f"{value:.3f}" for value in row.values()) + " |")
        if args.by_frame is not None:
            print(f"\nblock {args.by_frame}, per target frame: | frame | source frame 0 | same time |")
            for frame, (first, same) in enumerate(by_query_frame(masses[args.by_frame]), start=1):
                print(f"| {frame} | {first:.3f} | {same:.3f} |")


if __name__ == "__main__":
    main()
