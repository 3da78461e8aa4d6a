"""Workers as separate processes (``recammaster worker``): killed mid-job, the job restarts on another worker;
stopped politely, the job goes back to the queue untouched."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recammaster.serve.app import create_app
from recammaster.serve.queue import JobQueue
from recammaster.video import probe_video
from tests.serve.conftest import child_processes, start_server, submit

STEPS = 400  # a few seconds of sampling with the tiny model: time to act while the job runs
FAST_CLOCK = {"RECAMMASTER_SERVE_HEARTBEAT_S": "0.3", "RECAMMASTER_SERVE_STALE_AFTER_S": "2",
              "RECAMMASTER_SERVE_POLL_S": "0.2"}  # fmt: skip


def start_worker(settings, name: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "recammaster.cli", "worker", "--data-dir", str(settings.data_dir), "--model-dir",
               str(settings.model_dir), "--device", "cpu", "--steps", str(STEPS), "--name", name]  # fmt: skip
    return subprocess.Popen(command, env={**os.environ, **FAST_CLOCK}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def wait_for(condition, timeout_s: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}) before {what}:\n{process.stdout.read()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def sampling(queue: JobQueue, job_id: str) -> bool:
    job = queue.get(job_id)
    return job.state == "running" and job.stage.startswith("re-filming: step") and job.progress > 0.1


def a_job_being_sampled(settings, clip, worker_name: str) -> tuple[JobQueue, str, subprocess.Popen]:
    """Submit a job, start a worker process, and return once that worker is in the middle of sampling it."""
    with TestClient(create_app(settings)) as client:
        job_id = submit(client, clip).json()["id"]
    queue = JobQueue(settings.database)
    worker = start_worker(settings, worker_name)
    try:
        wait_for(lambda: sampling(queue, job_id), 120, "the job to be sampling", worker)
    except BaseException:
        worker.kill()
        raise
    return queue, job_id, worker


def test_a_worker_killed_mid_job_loses_nothing(settings, clip):
    queue, job_id, first = a_job_being_sampled(settings, clip, "first")
    first.kill()
    first.wait()
    assert first.returncode == -signal.SIGKILL
    assert queue.get(job_id).state == "running"  # nobody knows yet that its worker died
    second = start_worker(settings, "second")
    try:
        job = wait_for(lambda: (j := queue.get(job_id)).state in ("done", "failed") and j, 180, "the job to end",
                       second)  # fmt: skip
    finally:
        second.send_signal(signal.SIGTERM)
        output = second.communicate(timeout=60)[0]
    assert (job.state, job.attempts, job.worker, job.error) == ("done", 2, "second", None), output[-2000:]
    assert "jobs whose worker went silent are back in the queue" in output
    folder = settings.jobs_dir / job_id
    assert sorted(p.name for p in folder.iterdir()) == ["result.mp4", "side_by_side.mp4", "source.mp4", "upload.mp4"]
    assert probe_video(folder / "result.mp4").frames == 81
    assert second.returncode == 0


def test_a_worker_stopped_politely_puts_its_job_back(settings, clip):
    queue, job_id, worker = a_job_being_sampled(settings, clip, "polite")
    try:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=60)[0]
    finally:
        worker.kill()
    assert worker.returncode == 0, output[-2000:]
    job = queue.get(job_id)
    assert (job.state, job.attempts, job.worker, job.progress, queue.position(job)) == ("queued", 0, None, 0.0, 1)
    assert not (settings.jobs_dir / job_id / "result.mp4").exists()


def test_workers_of_a_killed_server_stop_by_themselves(tmp_path, tiny_model_dir):
    server, _ = start_server(tmp_path, tiny_model_dir, workers=2)
    workers = wait_for(lambda: len(found := child_processes(server.pid)) == 2 and found, 60, "two workers")
    server.kill()  # no chance to stop its pool
    server.wait()
    wait_for(lambda: not any(_running(pid) for pid in workers), 30, "the orphaned workers to exit")


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return False
