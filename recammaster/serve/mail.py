"""The optional e-mail that tells a job's owner it is done (upstream's trial e-mailed its results)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from recammaster.serve.queue import Job
from recammaster.serve.settings import SmtpSettings


def job_message(job: Job, link: str, sender: str) -> EmailMessage:
    """What the owner reads: whether it worked, and the job's link (the only way to its files)."""
    message = EmailMessage()
    message["From"], message["To"] = sender, job.email
    if job.state == "done":
        message["Subject"] = "Your ReCamMaster video is ready"
        body = (
            f"Your video, re-filmed along {job.trajectory_label}, is ready:\n\n{link}\n\n"
            "Play it beside the source there and download it. It will be deleted after a while.\n"
        )
    else:
        message["Subject"] = "Your ReCamMaster video could not be made"
        body = f"Re-filming your video along {job.trajectory_label} failed: {job.error}\n\n{link}\n"
    message.set_content(body)
    return message


def send_job_mail(smtp: SmtpSettings, job: Job, link: str, *, timeout_s: float = 30.0) -> None:
    """Send :func:`job_message` through the configured SMTP server (STARTTLS and login when set)."""
    with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout_s) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.username:
            client.login(smtp.username, smtp.password)
        client.send_message(job_message(job, link, smtp.sender))
