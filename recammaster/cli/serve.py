"""``recammaster serve`` (the web trial service with its workers) and ``recammaster worker`` (one more worker)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from recammaster.cli.render import ModelDirOpt

SERVE_EXAMPLES = """Examples:

  recammaster serve                                   # http://127.0.0.1:8000, one worker, the default model

  recammaster serve --host 0.0.0.0 --public-url https://trial.example.org --workers 0 &
  recammaster worker --device cuda:0 & recammaster worker --device cuda:1 &    # one worker per GPU

Every limit has an environment variable: RECAMMASTER_SERVE_MAX_UPLOAD_MB, _MAX_DURATION_S, _JOBS_PER_WINDOW,
_WINDOW_S, _RETENTION_HOURS, ...; e-mail: RECAMMASTER_SERVE_SMTP_HOST, _SMTP_PORT, _SMTP_SENDER, _SMTP_USERNAME,
_SMTP_PASSWORD, _SMTP_STARTTLS (docs/serve.md).
"""

DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="The queue and the jobs' files (default: ./recammaster-serve).")
]
WorkerDeviceOpt = Annotated[str | None, typer.Option("--device", help="Where workers render: cpu, cuda, cuda:1.")]
StepsOpt = Annotated[int | None, typer.Option("--steps", help="Sampling steps (default: the model's).")]


def _settings(data_dir: Path | None, model_dir: Path | None, device: str | None, steps: int | None, **more: object):
    from recammaster.cli.options import resolve_device
    from recammaster.serve.settings import ENV_PREFIX, ServeSettings

    if steps is not None and steps < 1:
        raise typer.BadParameter(f"must be at least 1, got {steps}", param_hint="--steps")
    if model_dir is not None and not model_dir.is_dir():
        raise typer.BadParameter(f"{model_dir}: no such folder", param_hint="--model-dir")
    device = resolve_device(device or os.environ.get(ENV_PREFIX + "DEVICE"))  # cuda where there is one
    return ServeSettings.from_env(data_dir=data_dir, model_dir=model_dir, num_inference_steps=steps, device=device,
                                  **more)  # fmt: skip


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes to start beside the server.")] = 1,
    public_url: Annotated[
        str | None, typer.Option("--public-url", help="The address people use, for links in e-mails.")
    ] = None,
    data_dir: DataDirOpt = None,
    model_dir: ModelDirOpt = None,
    device: WorkerDeviceOpt = None,
    steps: StepsOpt = None,
) -> None:
    """Run the web trial service: upload a video, pick a trajectory, watch and download the result."""
    import uvicorn

    from recammaster.serve.app import create_app

    if workers < 0:
        raise typer.BadParameter(f"must be 0 or more, got {workers}", param_hint="--workers")
    settings = _settings(data_dir, model_dir, device, steps, public_url=public_url)
    typer.echo(f"serving on http://{host}:{port} with {workers} worker(s); jobs in {settings.data_dir}")
    uvicorn.run(create_app(settings, workers=workers), host=host, port=port, log_level="info")


def worker(
    data_dir: DataDirOpt = None,
    model_dir: ModelDirOpt = None,
    device: WorkerDeviceOpt = None,
    steps: StepsOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="This worker's name in the queue.")] = None,
) -> None:
    """Render queued jobs of a `recammaster serve` queue (run one per GPU; several share the queue)."""
    from recammaster.serve.worker import run_worker

    run_worker(_settings(data_dir, model_dir, device, steps), name=name)
