"""End to end in headless Chromium (Playwright): ``recammaster serve`` as a person meets it.

The server runs as its own process with one worker process and a tiny model. Chromium comes from the
system (Debian's ``chromium`` package, which ``.ci/run`` installs); where it is missing these tests are
skipped, except in CI, where a missing browser is a failure.
"""

import os
import shutil
import time
from pathlib import Path

import pytest

from recammaster.hub import example_clip
from tests.serve.conftest import CAPTION, child_processes, start_server, write_clip

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("CI"):
        pytest.fail("CI must have Chromium for the browser tests (apt-get install chromium)", pytrace=False)
    pytest.skip("no Chromium on this machine (apt-get install chromium)", allow_module_level=True)
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]  # fmt: skip


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    process, url = start_server(tmp_path_factory.mktemp("browser-service"), tiny_model_dir)
    yield url
    workers = child_processes(process.pid)
    assert len(workers) == 1, "one worker process beside the server"
    process.terminate()
    process.wait(timeout=60)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "the server stops its workers"


def wait_until(page, expression: str, timeout_s: float = 20.0) -> None:
    """Poll ``expression`` from Python: Playwright's wait_for_function runs eval, which the page's CSP forbids."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {expression}")
        page.wait_for_timeout(100)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def test_upload_pick_a_preset_wait_and_play_the_result(server, browser, tmp_path):
    clip = write_clip(tmp_path / "my dance.mp4")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(server)
    page.set_input_files("#video", str(clip))
    page.fill("#caption", CAPTION)
    page.click("label.preset:has-text('tilt-up')")
    assert page.is_checked("input[value='tilt-up']")
    page.click("#submit")
    page.wait_for_url("**/j/*")
    page.wait_for_selector("#job-title")
    page.wait_for_selector("#job-result", state="visible", timeout=120_000)
    assert page.text_content("#job-title") == "Done"
    assert "my dance.mp4 along tilt-up" in page.text_content("#job-summary")
    page.click("#play-both")
    wait_until(page, "document.getElementById('result-player').currentTime > 0.3")
    state = page.evaluate(
        "['source-player', 'result-player'].map(id => { const v = document.getElementById(id);"
        " return [v.readyState, v.videoWidth, v.videoHeight, v.paused, v.error === null]; })"
    )
    assert state == [[4, 32, 32, False, True], [4, 32, 32, False, True]]
    download = page.get_attribute("#download-result", "href")
    response = page.request.get(server + download)
    assert response.status == 200
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.body()[4:8] == b"ftyp"
    page.close()


def test_on_a_phone_the_example_clip_fills_the_caption_and_a_short_video_is_refused(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.goto(server)
    page.wait_for_selector("label.preset >> nth=9")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scrolling"
    page.click("#use-example")
    wait_until(page, "document.getElementById('caption').value.length > 0")
    assert page.input_value("#caption") == example_clip()[1]
    assert page.is_visible("#video-preview")

    short = write_clip(tmp_path / "short.mp4", frames=20)
    page.set_input_files("#video", str(short))
    page.click("#submit")
    page.wait_for_selector("#form-error", state="visible")
    assert page.text_content("#form-error").startswith("short.mp4: too short, 20 frames")
    assert page.url.rstrip("/") == server  # still on the form, the caption kept
    assert page.input_value("#caption") == example_clip()[1]
    page.close()


def test_a_wrong_link_says_so(server, browser):
    page = browser.new_page()
    page.goto(f"{server}/j/{'A' * 43}")
    page.wait_for_selector("#job-error", state="visible")
    assert page.text_content("#job-title") == "Not found"
    assert page.text_content("#job-error").startswith("no such job")
    page.close()
