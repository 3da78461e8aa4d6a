"""The worker: takes jobs from the queue one at a time and re-films them with the pipeline.

Any number of workers may share one queue (one per GPU: ``recammaster worker --device cuda:1``). A worker
loads its model once, on its first job. While a job renders, a thread writes a heartbeat, and every sampling
step writes the job's progress. If the worker is stopped politely (SIGTERM, Ctrl-C) the job goes back to
the head of the queue as it was; if it is killed, the job's heartbeat stops and the next worker that looks
for work puts the job back (``requeue_stale``), so it restarts from the beginning on whichever worker is
free. Results are written atomically into the job's folder, so a restarted job never leaves half a video.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recammaster.cameras.files import load_trajectory, load_trajectory_file
from recammaster.errors import ReCamMasterError
from recammaster.serve.mail import send_job_mail
from recammaster.serve.queue import Job, JobQueue
from recammaster.serve.settings import ServeSettings
from recammaster.video import postprocess_frames, preprocess_frames, probe_video, read_video, side_by_side, write_video

logger = logging.getLogger(__name__)

RESULT_FILES = ("result.mp4", "side_by_side.mp4", "source.mp4")  # what a done job's folder holds for its page
CLEANUP_EVERY_S = 60.0
ORPHAN_AFTER_S = 3600.0  # an upload folder with no job this old was left by a server stopped mid-upload


class WorkerStopping(Exception):  # noqa: N818 -- a signal, not an error
    """Raised inside a render when the worker was asked to stop: the job goes back to the queue."""


class JobLost(Exception):  # noqa: N818
    """The job stopped being this worker's (it was requeued while this worker seemed dead): drop it."""


def job_dir(settings: ServeSettings, job_id: str) -> Path:
    return settings.jobs_dir / job_id


def job_link(settings: ServeSettings, job: Job) -> str:
    """The job's page: under ``public_url`` when set, else under the address its owner submitted it at."""
    return f"{(settings.public_url or job.base_url or 'http://localhost:8000').rstrip('/')}/j/{job.id}"


def remove_expired(queue: JobQueue, settings: ServeSettings, *, now: float | None = None) -> list[str]:
    """Delete finished jobs older than the retention time: their folder (uploads, results), then their row.

    Also folders left without a job by a server stopped mid-upload, once they are an hour old.
    """
    now = time.time() if now is None else now
    removed = queue.expired(now - settings.retention_hours * 3600)
    for job_id in removed:
        shutil.rmtree(job_dir(settings, job_id), ignore_errors=True)
        queue.delete(job_id)
    if settings.jobs_dir.is_dir():
        for folder in settings.jobs_dir.iterdir():
            if folder.stat().st_mtime < now - ORPHAN_AFTER_S and queue.get(folder.name) is None:
                shutil.rmtree(folder, ignore_errors=True)
    return removed


class Worker:
    """One worker process's loop; ``pipeline`` may be given ready (tests), else it is loaded on the first job."""

    def __init__(self, settings: ServeSettings, *, name: str | None = None, pipeline: Any = None,
                 parent_pid: int | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.parent_pid = parent_pid  # a pool's worker stops when the server that started it is gone
        self.queue = JobQueue(settings.database)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.pipeline = pipeline
        self.stop_requested = threading.Event()
        self._last_cleanup = 0.0

    # -- the loop ----------------------------------------------------------------------------------------

    def run(self, *, max_jobs: int | None = None) -> int:
        """Work until stopped (or ``max_jobs`` jobs ran); returns the number of jobs run."""
        done = 0
        logger.info("worker %s: waiting for jobs in %s", self.name, self.settings.database)
        while not self.stopping() and (max_jobs is None or done < max_jobs):
            if self.run_once():
                done += 1
            else:
                self.stop_requested.wait(self.settings.poll_s)
        return done

    def run_once(self) -> bool:
        """Housekeeping, then at most one job; True if a job ran (whatever its outcome)."""
        requeued = self.queue.requeue_stale(self.settings.stale_after_s, self.settings.max_attempts)
        if requeued:
            logger.warning("worker %s: jobs whose worker went silent are back in the queue: %s", self.name,
                           ", ".join(job_id[:8] for job_id in requeued))  # fmt: skip
        self.send_notifications()
        if time.time() - self._last_cleanup > CLEANUP_EVERY_S:
            remove_expired(self.queue, self.settings)
            self._last_cleanup = time.time()
        job = self.queue.claim(self.name)
        if job is None:
            return False
        self.process(job)
        self.send_notifications()
        return True

    def process(self, job: Job) -> None:
        logger.info("worker %s: job %s (attempt %d)", self.name, job.id[:8], job.attempts)
        try:
            with self._heartbeat(job):
                self.render(job)
        except WorkerStopping:
            self.queue.release(job.id, self.name)
            logger.info("worker %s: stopping; job %s is back in the queue", self.name, job.id[:8])
        except JobLost:
            logger.warning("worker %s: job %s was given to another worker", self.name, job.id[:8])
        except (ReCamMasterError, ValueError) as error:  # the input's fault: its owner reads why
            self.queue.finish(job.id, self.name, error=self._public(error, job))
        except Exception as error:
            logger.exception("worker %s: job %s failed", self.name, job.id[:8])
            self.queue.finish(job.id, self.name, error=f"internal error ({type(error).__name__}); please try again")
        else:
            self.queue.finish(job.id, self.name)

    def send_notifications(self) -> None:
        if not self.settings.smtp.enabled:
            return
        for job in self.queue.pending_notifications():
            try:
                send_job_mail(self.settings.smtp, job, job_link(self.settings, job))
            except (OSError, ValueError) as error:  # smtplib's errors are OSErrors; not retried, not fatal
                logger.warning("worker %s: could not e-mail job %s's owner: %s", self.name, job.id[:8], error)
            self.queue.mark_notified(job.id)

    # -- one job -----------------------------------------------------------------------------------------

    def render(self, job: Job) -> None:
        folder = job_dir(self.settings, job.id)
        self._report(job, 0.01, "loading the model")
        pipeline, defaults = self._load()
        steps = self.settings.num_inference_steps or int(defaults["num_inference_steps"])
        height, width, frames = int(defaults["height"]), int(defaults["width"]), self.settings.num_frames
        self._report(job, 0.04, "reading the video")
        source = folder / job.source_file
        trajectory = (load_trajectory_file(folder / job.trajectory, num_frames=frames) if job.custom_trajectory
                      else load_trajectory(job.trajectory, frames))  # fmt: skip
        video = read_video(source, frames)
        fps = probe_video(source).fps

        def after_step(step: int, _latents: torch.Tensor) -> None:
            if self.stopping():
                raise WorkerStopping
            self._report(job, 0.08 + 0.84 * (step + 1) / steps, f"re-filming: step {step + 1} of {steps}")

        self._report(job, 0.06, "encoding the video")
        generator = torch.Generator("cpu").manual_seed(self.settings.seed)
        result = pipeline(
            video, trajectory, job.caption, height=height, width=width, num_frames=frames, num_inference_steps=steps,
            guidance_scale=float(defaults["guidance_scale"]), generator=generator, callback_on_step_end=after_step,
            source_reuse=self.settings.source_reuse, motion_guidance=float(defaults["motion_guidance"]),
        ).frames  # fmt: skip
        self._report(job, 0.94, "writing the videos")
        seen = postprocess_frames(preprocess_frames(video, height, width))  # the source as the model saw it
        outputs = {"result.mp4": np.asarray(result), "source.mp4": seen,
                   "side_by_side.mp4": side_by_side(seen, np.asarray(result), trajectory=trajectory)}  # fmt: skip
        for name, frames_out in outputs.items():
            write_video(folder / name, frames_out, fps=fps, overwrite=True)

    def _load(self) -> tuple[Any, dict]:
        from recammaster.pipeline.loading import choose_model, load_pipeline

        model_dir, defaults = choose_model(self.settings.model_dir)
        if self.pipeline is None:
            logger.info("worker %s: loading %s on %s", self.name, model_dir or "the official model",
                        self.settings.device)  # fmt: skip
            self.pipeline = load_pipeline(model_dir, self.settings.device, self.settings.offload)
            self.pipeline.set_progress_bar_config(disable=True)
        return self.pipeline, defaults

    def _report(self, job: Job, progress: float, stage: str) -> None:
        if not self.queue.report(job.id, self.name, progress=progress, stage=stage):
            raise JobLost

    @contextmanager
    def _heartbeat(self, job: Job):
        """Beat while the job runs, also through long steps (loading a model, encoding) that report nothing."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.settings.heartbeat_s):
                self.queue.heartbeat(job.id, self.name)

        thread = threading.Thread(target=beat, name=f"heartbeat-{job.id[:8]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _public(self, error: Exception, job: Job) -> str:
        """The error without the server's folders in it."""
        return str(error).replace(str(job_dir(self.settings, job.id)) + os.sep, "")

    # -- stopping ----------------------------------------------------------------------------------------

    def stopping(self) -> bool:
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            self.stop_requested.set()  # orphaned: the server was killed without stopping its pool
        return self.stop_requested.is_set()

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT finish the current step, put the job back and end :meth:`run`."""

        def request_stop(signum: int, _frame: object) -> None:
            logger.info("worker %s: %s received, stopping", self.name, signal.Signals(signum).name)
            self.stop_requested.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)


def run_worker(settings: ServeSettings, name: str | None = None, parent_pid: int | None = None) -> None:
    """A worker process's whole life: what ``recammaster worker`` and ``recammaster serve --workers N`` run."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    worker = Worker(settings, name=name, parent_pid=parent_pid)
    worker.stop_on_signals()
    worker.run()


def worker_device(device: str, index: int, gpus: int) -> str:
    """The device of a pool's ``index``-th worker: a bare ``cuda`` on a machine with several GPUs means one
    worker per GPU, round robin; anything else (``cpu``, ``cuda:1``) is every worker's."""
    return f"cuda:{index % gpus}" if device == "cuda" and gpus > 1 else device


class WorkerPool:
    """``count`` worker processes beside the web server, each started again if it dies; with ``--device cuda``
    on a machine with several GPUs, worker i renders on GPU i mod the number of GPUs."""

    def __init__(self, settings: ServeSettings, count: int) -> None:
        import multiprocessing

        self.settings = settings
        self.count = count
        self.context = multiprocessing.get_context("spawn")  # no forked torch or server state
        self.processes: list[Any] = []
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _start_one(self, index: int) -> Any:
        gpus = torch.cuda.device_count() if self.settings.device == "cuda" else 0
        settings = dataclasses.replace(self.settings, device=worker_device(self.settings.device, index, gpus))
        process = self.context.Process(target=run_worker, args=(settings, None, os.getpid()),
                                       name=f"recammaster-worker-{index}")  # fmt: skip
        process.start()
        return process

    def start(self) -> None:
        if not self.count:
            return
        self.processes = [self._start_one(index) for index in range(self.count)]
        self._watcher = threading.Thread(target=self._watch, name="worker-pool", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            for index, process in enumerate(self.processes):
                if not process.is_alive() and not self._stop.is_set():
                    logger.warning("worker %d exited (code %s); starting it again", index, process.exitcode)
                    self.processes[index] = self._start_one(index)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every worker (its job goes back to the queue) and wait for them."""
        self._stop.set()
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
