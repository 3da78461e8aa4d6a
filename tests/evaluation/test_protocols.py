"""The two protocols: held-out synthetic scenes kept as cases with ground truth, and the ten presets over a
folder of the user's videos (resumable), both scored by ``eval score``'s code."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from recammaster.cameras.presets import get_preset
from recammaster.errors import ReCamMasterError
from recammaster.evaluation import evaluate_presets
from recammaster.evaluation.cases import find_cases, read_case
from recammaster.evaluation.protocols import case_name, case_writer, render_paper_cases, user_videos
from recammaster.video import postprocess_frames, preprocess_frames, read_video, write_video
from tests.pipeline.conftest import pipeline_dir, tiny_pipeline  # noqa: F401

SIZE, FRAMES = 32, 9


def copy_the_source(video, trajectory, prompt, *, height, width, num_frames, **_):
    """A stand-in model: the source as it would see it, unchanged (records what it was asked)."""
    copy_the_source.calls.append((trajectory.name, prompt))
    return SimpleNamespace(frames=postprocess_frames(preprocess_frames(video[:num_frames], height, width)))


def test_synthetic_results_become_cases_with_their_ground_truth(tmp_path):
    report = evaluate_presets(lambda video, *_, num_frames, **__: SimpleNamespace(frames=video[:num_frames]),
                              seed=1000, num_scenes=1, size=SIZE, num_frames=FRAMES, presets=(1, 9), steps=1,
                              progress=False, on_result=case_writer(tmp_path / "cases"))  # fmt: skip
    folders = find_cases(tmp_path / "cases")
    assert [f.name for f in folders] == ["scene001_01-pan-right", "scene001_09-arc-left"]
    case = read_case(folders[1])
    scene = report.example
    np.testing.assert_array_equal(case.source, scene.source)
    np.testing.assert_array_equal(case.result, scene.source)  # the stand-in copies the source
    np.testing.assert_array_equal(case.target, scene.targets[9])
    np.testing.assert_array_equal(case.visible, scene.visible[9])
    np.testing.assert_array_equal(case.trajectory.poses, scene.requests[9].poses)
    assert (case.caption, case.focal_px) == (scene.caption, scene.focal_px)


@pytest.fixture
def videos(tmp_path):
    """Two 12-frame clips of the bundled example, one with a caption beside it."""
    folder = tmp_path / "videos"
    folder.mkdir()
    frames = read_video("recammaster/assets/example/example.mp4", 12)
    write_video(folder / "a.mp4", frames, 15)
    write_video(folder / "b.mov", frames[:, ::-1].copy(), 15)
    (folder / "a.txt").write_text("a person walks\n")
    (folder / "notes.md").write_text("not a video\n")
    return folder


def test_the_paper_protocol_renders_every_preset_of_every_video_once(videos, tmp_path):
    found = user_videos(videos, caption="fallback caption")
    assert [(video.name, text) for video, text in found] == [("a.mp4", "a person walks"), ("b.mov", "fallback caption")]
    copy_the_source.calls = []
    options = {"height": SIZE, "width": SIZE, "num_frames": FRAMES, "steps": 1, "guidance": 1.0, "presets": (1, 4),
               "progress": False}  # fmt: skip
    folders = render_paper_cases(copy_the_source, found, tmp_path / "cases", **options)
    assert [f.name for f in folders] == ["a_01-pan-right", "a_04-tilt-down", "b_01-pan-right", "b_04-tilt-down"]
    assert copy_the_source.calls == [("pan-right", "a person walks"), ("tilt-down", "a person walks"),
                                     ("pan-right", "fallback caption"), ("tilt-down", "fallback caption")]  # fmt: skip
    case = read_case(folders[1])
    assert case.source.shape == (FRAMES, SIZE, SIZE, 3)  # as the model saw it
    np.testing.assert_array_equal(case.result, case.source)
    np.testing.assert_allclose(case.trajectory.poses, get_preset(4)(num_frames=FRAMES).poses)

    copy_the_source.calls = []  # an interrupted run goes on: only the missing case renders again
    (folders[2] / "result.npz").unlink()
    assert render_paper_cases(copy_the_source, found, tmp_path / "cases", **options) == folders
    assert copy_the_source.calls == [("pan-right", "fallback caption")]


def test_the_paper_protocol_refuses_missing_captions_and_short_videos_before_rendering(videos, tmp_path):
    with pytest.raises(ReCamMasterError, match=r"videos: no caption for b\.txt; write them, or pass --caption$"):
        user_videos(videos)
    with pytest.raises(ReCamMasterError, match="no videos"):
        user_videos(tmp_path)
    (videos / "a.webm").write_bytes((videos / "a.mp4").read_bytes())
    with pytest.raises(ReCamMasterError, match=r"videos: a\.mp4, a\.webm would share their cases; rename one$"):
        user_videos(videos, "x")
    (videos / "a.webm").unlink()
    copy_the_source.calls = []
    with pytest.raises(ReCamMasterError, match=r"a\.mp4"):
        render_paper_cases(copy_the_source, user_videos(videos, "x"), tmp_path / "cases", height=SIZE, width=SIZE,
                           num_frames=81, steps=1, guidance=1.0, progress=False)  # fmt: skip
    assert copy_the_source.calls == []
    assert not (tmp_path / "cases").exists()


def test_eval_paper_renders_and_scores(run, pipeline_dir, videos, tmp_path):  # noqa: F811
    out = tmp_path / "paper"
    args = ("eval", "paper", videos, "-o", out, "--caption", "a clip", "--model-dir", pipeline_dir, "--size", SIZE,
            "--frames", FRAMES, "--steps", 1, "--preset", 2, "--runs", 1, "--device", "cpu",
            "--no-progress")  # fmt: skip
    code, stdout, stderr = run(*args)
    assert code == 0, stderr
    assert stdout.endswith(f"wrote {out}\n")
    assert sorted(p.name for p in (out / "cases").iterdir()) == [case_name("a", 2), case_name("b", 2)]
    report = json.loads((out / "report.json").read_text())
    assert len(report["cases"]) == 2
    code, _, stderr = run(*args)
    assert code == 1
    assert "exists" in stderr
