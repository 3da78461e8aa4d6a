"""Many videos across GPUs: the web service's queue drained by one worker, then by one worker per GPU.

    python benchmarks/multi_gpu_queue.py WORK --jobs 32 --workers 1 4 [--model-dir DIR]

For each worker count, a fresh queue in ``WORK/workers{N}`` gets ``--jobs`` jobs (the bundled example clip
with its caption, the ten presets in turn), and a :class:`WorkerPool` of N workers on ``--device cuda``
(worker i on GPU i, as ``recammaster serve --workers N --device cuda`` starts them) renders them. The time
runs from the pool's start (model loading included) to the last job's end. Each run's results are compared
with the first run's, frame by frame. The span from the first job's start to the last one's end leaves
out the workers' start (spawned processes importing torch at once), which the total includes.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import report
from recammaster.cameras import OFFICIAL_PRESET_NAMES
from recammaster.hub import example_clip
from recammaster.serve.queue import JobQueue, new_job_id
from recammaster.serve.settings import ServeSettings
from recammaster.serve.worker import WorkerPool, job_dir
from recammaster.video import read_video


def fill_queue(settings: ServeSettings, jobs: int) -> list[str]:
    """``jobs`` jobs of the example clip, as the web page would submit them; their ids in submission order."""
    clip, caption = example_clip()
    queue, ids = JobQueue(settings.database), []
    for index in range(jobs):
        job_id = new_job_id()
        folder = job_dir(settings, job_id)
        folder.mkdir(parents=True)
        shutil.copy(clip, folder / "upload.mp4")
        preset = OFFICIAL_PRESET_NAMES[index % len(OFFICIAL_PRESET_NAMES)]
        queue.submit(job_id, client="benchmark", caption=caption, trajectory=preset, source_name=clip.name,
                     source_file="upload.mp4")  # fmt: skip
        ids.append(job_id)
    return ids


def drain(settings: ServeSettings, workers: int, jobs: int) -> float:
    """Seconds for a pool of ``workers`` to finish every job in the queue."""
    queue = JobQueue(settings.database)
    pool = WorkerPool(settings, workers)
    start = time.perf_counter()
    pool.start()
    try:
        while (counts := queue.counts())["done"] + counts["failed"] < jobs:
            time.sleep(0.2)
    finally:
        pool.stop()
    seconds = time.perf_counter() - start
    if counts["failed"]:
        raise SystemExit(f"{counts['failed']} jobs failed; see the workers' log above")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, torch.cuda.device_count()])
    parser.add_argument("--model-dir", type=Path, help="default: the embedded model")
    parser.add_argument("--device", default="cuda")
    arguments = parser.parse_args()

    results, rows = {}, []
    for workers in arguments.workers:
        settings = ServeSettings(data_dir=arguments.work / f"workers{workers}", model_dir=arguments.model_dir,
                                 device=arguments.device)  # fmt: skip
        if settings.data_dir.exists():
            shutil.rmtree(settings.data_dir)
        ids = fill_queue(settings, arguments.jobs)
        seconds = drain(settings, workers, arguments.jobs)
        queue = JobQueue(settings.database)
        done = [queue.get(job_id) for job_id in ids]
        span = max(job.finished_at for job in done) - min(job.started_at for job in done)
        results[workers] = [read_video(job_dir(settings, job_id) / "result.mp4") for job_id in ids]
        first = results[arguments.workers[0]]
        difference = max(np.abs(a.astype(np.int16) - b).max() for a, b in zip(results[workers], first, strict=True))
        rows.append((workers, seconds, span, 60 * arguments.jobs / span, rows[0][2] / span if rows else 1.0,
                     int(difference)))  # fmt: skip
    device = torch.cuda.get_device_name() if arguments.device.startswith("cuda") else arguments.device
    report(
        f"{arguments.jobs} queued re-renders of the example clip ({device}; model: "
        f"{arguments.model_dir or 'embedded default'}); model loading included",
        ["workers", "s in all", "s, first job's start to last job's end", "videos / min", "speed-up",
         "max |pixel diff| vs first run"],
        rows, ["d", ".1f", ".1f", ".1f", ".2f", "d"], "multi_gpu_queue",
    )  # fmt: skip


if __name__ == "__main__":
    main()
