"""Held-out reconstruction scores of VAE folders on one set: PSNR of whole clips and of the character pixels.

    python scripts/vae_scores.py --config configs/embedded-4x4c-characters-vae.yaml VAE_DIR [VAE_DIR ...] [--json F]

The clips are the config's held-out clips (full length, scenes of its seed + 1; `held_out_clips` of them), so
VAEs trained by other runs compare on the same frames. A table is printed last.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from recammaster.models.vae import load_wan_vae
from recammaster.training.vae import VaeConfig, evaluate, held_out_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vaes", nargs="+", type=Path, help="VAE folders (diffusers layout)")
    parser.add_argument("--config", type=Path, required=True, help="a train vae config: its held-out clips")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    args = parser.parse_args()
    config = VaeConfig.from_yaml(args.config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    clips, characters = held_out_clips(config, device)
    rows = []
    for folder in args.vaes:
        vae = load_wan_vae(folder, torch_dtype=torch.float32).to(device)
        scores = evaluate(vae, clips, characters, config.batch_size)
        rows.append({"vae": str(folder), "psnr_db": scores["psnr"], "character_psnr_db": scores["character_psnr"]})
    if args.json:
        args.json.write_text(json.dumps({"clips": len(clips), "seed": config.seed + 1, "vaes": rows}, indent=2) + "\n")
    frames, size, seed = config.render_frames, config.size, config.seed + 1
    print(f"{len(clips)} held-out clips of {frames} frames, {size} px, scenes of seed {seed}")
    print(f"{'VAE':60s} {'PSNR (dB)':>10s} {'characters (dB)':>16s}")
    for row in rows:
        character = "-" if row["character_psnr_db"] is None else f"{row['character_psnr_db']:.2f}"
        print(f"{row['vae']:60s} {row['psnr_db']:10.2f} {character:>16s}")


if __name__ == "__main__":
    main()
