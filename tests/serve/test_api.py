"""The job API through a real client, with a worker in the same process rendering with a tiny model."""

import dataclasses
import json
import shutil
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from recammaster.cameras.files import write_multicam_json
from recammaster.cameras.presets import get_preset
from recammaster.pipeline import ReCamMasterPipeline
from recammaster.serve.app import create_app
from recammaster.serve.queue import new_job_id
from recammaster.serve.worker import Worker, remove_expired
from recammaster.video import probe_video, read_video, write_video
from tests.serve.conftest import CAPTION, TINY_RENDER, write_clip
from tests.serve.conftest import submit as post_job


@pytest.mark.parametrize("source_reuse", [1, 2])
def test_a_job_goes_from_the_queue_to_three_playable_videos_equal_to_the_pipelines_own(
    clip, settings, tiny_model_dir, tmp_path, source_reuse
):
    settings = dataclasses.replace(settings, source_reuse=source_reuse)  # 2: the fast mode
    with TestClient(create_app(settings)) as client:
        check_one_job(client, Worker(settings), clip, settings, tiny_model_dir, tmp_path)


def check_one_job(client, worker, clip, settings, tiny_model_dir, tmp_path):
    response = post_job(client, clip, preset="tilt-up")
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert response.json()["url"] == f"/j/{job_id}"
    status = client.get(f"/api/jobs/{job_id}").json()
    assert (status["state"], status["position"], status["trajectory"], status["caption"]) == (
        "queued", 1, "tilt-up", CAPTION)  # fmt: skip
    assert "files" not in status
    assert "client" not in status
    assert "source_file" not in status

    assert worker.run_once()
    status = client.get(f"/api/jobs/{job_id}").json()
    assert (status["state"], status["progress"], status["attempts"], status["error"]) == ("done", 1.0, 1, None)
    assert set(status["files"]) == {"result", "source", "side_by_side"}
    folder = settings.jobs_dir / job_id
    for name, width in (("result", 32), ("source", 32), ("side_by_side", 64)):
        response = client.get(status["files"][name])
        assert response.status_code == 200
        assert response.headers["content-type"] == "video/mp4"
        assert response.content == (folder / f"{name}.mp4").read_bytes()
        info = probe_video(folder / f"{name}.mp4")
        assert (info.frames, info.width, info.height, float(info.fps)) == (81, width, 32, 30.0)

    # the service's result is the pipeline's result for the same inputs and seed, encoded the same way
    pipeline = ReCamMasterPipeline.load(tiny_model_dir, torch_dtype=torch.float32)
    options = {"height": 32, "width": 32, "num_frames": 81, "num_inference_steps": TINY_RENDER["num_inference_steps"],
               "guidance_scale": 1.0, "source_reuse": settings.source_reuse}  # fmt: skip
    expected = pipeline(read_video(clip, 81), get_preset("tilt-up")(num_frames=81), CAPTION,
                        generator=torch.Generator("cpu").manual_seed(0), **options).frames  # fmt: skip
    reference = write_video(tmp_path / "expected.mp4", np.asarray(expected), fps=30)
    np.testing.assert_array_equal(read_video(folder / "result.mp4"), read_video(reference))


def test_downloads_are_attachments_and_queued_jobs_have_no_files(client, worker, clip):
    first = post_job(client, clip).json()["id"]
    second = post_job(client, clip, preset="zoom-in").json()["id"]
    assert client.get(f"/api/jobs/{second}").json()["position"] == 2
    assert client.get(f"/api/jobs/{first}/result.mp4").status_code == 404  # not done yet
    worker.run_once()
    assert client.get(f"/api/jobs/{second}").json()["position"] == 1
    response = client.get(f"/api/jobs/{first}/result.mp4?download=1")
    assert response.headers["content-disposition"].startswith("attachment")
    assert "pan-right" in response.headers["content-disposition"]
    assert "attachment" not in client.get(f"/api/jobs/{first}/result.mp4").headers.get("content-disposition", "")


def text_file(tmp_path, name, data=b"hello, I am not a video\n"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("text named .mp4", 415, "notes.mp4: not an MP4, MOV or WebM video (by its content, whatever its name)"),
        ("empty", 422, "empty.mp4: the file is empty"),
        ("broken mp4", 422, "broken.mp4: unreadable video"),
        ("too short", 422, "short.mp4: too short, 30 frames; the model re-renders 81 frames"),
    ],
)
def test_bad_videos_are_refused_with_a_message_naming_the_file_and_leave_nothing(
    client, settings, tmp_path, case, status, message
):
    video = {
        "text named .mp4": lambda: text_file(tmp_path, "notes.mp4"),
        "empty": lambda: text_file(tmp_path, "empty.mp4", b""),
        "broken mp4": lambda: text_file(tmp_path, "broken.mp4", b"\0\0\0\x18ftypisom" + bytes(range(256)) * 40),
        "too short": lambda: write_clip(tmp_path / "short.mp4", frames=30),
    }[case]()
    response = post_job(client, video)
    assert response.status_code == status
    assert response.json()["detail"].startswith(message)
    assert list(settings.jobs_dir.iterdir()) == []  # no folder, no row
    assert client.app.state is not None


def test_type_is_read_from_the_content_not_the_name(client, worker, clip, tmp_path, settings):
    uploads = [
        shutil.copy(clip, tmp_path / "holiday.webm"),  # an MP4 named .webm
        write_clip(tmp_path / "real.webm", codec="libvpx-vp9"),
        write_clip(tmp_path / "phone.bin", container_format="mov"),  # a QuickTime file with no telling name
    ]
    kinds = []
    for path in uploads:
        response = post_job(client, path)
        assert response.status_code == 201, response.text
        kinds.append(next((settings.jobs_dir / response.json()["id"]).iterdir()).name)
    assert kinds == ["upload.mp4", "upload.webm", "upload.mov"]
    while worker.run_once():
        pass
    assert all((job / "result.mp4").is_file() for job in settings.jobs_dir.iterdir())


def test_size_and_duration_limits(settings, clip, tmp_path):
    small = dataclasses.replace(settings, max_upload_mb=0.005)
    with TestClient(create_app(small)) as client:
        response = post_job(client, clip)
        assert response.status_code == 413
        assert response.json()["detail"] == "the upload is larger than the limit of 1 MB" or "dance.mp4: larger" in \
            response.json()["detail"]  # fmt: skip
    short = dataclasses.replace(settings, max_duration_s=2.0)  # the clip lasts 2.7 s
    with TestClient(create_app(short)) as client:
        response = post_job(client, clip)
        assert response.status_code == 413
        assert response.json()["detail"] == "dance.mp4: 2.7 s long; this service takes videos up to 2 s"
    tiny_frames = dataclasses.replace(settings, max_pixels=64 * 47)
    with TestClient(create_app(tiny_frames)) as client:
        assert post_job(client, clip).json()["detail"].startswith("dance.mp4: 64x48 is larger than this service")


def test_the_body_limit_stops_an_upload_that_lies_about_its_length(settings):
    small = dataclasses.replace(settings, max_upload_mb=0.5)  # 0.5 MB + 1 MB of form overhead
    with TestClient(create_app(small)) as client:
        body = b"\0\0\0\x18ftypisom" + bytes(3 * 2**20)
        response = client.post("/api/jobs", files={"video": ("big.mp4", body, "video/mp4")},
                               data={"caption": CAPTION, "preset": "pan-right"})  # fmt: skip
        assert response.status_code == 413
        assert response.json()["detail"] == "the upload is larger than the limit of 2 MB"
        assert list(small.jobs_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"caption": "  "}, "a caption is needed: describe what the video shows"),
        ({"caption": "x" * 2001}, "the caption is longer than 2000 characters"),
        ({"preset": ""}, "pick one preset or upload one trajectory file"),
        ({"preset": "spin"}, "unknown preset 'spin'; choose one of pan-right, pan-left, tilt-up"),
        ({"email": "me@example.org"}, "this service sends no e-mail; leave the address empty"),
    ],
)
def test_bad_forms_are_refused_before_anything_is_stored(client, clip, settings, form, message):
    response = post_job(client, clip, **form)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(message)
    assert not settings.jobs_dir.exists() or list(settings.jobs_dir.iterdir()) == []


def test_a_custom_trajectory_file_is_checked_then_used(client, worker, clip, settings, tmp_path):
    good = write_multicam_json([get_preset("arc-left")(num_frames=81)], tmp_path / "camera_extrinsics.json")
    response = post_job(client, clip, trajectory=("my path.json", good.read_bytes(), "application/json"))
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert client.get(f"/api/jobs/{job_id}").json()["trajectory"] == "your trajectory file"
    worker.run_once()
    assert client.get(f"/api/jobs/{job_id}").json()["state"] == "done"

    for name, data, message in [
        ("path.txt", b"{}", "path.txt: a trajectory file must be one of .json, .yaml, .yml, .npy"),
        ("path.json", b"{not json", "path.json: not a usable trajectory (not valid JSON"),
        (
            "short.npy",
            _npy(np.broadcast_to(np.eye(4), (9, 4, 4))),
            "short.npy: not a usable trajectory (it has 9 poses; 81 are needed)",
        ),
    ]:
        response = post_job(client, clip, trajectory=(name, data, "application/octet-stream"))
        assert response.status_code in (415, 422)
        assert response.json()["detail"].startswith(message), response.json()["detail"]
        assert str(settings.data_dir) not in response.json()["detail"]


def _npy(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array))
    return buffer.getvalue()


def test_nothing_outside_a_job_is_reachable_and_names_never_become_paths(client, worker, clip, settings):
    response = post_job(client, clip, filename="../../../evil.mp4")
    assert response.status_code == 201
    job_id = response.json()["id"]
    worker.run_once()
    assert client.get(f"/api/jobs/{job_id}").json()["source_name"] == "evil.mp4"
    inside = {p.relative_to(settings.data_dir).as_posix() for p in settings.data_dir.rglob("*") if p.is_file()}
    assert not any("evil" in name for name in inside)
    assert not (settings.data_dir.parent / "evil.mp4").exists()
    for url in [
        f"/api/jobs/{job_id}/upload.mp4",
        f"/api/jobs/{job_id}/..%2F..%2Fjobs.sqlite3",
        f"/api/jobs/{job_id}/%2E%2E",
        "/api/jobs/..%2Fjobs.sqlite3",
        f"/api/jobs/{new_job_id()}",
        f"/api/jobs/{job_id[:-1]}",
        "/api/jobs",
        "/static/../jobs.sqlite3",
        f"/j/{job_id}x",
    ]:
        response = client.get(url)
        assert response.status_code in (404, 405), url
        assert b"SQLite" not in response.content


def test_each_client_gets_a_limited_number_of_jobs_per_window(settings, clip):
    limited = dataclasses.replace(settings, jobs_per_window=2, window_s=600.0)
    with TestClient(create_app(limited)) as client:
        assert [post_job(client, clip).status_code for _ in range(2)] == [201, 201]
        response = post_job(client, clip)
        assert response.status_code == 429
        assert response.json()["detail"].startswith("too many videos from this address: 2 per 10 minutes; try again")
        assert 590 <= int(response.headers["retry-after"]) <= 600
    with TestClient(create_app(limited), client=("10.9.8.7", 5000)) as other:
        assert post_job(other, clip).status_code == 201


def test_finished_jobs_and_their_files_are_deleted_after_the_retention_time(settings, clip):
    with TestClient(create_app(settings)) as client:
        done, waiting = post_job(client, clip).json()["id"], None
        Worker(settings, name="w").run_once()
        waiting = post_job(client, clip).json()["id"]
        assert remove_expired(Worker(settings).queue, settings, now=time.time() + 23 * 3600) == []
        assert remove_expired(Worker(settings).queue, settings, now=time.time() + 25 * 3600) == [done]
        assert not (settings.jobs_dir / done).exists()
        assert client.get(f"/api/jobs/{done}").status_code == 404
        assert client.get(f"/api/jobs/{waiting}").json()["state"] == "queued"  # never deleted while waiting
        orphan = settings.jobs_dir / new_job_id()  # what a server stopped mid-upload leaves
        orphan.mkdir()
        remove_expired(Worker(settings).queue, settings, now=time.time() + 1800)
        assert orphan.is_dir()
        remove_expired(Worker(settings).queue, settings, now=time.time() + 3700)
        assert not orphan.exists()
        assert (settings.jobs_dir / waiting).is_dir()


def test_a_restarted_server_still_knows_every_job(settings, clip):
    with TestClient(create_app(settings)) as client:
        job_id = post_job(client, clip).json()["id"]
    with TestClient(create_app(settings)) as client:  # a new process over the same folder
        assert client.get(f"/api/jobs/{job_id}").json()["state"] == "queued"
        Worker(settings).run_once()
        assert client.get(f"/api/jobs/{job_id}").json()["state"] == "done"


def test_the_page_config_and_previews(client):
    page = client.get("/")
    assert page.status_code == 200
    assert '<form id="submit-form"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get(f"/j/{new_job_id()}").status_code == 200  # the page; the job itself is checked by the API
    config = client.get("/api/config").json()
    assert [preset["number"] for preset in config["presets"]] == list(range(1, 11))
    assert config["email"] is False
    assert config["limits"]["num_frames"] == 81
    gif = client.get(config["presets"][0]["preview"])
    assert gif.status_code == 200
    assert gif.content[:6] == b"GIF89a"
    assert client.get("/api/presets/spin.gif").status_code == 404
    example = client.get("/api/example")
    assert example.status_code == 200
    assert example.content[4:8] == b"ftyp"
    assert json.loads(client.get("/static/app.js").headers.get("content-length", "0")) > 0


def test_a_job_whose_input_breaks_the_render_fails_with_the_reason(client, worker, clip, settings):
    job_id = post_job(client, clip).json()["id"]
    (settings.jobs_dir / job_id / "upload.mp4").write_bytes(b"\0\0\0\x18ftypisom" + bytes(100))  # damaged on disk
    worker.run_once()
    status = client.get(f"/api/jobs/{job_id}").json()
    assert status["state"] == "failed"
    assert status["error"].startswith("upload.mp4: ")
    assert str(settings.data_dir) not in status["error"]
