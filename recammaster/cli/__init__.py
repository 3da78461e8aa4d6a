"""The ``recammaster`` command: a thin layer over the library.

Library code raises :class:`recammaster.errors.ReCamMasterError` subclasses that name the file, frame,
camera or field at fault; ``main`` turns them into one-line messages and exit status 1. Set
``RECAMMASTER_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from recammaster.cli.dataset import app as dataset_app
from recammaster.cli.demo import DEMO_EXAMPLES, demo
from recammaster.cli.download import app as download_app
from recammaster.cli.embedded import BASE_EXAMPLES, EXPORT_EXAMPLES, embedded_base, export
from recammaster.cli.evaluate import app as eval_app
from recammaster.cli.render import RENDER_EXAMPLES, render_command
from recammaster.cli.serve import SERVE_EXAMPLES, serve, worker
from recammaster.cli.synth import SYNTH_EXAMPLES, synth
from recammaster.cli.train import app as train_app
from recammaster.cli.trajectories import app as trajectories_app
from recammaster.errors import ReCamMasterError

app = typer.Typer(
    name="recammaster",
    help="ReCamMaster: re-film a video along a new camera trajectory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("render", epilog=RENDER_EXAMPLES)(render_command)
app.command("demo", epilog=DEMO_EXAMPLES)(demo)
app.add_typer(download_app)  # merged in: `recammaster download`
app.add_typer(trajectories_app, name="trajectories")
dataset_app.command("synth", epilog=SYNTH_EXAMPLES)(synth)
app.add_typer(dataset_app, name="dataset")
train_app.command("embedded-base", epilog=BASE_EXAMPLES)(embedded_base)
train_app.command("export", epilog=EXPORT_EXAMPLES)(export)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.command("serve", epilog=SERVE_EXAMPLES)(serve)
app.command("worker", epilog=SERVE_EXAMPLES)(worker)


def main() -> None:
    """Entry point of the console script."""
    try:
        app(prog_name="recammaster")
    except ReCamMasterError as error:
        if os.environ.get("RECAMMASTER_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
