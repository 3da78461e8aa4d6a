"""The web application: the page, the job API and the files of each job.

``create_app(settings)`` builds a FastAPI application over the SQLite queue; workers (``worker.py``) do the
rendering. Routes:

- ``GET /``: the page (plain HTML, CSS and JavaScript from ``static/``, no build step); ``GET /j/<id>``:
  the same page showing one job.
- ``GET /api/config``: presets, limits and whether e-mail is on; ``GET /api/presets/<name>.gif``: a preset's
  animated preview; ``GET /api/example``: the bundled example clip, to try the service without a video.
- ``POST /api/jobs``: a multipart form (``video``, ``caption``, ``preset`` or ``trajectory`` file, optional
  ``email``); answers ``201`` with the job's id and link, or an error status with ``{"detail": message}``.
- ``GET /api/jobs/<id>``: state, place in the queue, progress; ``GET /api/jobs/<id>/<file>``: ``source.mp4``,
  ``result.mp4`` and ``side_by_side.mp4`` of a done job (``?download=1`` to save it).

A job is reachable only through its id: nothing lists jobs, ids are 43 random URL-safe characters, and an id
of any other shape is answered 404 before the file system is touched. Pages send no referrer, so a job's
link does not leak to other sites.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recammaster.cameras.presets import OFFICIAL_PRESET_NAMES, get_preset
from recammaster.cameras.preview import write_preview_gif
from recammaster.hub import example_clip
from recammaster.serve.queue import Job, JobQueue, is_job_id, new_job_id
from recammaster.serve.settings import ServeSettings
from recammaster.serve.uploads import UploadError, check_trajectory_file, check_video, display_name, save_upload
from recammaster.serve.worker import RESULT_FILES, WorkerPool, job_dir, remove_expired

STATIC_DIR = Path(__file__).parent / "static"
CHUNK_BYTES = 1 << 20
FORM_OVERHEAD_BYTES = 1 << 20  # caption, e-mail, trajectory file and multipart framing beside the video
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
}


class BodyLimit:
    """Answer 413 as soon as a request body passes ``max_bytes``, before it is spooled to disk whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send)
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        limit = f"{self.max_bytes / 2**20:.0f} MB"
        response = JSONResponse({"detail": f"the upload is larger than the limit of {limit}"}, status_code=413)
        await response({"type": "http"}, _no_body, send)


class _TooLarge(Exception):  # noqa: N818
    pass


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def job_view(queue: JobQueue, job: Job) -> dict:
    """What a job's page shows; never the server's paths, the client's address or the e-mail address."""
    view = {"id": job.id, "state": job.state, "position": queue.position(job), "progress": round(job.progress, 4),
            "stage": job.stage, "error": job.error, "caption": job.caption, "trajectory": job.trajectory_label,
            "source_name": job.source_name, "created_at": job.created_at, "finished_at": job.finished_at,
            "attempts": job.attempts, "email": job.email is not None}  # fmt: skip
    if job.state == "done":
        view["files"] = {name.removesuffix(".mp4"): f"/api/jobs/{job.id}/{name}" for name in RESULT_FILES}
    return view


def create_app(settings: ServeSettings, *, workers: int = 0) -> FastAPI:
    """The application; with ``workers`` > 0 it starts that many worker processes and stops them when it stops
    (in the lifespan, so that they are stopped before uvicorn hands a SIGTERM on)."""
    queue = JobQueue(settings.database)
    previews_dir = settings.data_dir / "previews"
    preview_locks = {name: threading.Lock() for name in OFFICIAL_PRESET_NAMES}

    def preview_path(name: str) -> Path:
        """The preset's animated preview, drawn on first request (0.6 s) and kept beside the queue."""
        path = previews_dir / f"{name}.gif"
        with preview_locks[name]:
            if not path.exists():
                write_preview_gif(get_preset(name)(num_frames=settings.num_frames), path, width=160, height=120,
                                  fps=20, stride=2)  # fmt: skip
        return path

    async def clean_up_periodically() -> None:
        interval = min(600.0, max(5.0, settings.retention_hours * 3600 / 4))
        while True:
            await asyncio.to_thread(remove_expired, queue, settings)
            await asyncio.sleep(interval)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        pool = WorkerPool(settings, workers)
        pool.start()
        cleaner = asyncio.create_task(clean_up_periodically())
        try:
            yield
        finally:
            cleaner.cancel()
            await asyncio.to_thread(pool.stop)

    app = FastAPI(title="ReCamMaster trial", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes + FORM_OVERHEAD_BYTES)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path.startswith("/api/jobs"):
            response.headers["Cache-Control"] = "no-store"
        return response

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/j/{job_id}", include_in_schema=False)
    def job_page(job_id: str) -> FileResponse:
        if not is_job_id(job_id):
            raise HTTPException(404, "no such job")
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/api/config")
    def config() -> dict:
        presets = [{"name": name, "number": get_preset(name).number, "description": get_preset(name).description,
                    "preview": f"/api/presets/{name}.gif"} for name in OFFICIAL_PRESET_NAMES]  # fmt: skip
        _, caption = example_clip()
        return {"presets": presets, "email": settings.smtp.enabled, "example_caption": caption,
                "limits": {"max_upload_mb": settings.max_upload_mb, "max_duration_s": settings.max_duration_s,
                           "num_frames": settings.num_frames, "max_caption_chars": settings.max_caption_chars,
                           "jobs_per_window": settings.jobs_per_window, "window_s": settings.window_s,
                           "retention_hours": settings.retention_hours}}  # fmt: skip

    @app.get("/api/presets/{file_name}")
    def preset_preview(file_name: str) -> FileResponse:
        name = file_name.removesuffix(".gif")
        if not file_name.endswith(".gif") or name not in OFFICIAL_PRESET_NAMES:
            raise HTTPException(404, "no such preset")
        return FileResponse(preview_path(name), media_type="image/gif",
                            headers={"Cache-Control": "public, max-age=86400"})  # fmt: skip

    @app.get("/api/example")
    def example() -> FileResponse:
        clip, _ = example_clip()
        return FileResponse(clip, media_type="video/mp4", filename="example.mp4")

    @app.post("/api/jobs", status_code=201)
    def submit(
        request: Request,
        video: Annotated[UploadFile, File(description="mp4, mov or webm, at least 81 frames")],
        caption: Annotated[str, Form()] = "",
        preset: Annotated[str, Form()] = "",
        trajectory: Annotated[UploadFile | None, File(description="a trajectory file instead of a preset")] = None,
        email: Annotated[str, Form()] = "",
    ) -> dict:
        client = request.client.host if request.client else "unknown"
        _check_rate(queue, settings, client)
        caption, email = caption.strip(), email.strip()
        video_name = display_name(video.filename, "the video")
        if not caption:
            raise HTTPException(422, "a caption is needed: describe what the video shows")
        if len(caption) > settings.max_caption_chars:
            raise HTTPException(422, f"the caption is longer than {settings.max_caption_chars} characters")
        if email and not settings.smtp.enabled:
            raise HTTPException(422, "this service sends no e-mail; leave the address empty")
        if email and not _plausible_email(email):
            raise HTTPException(422, f"{email!r} is not an e-mail address")
        custom = trajectory is not None and bool(trajectory.filename)
        if custom == bool(preset):
            raise HTTPException(422, "pick one preset or upload one trajectory file")
        if not custom and preset not in OFFICIAL_PRESET_NAMES:
            raise HTTPException(422, f"unknown preset {preset!r}; choose one of {', '.join(OFFICIAL_PRESET_NAMES)}")

        job_id = new_job_id()
        folder = job_dir(settings, job_id)
        folder.mkdir(parents=True)
        try:
            upload = folder / "upload.part"
            kind = save_upload(iter(lambda: video.file.read(CHUNK_BYTES), b""), upload, settings.max_upload_bytes,
                               video_name)  # fmt: skip
            source = upload.rename(folder / f"upload.{kind}")  # not source.mp4: that is the model's view
            check_video(source, video_name, settings)
            if custom:
                assert trajectory is not None
                data = trajectory.file.read(int(settings.max_trajectory_kb * 1024) + 1)
                stored, _ = check_trajectory_file(data, display_name(trajectory.filename), folder, settings)
                trajectory_spec = stored.name
            else:
                trajectory_spec = preset
            job = queue.submit(job_id, client=client, caption=caption, trajectory=trajectory_spec,
                               source_name=video_name, source_file=source.name, email=email or None,
                               base_url=str(request.base_url))  # fmt: skip
        except UploadError as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(error.status, str(error)) from error
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return {"id": job.id, "url": f"/j/{job.id}", "status": f"/api/jobs/{job.id}"}

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str) -> dict:
        return job_view(queue, _find(queue, job_id))

    @app.get("/api/jobs/{job_id}/{file_name}")
    def job_file(job_id: str, file_name: str, download: bool = False) -> FileResponse:
        job = _find(queue, job_id)
        if file_name not in RESULT_FILES or job.state != "done":
            raise HTTPException(404, "no such file")
        path = job_dir(settings, job.id) / file_name
        if not path.is_file():
            raise HTTPException(404, "no such file (deleted)")
        name = f"recammaster-{job.trajectory_label.replace(' ', '-')}-{file_name}" if download else None
        return FileResponse(path, media_type="video/mp4", filename=name,
                            content_disposition_type="attachment" if download else "inline")  # fmt: skip

    return app


def _find(queue: JobQueue, job_id: str) -> Job:
    job = queue.get(job_id) if is_job_id(job_id) else None
    if job is None:
        raise HTTPException(404, "no such job (the link is wrong, or the job was deleted after its time)")
    return job


def _check_rate(queue: JobQueue, settings: ServeSettings, client: str) -> None:
    now = time.time()
    recent = queue.recent_submissions(client, now - settings.window_s)
    if len(recent) >= settings.jobs_per_window:
        wait = math.ceil(recent[-settings.jobs_per_window] + settings.window_s - now)
        raise HTTPException(429, f"too many videos from this address: {settings.jobs_per_window} per "
                                 f"{settings.window_s / 60:g} minutes; try again in {wait} s",
                            headers={"Retry-After": str(max(wait, 1))})  # fmt: skip


def _plausible_email(address: str) -> bool:
    name, at, domain = address.rpartition("@")
    return bool(at and name and "." in domain and len(address) <= 254 and not any(c.isspace() for c in address))
