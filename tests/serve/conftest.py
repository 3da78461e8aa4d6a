"""The web service over a tiny random model that renders 81 frames at 32x32 in a second or two."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from recammaster.pipeline import ReCamMasterPipeline
from recammaster.pipeline.recammaster_pipeline import RENDER_DEFAULTS_FILE
from recammaster.serve.app import create_app
from recammaster.serve.settings import ServeSettings
from recammaster.serve.worker import Worker
from tests.pipeline.conftest import tiny_components


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_processes(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (Linux /proc), skipping multiprocessing's resource tracker."""
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            command = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid) and b"resource_tracker" not in command:
            children.append(int(status.parent.name))
    return children


def start_server(data_dir: Path, model_dir: Path, workers: int = 1) -> tuple[subprocess.Popen, str]:
    """``recammaster serve`` in its own process, once it answers; its output goes to ``data_dir/server.log``."""
    port = free_port()
    command = [sys.executable, "-m", "recammaster.cli", "serve", "--port", str(port), "--workers", str(workers),
               "--data-dir", str(data_dir), "--model-dir", str(model_dir), "--device", "cpu"]  # fmt: skip
    with (data_dir / "server.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/config", timeout=2).close()
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start:\n{(data_dir / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)


TINY_RENDER = {"height": 32, "width": 32, "num_inference_steps": 3, "guidance_scale": 1.0}
CAPTION = "Three people dance in a striped hall."


def moving_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Colour gradients that move a little every frame, uint8 (count, height, width, 3)."""
    t, y, x = np.meshgrid(np.arange(count), np.arange(height), np.arange(width), indexing="ij")
    return np.stack([(x * 4 + t * 3) % 256, (y * 5) % 256, (x + y + t * 7) % 256], axis=-1).astype(np.uint8)


def write_clip(path: Path, frames: int = 81, codec: str = "libx264", fps: int = 30, container_format=None) -> Path:
    """A real video file: H.264 in MP4 (or QuickTime with ``container_format='mov'``), VP9 in WebM with
    ``codec='libvpx-vp9'``; the container follows the suffix unless ``container_format`` says otherwise."""
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index, rgb in enumerate(moving_frames(frames)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve-model")
    ReCamMasterPipeline(**tiny_components(tokenizer)).save_pretrained(folder)
    (folder / RENDER_DEFAULTS_FILE).write_text(json.dumps(TINY_RENDER))
    return folder


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "dance.mp4")


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path) -> ServeSettings:
    return ServeSettings(data_dir=tmp_path / "service", model_dir=tiny_model_dir, device="cpu")


@pytest.fixture
def client(settings: ServeSettings):
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def worker(settings: ServeSettings) -> Worker:
    return Worker(settings, name="test-worker")


def submit(client: TestClient, video: Path, preset: str = "pan-right", **form) -> dict:
    """POST a job the way the page does; returns the response (status checked by the caller)."""
    with video.open("rb") as handle:
        files = {"video": (form.pop("filename", video.name), handle, "video/mp4")}
        if "trajectory" in form:
            files["trajectory"] = form.pop("trajectory")
            preset = ""
        response = client.post("/api/jobs", files=files, data={"caption": CAPTION, "preset": preset, **form})
    return response
