"""Settings from the environment: every field has a variable, bad values are named."""

from pathlib import Path

import pytest

from recammaster.errors import ReCamMasterError
from recammaster.serve.settings import ServeSettings, SmtpSettings


def test_defaults_then_environment_then_options():
    environ = {"RECAMMASTER_SERVE_MAX_UPLOAD_MB": "50", "RECAMMASTER_SERVE_MODEL_DIR": "/models/rcm",
               "RECAMMASTER_SERVE_NUM_INFERENCE_STEPS": "30", "RECAMMASTER_SERVE_SMTP_HOST": "mail.example.org",
               "RECAMMASTER_SERVE_SMTP_PORT": "587", "RECAMMASTER_SERVE_SMTP_STARTTLS": "yes",
               "RECAMMASTER_SERVE_DATA_DIR": "/srv/a", "RECAMMASTER_SERVE_SOURCE_REUSE": "4"}  # fmt: skip
    settings = ServeSettings.from_env(environ, data_dir=Path("/srv/b"), device=None)
    assert (settings.max_upload_mb, settings.model_dir, settings.num_inference_steps) == (50.0, Path("/models/rcm"), 30)
    assert settings.smtp == SmtpSettings(host="mail.example.org", port=587, starttls=True)
    assert settings.smtp.enabled
    assert settings.data_dir == Path("/srv/b")  # the option wins over the variable
    assert settings.source_reuse == 4
    assert settings.device == "cpu"
    assert settings.max_upload_bytes == 50 * 2**20
    assert ServeSettings.from_env({}) == ServeSettings()
    assert not ServeSettings().smtp.enabled


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"RECAMMASTER_SERVE_JOBS_PER_WINDOW": "many"},
            "environment variable RECAMMASTER_SERVE_JOBS_PER_WINDOW='many'",
        ),
        (
            {"RECAMMASTER_SERVE_SMTP_STARTTLS": "maybe"},
            "environment variable RECAMMASTER_SERVE_SMTP_STARTTLS='maybe': expected true or false",
        ),
        ({"RECAMMASTER_SERVE_NUM_FRAMES": "80"}, "serve settings: num_frames must be 4k+1"),
        ({"RECAMMASTER_SERVE_MAX_UPLOAD_MB": "0"}, "serve settings: max_upload_mb must be positive, got 0.0"),
        ({"RECAMMASTER_SERVE_STALE_AFTER_S": "3"}, "serve settings: stale_after_s (3.0) must exceed two heartbeats"),
    ],
)
def test_bad_settings_are_named(environ, message):
    with pytest.raises(ReCamMasterError) as caught:
        ServeSettings.from_env(environ)
    assert str(caught.value).startswith(message)
