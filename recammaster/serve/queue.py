"""The job queue: one SQLite table shared by the web application and any number of worker processes.

A job's id is its only key and the secret in its link (32 random bytes), so nothing lists jobs or finds one
by guessing. States: ``queued`` -> ``running`` -> ``done`` or ``failed``. A worker claims the oldest queued
job in one ``BEGIN IMMEDIATE`` transaction, so two workers never take the same job, and while it renders it
writes a heartbeat. A job whose heartbeat stops (the worker was killed, the machine rebooted) goes back to
the queue when any worker next looks for work, and fails after ``max_attempts`` such restarts, so a video
that kills workers cannot loop forever. SQLite in WAL mode lets the pages read while a worker writes.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
STATES = ("queued", "running", "done", "failed")
CUSTOM_TRAJECTORY_STEM = "trajectory"  # an uploaded trajectory is stored as trajectory.<suffix> in the job's folder

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL DEFAULT 'queued',
    client TEXT NOT NULL,
    caption TEXT NOT NULL,
    trajectory TEXT NOT NULL,        -- a preset name, or the name of the uploaded trajectory file
    source_name TEXT NOT NULL,       -- the uploaded file's name, shown to its owner only
    source_file TEXT NOT NULL,       -- the stored upload, inside the job's folder
    email TEXT,
    base_url TEXT NOT NULL DEFAULT '',  -- the address the page was opened at, for links in e-mails
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat_at REAL,
    worker TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT 'waiting in the queue',
    error TEXT,
    notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_client ON jobs (client, created_at);
"""


@dataclass(frozen=True)
class Job:
    id: str
    state: str
    client: str
    caption: str
    trajectory: str
    source_name: str
    source_file: str
    email: str | None
    base_url: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    worker: str | None
    attempts: int
    progress: float
    stage: str
    error: str | None
    notified: int

    @property
    def custom_trajectory(self) -> bool:
        return self.trajectory.startswith(CUSTOM_TRAJECTORY_STEM + ".")

    @property
    def trajectory_label(self) -> str:
        return "your trajectory file" if self.custom_trajectory else self.trajectory


def new_job_id() -> str:
    return secrets.token_urlsafe(32)


def is_job_id(text: str) -> bool:
    """Whether ``text`` can be a job id; anything else (``..``, slashes) never reaches the file system."""
    return bool(JOB_ID_PATTERN.match(text))


class JobQueue:
    """The jobs table in ``path``. Each call opens its own connection, so one object serves any thread."""

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer (outside a transaction)
            connection.executescript(SCHEMA)
        finally:
            connection.close()

    @contextlib.contextmanager
    def _connect(self, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    # -- the web application's side ------------------------------------------------------------------------

    def submit(self, job_id: str, *, client: str, caption: str, trajectory: str, source_name: str, source_file: str,
               email: str | None = None, base_url: str = "", now: float | None = None) -> Job:  # fmt: skip
        with self._connect(immediate=True) as connection:
            connection.execute(
                "INSERT INTO jobs (id, client, caption, trajectory, source_name, source_file, email, base_url, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    client,
                    caption,
                    trajectory,
                    source_name,
                    source_file,
                    email,
                    base_url,
                    time.time() if now is None else now,
                ),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else Job(**dict(row))

    def position(self, job: Job) -> int:
        """1 for the next job to run, 0 once it runs or ran."""
        if job.state != "queued":
            return 0
        with self._connect() as connection:
            (ahead,) = connection.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND (created_at, id) < (?, ?)",
                (job.created_at, job.id),
            ).fetchone()
        return ahead + 1

    def recent_submissions(self, client: str, since: float) -> list[float]:
        """When ``client`` submitted since ``since`` (oldest first): the rate limit counts these."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT created_at FROM jobs WHERE client = ? AND created_at >= ? ORDER BY created_at",
                (client, since),
            ).fetchall()
        return [row[0] for row in rows]

    # -- the workers' side ---------------------------------------------------------------------------------

    def claim(self, worker: str, *, now: float | None = None) -> Job | None:
        """The oldest queued job, now running on ``worker``; None when the queue is empty."""
        now = time.time() if now is None else now
        with self._connect(immediate=True) as connection:
            row = connection.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            connection.execute(
                "UPDATE jobs SET state = 'running', worker = ?, started_at = ?, heartbeat_at = ?, "
                "attempts = attempts + 1, progress = 0, stage = 'starting', error = NULL WHERE id = ?",
                (worker, now, now, row["id"]),
            )
        return self.get(row["id"])

    def report(self, job_id: str, worker: str, *, progress: float, stage: str, now: float | None = None) -> bool:
        """Progress and heartbeat of a running job; False if the job is no longer this worker's (requeued)."""
        with self._connect(immediate=True) as connection:
            cursor = connection.execute(
                "UPDATE jobs SET progress = ?, stage = ?, heartbeat_at = ? "
                "WHERE id = ? AND state = 'running' AND worker = ?",
                (progress, stage, time.time() if now is None else now, job_id, worker),
            )
        return cursor.rowcount == 1

    def heartbeat(self, job_id: str, worker: str, *, now: float | None = None) -> bool:
        with self._connect(immediate=True) as connection:
            cursor = connection.execute(
                "UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND state = 'running' AND worker = ?",
                (time.time() if now is None else now, job_id, worker),
            )
        return cursor.rowcount == 1

    def finish(self, job_id: str, worker: str, *, error: str | None = None, now: float | None = None) -> bool:
        """Mark the job done (``error`` None) or failed with a message its owner can read."""
        state, stage = ("done", "finished") if error is None else ("failed", "failed")
        with self._connect(immediate=True) as connection:
            cursor = connection.execute(
                "UPDATE jobs SET state = ?, stage = ?, error = ?, progress = CASE WHEN ? = 'done' THEN 1 ELSE "
                "progress END, finished_at = ? WHERE id = ? AND state = 'running' AND worker = ?",
                (state, stage, error, state, time.time() if now is None else now, job_id, worker),
            )
        return cursor.rowcount == 1

    def release(self, job_id: str, worker: str) -> bool:
        """Put a running job back in the queue, as it was, because its worker is stopping (not its fault)."""
        with self._connect(immediate=True) as connection:
            cursor = connection.execute(
                "UPDATE jobs SET state = 'queued', worker = NULL, attempts = attempts - 1, progress = 0, "
                "stage = 'waiting in the queue' WHERE id = ? AND state = 'running' AND worker = ?",
                (job_id, worker),
            )
        return cursor.rowcount == 1

    def requeue_stale(self, stale_after_s: float, max_attempts: int, *, now: float | None = None) -> list[str]:
        """Running jobs whose worker went silent: back to the queue, or failed after ``max_attempts`` tries."""
        now = time.time() if now is None else now
        with self._connect(immediate=True) as connection:
            rows = connection.execute(
                "SELECT id, attempts FROM jobs WHERE state = 'running' AND heartbeat_at < ?", (now - stale_after_s,)
            ).fetchall()
            for row in rows:
                if row["attempts"] >= max_attempts:
                    connection.execute(
                        "UPDATE jobs SET state = 'failed', stage = 'failed', finished_at = ?, error = ? WHERE id = ?",
                        (
                            now,
                            f"the worker stopped {row['attempts']} times while rendering this video; "
                            "it was not tried again",
                            row["id"],
                        ),
                    )
                else:
                    connection.execute(
                        "UPDATE jobs SET state = 'queued', worker = NULL, progress = 0, "
                        "stage = 'waiting in the queue (restarted: its worker stopped)' WHERE id = ?",
                        (row["id"],),
                    )
        return [row["id"] for row in rows]

    def pending_notifications(self) -> list[Job]:
        """Finished jobs with an e-mail address whose owner has not been told yet."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT * FROM jobs WHERE state IN ('done', 'failed') AND email IS NOT NULL AND notified = 0"
            ).fetchall()
        return [Job(**dict(row)) for row in rows]

    def mark_notified(self, job_id: str) -> None:
        with self._connect(immediate=True) as connection:
            connection.execute("UPDATE jobs SET notified = 1 WHERE id = ?", (job_id,))

    # -- clean-up ------------------------------------------------------------------------------------------

    def expired(self, older_than: float) -> list[str]:
        """Finished jobs (done or failed) that finished before ``older_than``."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT id FROM jobs WHERE state IN ('done', 'failed') AND finished_at < ?", (older_than,)
            ).fetchall()
        return [row[0] for row in rows]

    def delete(self, job_id: str) -> None:
        with self._connect(immediate=True) as connection:
            connection.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def counts(self) -> dict[str, int]:
        with self._connect() as connection:
            rows = connection.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return dict.fromkeys(STATES, 0) | {row[0]: row[1] for row in rows}
