"""``recammaster train embedded-base`` and ``train export``: the steps around ``train fit`` that make the
embedded default (docs/embedded.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recammaster.cli.options import OverwriteOpt
from recammaster.errors import ReCamMasterError

BASE_EXAMPLES = """Examples:

  recammaster train embedded-base --vae runs/embedded-vae/vae -o runs/embedded-base

  recammaster train embedded-base --vae runs/embedded-vae-long/vae --text-from recammaster/assets/embedded \\
      -o runs/embedded-base          # the shipped model's text path, to train on from its weights

  recammaster train embedded-base --vae runs/embedded-4x4c-vae/vae --text-from recammaster/assets/embedded \\
      -o runs/embedded-4x4c-base     # a VAE of 4x latents of 4 channels: the transformer gets 4x4 patches
"""
EXPORT_EXAMPLES = """Example:

  recammaster train export --base runs/embedded-base --checkpoint runs/embedded/checkpoints/step6000.ckpt \\
      -o recammaster/assets/embedded --height 128 --width 128 --steps 16 --guidance 1
"""


def embedded_base(
    vae: Annotated[Path, typer.Option("--vae", help="The trained VAE folder (train vae writes RUN/vae).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The pipeline folder to write.")],
    seed: Annotated[int, typer.Option("--seed", help="Seeds the text encoder's random weights.")] = 0,
    text_from: Annotated[
        Path | None, typer.Option("--text-from", help="Reuse this saved pipeline's tokenizer and text encoder.")
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Assemble the pipeline the embedded default trains from: the VAE, a tokenizer learned from the
    synthetic captions, a frozen random 128-wide umT5 and a fresh transformer of the size for the VAE's
    latents (`embedded` for 8x, `embedded-4x` with 4x4 patches for 4x, `embedded-4x4c` for 4x of 4 channels).
    The learned tokenizer and random umT5 differ between sentencepiece and transformers versions: to train on from the
    shipped model, reuse its text path with --text-from."""
    from recammaster.training.embedded import build_base_pipeline

    if not (vae / "config.json").is_file():
        raise ReCamMasterError(f"{vae}: not a VAE folder (no config.json); `recammaster train vae` writes one")
    if text_from is not None and not (text_from / "text_encoder" / "config.json").is_file():
        raise ReCamMasterError(f"{text_from}: no text_encoder/config.json; --text-from takes a saved pipeline folder")
    built = build_base_pipeline(vae, output, seed=seed, text_from=text_from, overwrite=overwrite)
    typer.echo(f"wrote {built}")


def export(
    base: Annotated[Path, typer.Option("--base", help="The pipeline folder the run started from.")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="A step{N}.ckpt of train fit.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The folder to write (a saved pipeline).")],
    height: Annotated[int, typer.Option("--height", help="The height the model renders at.")] = 128,
    width: Annotated[int, typer.Option("--width", help="The width the model renders at.")] = 128,
    steps: Annotated[int, typer.Option("--steps", help="Default sampling steps.")] = 16,
    guidance: Annotated[float, typer.Option("--guidance", help="Default guidance scale.")] = 1.0,
    motion_guidance: Annotated[
        float, typer.Option("--motion-guidance", help="Default motion guidance scale (1: off).")
    ] = 1.0,
    whole_clip_vae: Annotated[
        bool,
        typer.Option(
            "--whole-clip-vae/--chunked-vae",
            help="Run the VAE on whole clips (faster for small "
            "clips; memory grows with the clip) or in diffusers' chunks of four frames.",
        ),
    ] = True,
    model_config: Annotated[
        str | None, typer.Option("--model-config", help="The named size the run trained, when not the base's.")
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write a shippable pipeline: the run's transformer in the base's pipeline, in float16, with its render
    settings (what `recammaster render` uses when it runs this model without options)."""
    from recammaster.models.configs import TRANSFORMER_CONFIGS
    from recammaster.training.embedded import export_pipeline

    for path in (base / "model_index.json", checkpoint):
        if not path.is_file():
            raise ReCamMasterError(f"{path}: not found")
    defaults = {"height": height, "width": width, "num_inference_steps": steps, "guidance_scale": guidance,
                "motion_guidance": motion_guidance, "whole_clip_vae": whole_clip_vae}  # fmt: skip
    if model_config is not None and model_config not in TRANSFORMER_CONFIGS:
        raise ReCamMasterError(f"--model-config must be one of {', '.join(TRANSFORMER_CONFIGS)}, got {model_config!r}")
    written = export_pipeline(base, checkpoint, output, render_defaults=defaults, overwrite=overwrite,
                              model_config=model_config)  # fmt: skip
    typer.echo(f"wrote {written}")
