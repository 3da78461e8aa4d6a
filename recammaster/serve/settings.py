"""The web service's settings: where its files live, what it accepts, and how it renders and mails.

One frozen value shared by the web application and its workers, so that a limit means the same everywhere.
Every field has a ``RECAMMASTER_SERVE_<FIELD>`` environment variable (``recammaster serve --help`` lists the
options); the defaults suit a trial service on one machine.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from recammaster.errors import ReCamMasterError

ENV_PREFIX = "RECAMMASTER_SERVE_"


@dataclass(frozen=True)
class SmtpSettings:
    """Where result e-mails go out; ``host`` empty: no e-mail (the page then offers none)."""

    host: str = ""
    port: int = 25
    sender: str = "recammaster@localhost"
    username: str = ""
    password: str = ""
    starttls: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class ServeSettings:
    data_dir: Path = Path("recammaster-serve")  # the SQLite queue and one folder per job
    public_url: str = ""  # how people reach the service, for links in e-mails ("" = the page's own address)
    # what an upload may be
    max_upload_mb: float = 200.0
    max_duration_s: float = 120.0
    max_pixels: int = 3840 * 2160  # per frame: a bigger stream is refused before anything decodes it
    num_frames: int = 81  # frames the model re-renders: shorter videos are refused
    max_caption_chars: int = 2000
    max_trajectory_kb: float = 512.0
    # who may submit how often, and how long files stay
    jobs_per_window: int = 10  # submissions of one client (IP address) ...
    window_s: float = 3600.0  # ... within this many seconds
    retention_hours: float = 24.0  # uploads and results of finished jobs are deleted after this
    # rendering
    model_dir: Path | None = None  # None: the official files in the hub cache, else the embedded default
    device: str = "cpu"
    offload: str = "none"
    num_inference_steps: int | None = None  # None: the model's own default
    source_reuse: int = 1  # the fast mode: a full step every N steps (1: exact; benchmarks/RESULTS.md)
    seed: int = 0
    # workers
    heartbeat_s: float = 2.0  # a running job's worker says it is alive this often ...
    stale_after_s: float = 30.0  # ... and a job silent this long is put back in the queue
    max_attempts: int = 3  # a job whose worker died this often fails instead of looping
    poll_s: float = 1.0  # an idle worker looks for work this often
    smtp: SmtpSettings = field(default_factory=SmtpSettings)

    def __post_init__(self) -> None:
        problems = [f"{name} must be positive, got {getattr(self, name)}" for name in _POSITIVE
                    if not getattr(self, name) > 0]  # fmt: skip
        if self.num_frames % 4 != 1:
            problems.append(f"num_frames must be 4k+1 (81 for the official model), got {self.num_frames}")
        if self.retention_hours < 0:
            problems.append(f"retention_hours must be 0 or more, got {self.retention_hours}")
        if self.stale_after_s <= 2 * self.heartbeat_s:
            problems.append(f"stale_after_s ({self.stale_after_s}) must exceed two heartbeats ({self.heartbeat_s} s)")
        if problems:
            raise ReCamMasterError("serve settings: " + "; ".join(problems))

    @property
    def database(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> ServeSettings:
        """Defaults, then ``RECAMMASTER_SERVE_*`` variables (``..._SMTP_HOST`` for the mail fields), then
        ``overrides`` that are not None. A variable that does not parse is an error naming it."""
        environ = os.environ if environ is None else environ
        values = _read_env(cls, environ, ENV_PREFIX)
        smtp = _read_env(SmtpSettings, environ, ENV_PREFIX + "SMTP_")
        values.update({key: value for key, value in overrides.items() if value is not None})
        if "smtp" not in overrides or overrides["smtp"] is None:
            values["smtp"] = SmtpSettings(**smtp)
        return cls(**values)


_POSITIVE = ("max_upload_mb", "max_duration_s", "max_pixels", "num_frames", "max_caption_chars", "max_trajectory_kb",
             "jobs_per_window", "window_s", "heartbeat_s", "max_attempts", "poll_s", "source_reuse")  # fmt: skip


def _read_env(kind: type, environ: dict[str, str], prefix: str) -> dict[str, object]:
    values: dict[str, object] = {}
    for item in dataclasses.fields(kind):
        name = prefix + item.name.upper()
        if item.name == "smtp" or name not in environ:
            continue
        text = environ[name]
        kind_name = str(item.type)
        try:
            if "bool" in kind_name:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError("expected true or false")
                values[item.name] = text.lower() in ("1", "true", "yes")
            elif "Path" in kind_name:
                values[item.name] = Path(text) if text else None
            elif kind_name.startswith("int"):
                values[item.name] = int(text) if text else None
            elif kind_name.startswith("float"):
                values[item.name] = float(text)
            else:
                values[item.name] = text
        except ValueError as error:
            raise ReCamMasterError(f"environment variable {name}={text!r}: {error}") from error
    return values
