"""The optional e-mail, sent to a real SMTP server on this machine."""

import dataclasses
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from recammaster.serve.app import create_app
from recammaster.serve.settings import SmtpSettings
from recammaster.serve.worker import Worker
from tests.serve.conftest import free_port, submit


class Inbox:
    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 -- aiosmtpd's hook name
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def inbox():
    handler = Inbox()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


def test_the_owner_gets_an_email_with_the_link_when_the_job_is_done_or_failed(settings, clip, inbox):
    smtp = SmtpSettings(host="127.0.0.1", port=inbox.port, sender="trial@example.org")
    mailing = dataclasses.replace(settings, public_url="https://trial.example.org/", smtp=smtp)
    with TestClient(create_app(mailing)) as client:
        assert client.get("/api/config").json()["email"] is True
        assert (
            submit(client, clip, email="not-an-address").json()["detail"] == "'not-an-address' is not an e-mail address"
        )
        job_id = submit(client, clip, email="owner@example.org").json()["id"]
        silent = submit(client, clip).json()["id"]  # no address: no mail
        assert client.get(f"/api/jobs/{job_id}").json()["email"] is True
        worker = Worker(mailing)
        worker.run_once()
        worker.run_once()
        assert client.get(f"/api/jobs/{silent}").json()["state"] == "done"
    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["owner@example.org"]
    assert (message["From"], message["Subject"]) == ("trial@example.org", "Your ReCamMaster video is ready")
    assert f"https://trial.example.org/j/{job_id}" in message.get_payload()
    worker.send_notifications()
    assert len(inbox.messages) == 1, "each owner is told once"


def test_a_mail_server_that_is_down_does_not_stop_the_worker(settings, clip):
    unreachable = dataclasses.replace(settings, smtp=SmtpSettings(host="127.0.0.1", port=1))
    with TestClient(create_app(unreachable)) as client:
        job_id = submit(client, clip, email="owner@example.org").json()["id"]
        assert Worker(unreachable).run_once()
        assert client.get(f"/api/jobs/{job_id}").json()["state"] == "done"
        assert Worker(unreachable).queue.pending_notifications() == []


def test_without_a_public_url_the_link_is_where_the_owner_submitted(settings, clip, inbox):
    mailing = dataclasses.replace(settings, smtp=SmtpSettings(host="127.0.0.1", port=inbox.port))
    with TestClient(create_app(mailing), base_url="http://trial.local:8080") as client:
        job_id = submit(client, clip, email="owner@example.org").json()["id"]
        Worker(mailing).run_once()
    (_, message), *_ = inbox.messages
    assert f"http://trial.local:8080/j/{job_id}" in message.get_payload()
