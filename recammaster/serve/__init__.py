"""The web trial service: upload a video, pick a trajectory, get the re-filmed video.

``app.py`` (FastAPI: the page and the job API), ``queue.py`` (jobs in SQLite, shared by every process),
``worker.py`` (processes that render queued jobs), ``uploads.py`` (what an upload must be), ``mail.py``
(the optional e-mail), ``settings.py`` (limits and paths). ``recammaster serve`` runs the application with
its workers; ``recammaster worker`` runs one more worker on the same queue (for example, one per GPU).
"""

from recammaster.serve.settings import ServeSettings, SmtpSettings

__all__ = ["ServeSettings", "SmtpSettings"]
