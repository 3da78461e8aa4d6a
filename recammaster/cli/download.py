"""``recammaster download``: fetch the official Wan2.1 and ReCamMaster files, or show where they are."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recammaster import hub

DOWNLOAD_EXAMPLES = """
Examples:

    # into the huggingface_hub cache (HF_HUB_CACHE)
    $ recammaster download

    # into models/Wan-AI/Wan2.1-T2V-1.3B/ and models/ReCamMaster/checkpoints/, as upstream
    $ recammaster download --model-dir models

    # where is each file? (no network)
    $ recammaster download --check --model-dir models

About 21 GB in all. An interrupted download resumes when run again.
"""

ModelDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--model-dir",
        file_okay=False,
        help="Folder to download into (upstream's layout) or to check, instead of the huggingface_hub cache.",
        show_default=False,
    ),
]

app = typer.Typer(add_completion=False)  # one command, merged into the main CLI


@app.command(epilog=DOWNLOAD_EXAMPLES)
def download(
    model_dir: ModelDirOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Only show where each file is; no network.")] = False,
) -> None:
    """Download the Wan2.1-T2V-1.3B files and the ReCamMaster checkpoint, skipping those already there."""
    if check:
        located = hub.locate_official_files(model_dir)
        for role, path in located.items():
            typer.echo(f"{role:<24}{path if path is not None else 'missing'}")
        if None in located.values():
            hub.find_official_weights(model_dir, missing_ok=False)  # raises, naming the missing files
        return
    weights = hub.download_official_weights(model_dir=model_dir)
    for role, path in vars(weights).items():
        typer.echo(f"{role:<24}{path}")
