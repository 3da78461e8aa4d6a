"""``recammaster render`` end to end with the tiny pipeline: files in, mp4s out, batch resume, bad input."""

import numpy as np
import pytest

from recammaster.pipeline.recammaster_pipeline import RENDER_DEFAULTS_FILE, read_render_defaults
from recammaster.video import probe_video, read_video, write_video

from .conftest import tiny_components

SMALL = ["--frames", "9", "--height", "32", "--width", "48", "--steps", "2"]


@pytest.fixture
def model(monkeypatch, tokenizer):
    """The tiny pipeline stands in for the official weights; counts the videos it renders."""
    from recammaster.pipeline import ReCamMasterPipeline

    pipeline = ReCamMasterPipeline(**tiny_components(tokenizer))
    calls = []
    original = ReCamMasterPipeline.__call__

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("num_frames"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ReCamMasterPipeline, "__call__", counted)
    monkeypatch.setattr("recammaster.pipeline.loading.choose_model", official_defaults)
    monkeypatch.setattr("recammaster.pipeline.loading.load_pipeline", lambda *a, **k: pipeline)
    return calls


def official_defaults(model_dir):
    return model_dir, read_render_defaults(None)


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr("recammaster.pipeline.loading.choose_model", official_defaults)
    monkeypatch.setattr("recammaster.pipeline.loading.load_pipeline", refuse)


def _video(path, frames=11, fps=12):
    t, y, x = np.meshgrid(np.arange(frames), np.arange(48), np.arange(64), indexing="ij")
    pixels = np.stack([(x * 4 + t * 9) % 256, (y * 5) % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    return write_video(path, pixels, fps=fps)


def test_renders_one_video_with_side_by_side(run, model, tmp_path):
    source = _video(tmp_path / "in.mp4")
    output = tmp_path / "out.mp4"
    code, out, err = run(
        "render", source, "-t", "arc-left", "-p", "a test scene", "-o", output, "--side-by-side", *SMALL
    )
    assert code == 0, err
    assert out.splitlines() == [f"wrote {output}", f"wrote {tmp_path / 'out_side_by_side.mp4'}"]
    info = probe_video(output)
    assert (info.frames, info.width, info.height, float(info.fps)) == (9, 48, 32, 12.0)
    pair = probe_video(tmp_path / "out_side_by_side.mp4")
    assert (pair.frames, pair.height) == (9, 32)
    assert pair.width > 48
    assert model == [9]


def test_batch_mode_writes_upstream_layout_and_resumes(run, model, tmp_path):
    dataset = tmp_path / "data"
    (dataset / "videos").mkdir(parents=True)
    _video(dataset / "videos" / "a.mp4")
    _video(dataset / "videos" / "b.mp4", frames=9)
    (dataset / "metadata.csv").write_text('file_name,text\na.mp4,"a scene, with a comma"\nb.mp4,another scene\n')
    results = tmp_path / "results"
    arguments = ("render", "--dataset_path", dataset, "--cam_type", 3, "--output_dir", results, *SMALL)
    assert run(*arguments)[0] == 0
    assert sorted(p.name for p in (results / "cam_type3").iterdir()) == ["video0.mp4", "video1.mp4"]
    assert len(model) == 2
    assert run(*arguments)[1] == f"nothing to do: every output in {results / 'cam_type3'} exists\n"
    (results / "cam_type3" / "video1.mp4").unlink()
    run(*arguments)
    assert len(model) == 3  # only the missing one again
    assert probe_video(results / "cam_type3" / "video1.mp4").frames == 9


def test_short_videos_loop_or_resample(run, model, tmp_path):
    source = _video(tmp_path / "short.mp4", frames=5)
    code, _, err = run("render", source, "-p", "x", *SMALL)
    assert code == 1
    assert err == (
        f"error: {source}: the video has 5 frames but 9 are needed; pass --loop (fit='loop': play it forward "
        "then backward) or --resample (fit='resample': spread its frames evenly) to use it anyway\n"
    )
    assert run("render", source, "-p", "x", "--loop", *SMALL)[0] == 0
    assert probe_video(tmp_path / "short_pan-right.mp4").frames == 9


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("-p", "x", "--height", "40"), "height must be a positive multiple of 16, got 40"),
        (("-p", "x", "--frames", "10"), "a video of 10 frames cannot be encoded: the frame count must be 4k+1"),
        (("-p", "x", "-t", "pan-right:frames=17"), "the trajectory has 17 frames but the video has 9"),
        (("-p", "x", "-t", "spin"), "unknown trajectory preset 'spin'; choose a number 1-10 or one of:"),
        (("-p", "x", "--loop", "--resample"), "--loop and --resample exclude each other; pick one"),
        (
            ("-p", "x", "--offload", "disk"),
            "--offload must be one of none, text, model, group, group-tiled, got 'disk'",
        ),
        (("-p", "x", "--source-reuse", "0"), "--source-reuse must be at least 1 (1: every step in full), got 0"),
        (("-p", "x", "--solver", "rk4"), "--solver must be one of euler, ab2, got 'rk4'"),
        (("-p", "x", "--motion-guidance", "0.5"), "motion_guidance must be at least 1 (1 disables it), got 0.5"),
        ((), "a caption is needed: pass --prompt 'what the video shows'"),
    ],
)
def test_bad_options_fail_before_the_model(run, no_model, tmp_path, arguments, message):
    source = _video(tmp_path / "in.mp4")
    code, _, err = run("render", source, *SMALL, *arguments)
    assert code == 1
    assert err.startswith(f"error: {message}")


def test_bad_files_fail_before_the_model(run, no_model, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    code, _, err = run("render", text, "-p", "x", *SMALL)
    assert (code, err.startswith(f"error: {text}: not a video file PyAV can read")) == (1, True)
    existing = _video(tmp_path / "in.mp4")
    (tmp_path / "done.mp4").write_bytes(b"keep")
    code, _, err = run("render", existing, "-p", "x", "-o", tmp_path / "done.mp4", *SMALL)
    assert err == f"error: {tmp_path / 'done.mp4'}: exists already; pass --overwrite to replace it\n"
    assert (tmp_path / "done.mp4").read_bytes() == b"keep"
    code, _, err = run("render", existing, "-p", "x", "-o", tmp_path / "result", *SMALL)
    assert err == f"error: {tmp_path / 'result'}: the name must end in .mp4, .mov, .mkv (the container is told by it)\n"
    assert (
        run("render", *SMALL)[2]
        == "error: give either a VIDEO or --dataset_path DIR (batch mode), not both or neither\n"
    )


def test_batch_problems_are_all_reported(run, no_model, tmp_path):
    dataset = tmp_path / "data"
    (dataset / "videos").mkdir(parents=True)
    _video(dataset / "videos" / "a.mp4")
    (dataset / "metadata.csv").write_text("file_name,text\na.mp4,\nmissing.mp4,a caption\n")
    code, _, err = run("render", "--dataset_path", dataset, "--cam_type", 1, *SMALL)
    assert code == 1
    assert err == (
        f"error: {dataset / 'metadata.csv'}: row 2: no caption; row 3: {dataset / 'videos' / 'missing.mp4'} not found\n"
    )
    assert run("render", "--dataset_path", dataset, *SMALL)[2] == "error: batch mode needs --cam_type N (1-10)\n"


def test_without_weights_it_says_what_to_do(run, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("recammaster.hub.find_official_weights", lambda model_dir=None, **kw: None)
    monkeypatch.setattr("recammaster.hub.EMBEDDED_MODEL_DIR", tmp_path / "no-embedded-model")
    source = _video(tmp_path / "in.mp4")
    code, _, err = run("render", source, "-p", "x", *SMALL)
    assert code == 1
    assert "run `recammaster download`, or pass --model-dir" in err
    assert "this build has no embedded model" in err


@pytest.fixture
def embedded(tmp_path, pipeline_dir, monkeypatch):
    """The tiny pipeline installed as the embedded model, made for 32x48 and 2 steps; no official weights."""
    import json
    import shutil

    folder = tmp_path / "embedded"
    shutil.copytree(pipeline_dir, folder)
    (folder / RENDER_DEFAULTS_FILE).write_text(json.dumps({"height": 32, "width": 48, "num_inference_steps": 2,
                                                           "guidance_scale": 1.0}))  # fmt: skip
    monkeypatch.setattr("recammaster.hub.EMBEDDED_MODEL_DIR", folder)
    monkeypatch.setattr("recammaster.hub.find_official_weights", lambda *a, **k: None)
    return folder


def test_without_official_weights_the_embedded_model_renders_at_its_own_settings(run, tmp_path, embedded):
    source = _video(tmp_path / "in.mp4")
    code, _, err = run("render", source, "-t", "tilt-up", "-p", "a scene", "--frames", "9", "--device", "cpu")
    assert code == 0, err
    assert read_video(tmp_path / "in_tilt-up.mp4").shape == (9, 32, 48, 3)


def test_motion_guidance_comes_from_the_option_or_the_models_settings(run, tmp_path, embedded):
    import json

    source = _video(tmp_path / "in.mp4")
    common = ("-t", "tilt-up", "-p", "a scene", "--frames", "9", "--device", "cpu")
    outputs = {}
    for name, options in (("plain", ()), ("option", ("--motion-guidance", "3"))):
        code, _, err = run("render", source, *common, *options, "-o", tmp_path / f"{name}.mp4")
        assert code == 0, err
        outputs[name] = read_video(tmp_path / f"{name}.mp4")
    assert not np.array_equal(outputs["plain"], outputs["option"])
    defaults = json.loads((embedded / RENDER_DEFAULTS_FILE).read_text())
    (embedded / RENDER_DEFAULTS_FILE).write_text(json.dumps({**defaults, "motion_guidance": 3.0}))
    code, _, err = run("render", source, *common, "-o", tmp_path / "model.mp4")
    assert code == 0, err
    np.testing.assert_array_equal(read_video(tmp_path / "model.mp4"), outputs["option"])


def test_demo_refilms_the_bundled_clip_with_a_side_by_side(run, tmp_path, embedded, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run("demo", "-t", "zoom-in", "--device", "cpu")
    assert code == 0, err
    assert read_video(tmp_path / "demo.mp4").shape == (81, 32, 48, 3)
    assert read_video(tmp_path / "demo_side_by_side.mp4").shape[:2] == (81, 32)
    assert "wrote demo_side_by_side.mp4" in out
