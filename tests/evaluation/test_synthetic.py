"""Ground-truth metrics per preset on held-out synthetic scenes: the numbers, their sanity cases, files and CLI.

The tiny random pipeline runs at 32 x 32 pixels and 9 frames; fake "pipelines" (the ground truth itself,
the copied source) check the metric code paths against values known in advance.
"""

import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from recammaster.cameras.presets import get_preset
from recammaster.data.synth.engine import make_scene, to_render_scene
from recammaster.data.synth.render import render_tensors
from recammaster.data.synth.scene import describe_scene
from recammaster.data.synth.stream import crop_intrinsics
from recammaster.errors import OutputExistsError
from recammaster.evaluation import evaluate_presets, held_out_scene, write_report
from recammaster.video import read_video
from tests.pipeline.conftest import pipeline_dir, tiny_pipeline  # noqa: F401

SIZE, FRAMES, SCENES, SEED = 32, 9, 2, 1000
SMALL = {"seed": SEED, "num_scenes": SCENES, "size": SIZE, "num_frames": FRAMES, "progress": False}


@pytest.fixture(scope="module")
def report(tiny_pipeline):  # noqa: F811
    return evaluate_presets(tiny_pipeline, presets=(1, 5), steps=2, **SMALL)


def oracle(scene, calls):
    """A stand-in pipeline that answers with the ground truth of ``scene`` along the preset it is asked for."""

    def pipeline(video, trajectory, prompt, **options):
        calls.append((video, trajectory, prompt, options))
        return SimpleNamespace(frames=scene.targets[get_preset(trajectory.name).number])

    return pipeline


def copy_the_source(video, trajectory, prompt, *, num_frames, **_):
    return SimpleNamespace(frames=video[:num_frames])


def test_the_report_has_every_case_and_preset(report):
    assert report.settings == {"seed": 1000, "first_scene": 1, "num_scenes": 2, "size": 32, "num_frames": 9,
                               "steps": 2, "guidance": 1.0, "motion_guidance": 1.0, "noise_seed": 0, "presets": [1, 5],
                               "still_source": False}  # fmt: skip
    assert report.to_markdown().startswith("Held-out synthetic scenes 1..2 of seed 1000, 32x32, 9 frames, 2 steps")
    assert [(case.scene, case.preset) for case in report.cases] == [(1, 1), (1, 5), (2, 1), (2, 5)]
    assert [(p.preset, p.name) for p in report.presets] == [(1, "pan-right"), (5, "zoom-in")]
    for scores in report.presets:
        assert set(scores.per_frame) == {"psnr_model", "psnr_copy", "ssim_model", "ssim_copy"}
        assert all(curve.shape == (FRAMES,) for curve in scores.per_frame.values())
        assert np.isfinite([scores.psnr_model, scores.psnr_copy, scores.ssim_model, scores.frame0_psnr]).all()
        assert scores.follows in (0.0, 0.5, 1.0)
    document = json.loads(report.to_json())
    assert set(document) == {"settings", "overall", "presets", "cases"}
    assert set(document["presets"][0]) == {"preset", "name", "psnr_model", "psnr_copy", "ssim_model", "ssim_copy",
                                           "follows", "frame0_psnr", "character_psnr_model", "character_psnr_copy",
                                           "per_frame", "beats_copy"}  # fmt: skip
    assert document["presets"][0]["per_frame"]["psnr_copy"][0] is None  # frame 0 copied exactly: infinite PSNR
    assert len(document["cases"]) == 4
    assert document["overall"]["chance"] == 0.1
    table = report.to_markdown().splitlines()
    assert table[2] == ("| preset | PSNR model | PSNR copy | SSIM model | SSIM copy | follows | beats copy "
                        "| characters model | characters copy |")  # fmt: skip
    assert [line.split(" | ")[0] for line in table[4:7]] == ["| 1 pan-right", "| 5 zoom-in", "| all"]
    assert table[8].startswith("Frame 0 PSNR of the result against the source's frame 0: ")
    assert table[9].startswith("Characters: PSNR (dB) over the pixels where the ground truth shows a character")


def test_copy_numbers_equal_an_independent_computation(report):
    for scene in (1, 2):
        spec = make_scene(SEED, scene, FRAMES)
        start = spec.trajectories[0].poses
        poses = np.stack([start] + [start[0] @ get_preset(n)(num_frames=FRAMES).poses for n in (1, 5)])
        rendered = render_tensors(to_render_scene(spec), poses, crop_intrinsics(spec.lens, SIZE, SIZE), (SIZE, SIZE),
                                  device="cpu", masks=True)  # fmt: skip
        images, masks = rendered.images.numpy().astype(np.float64), rendered.masks.numpy()
        cases = [c for c in report.cases if c.scene == scene]
        for case, target, mask in zip(cases, images[1:], masks[1:], strict=True):
            errors = ((images[0] - target) ** 2).mean(axis=(1, 2, 3))
            with np.errstate(divide="ignore"):
                np.testing.assert_allclose(case.psnr_copy, 10 * np.log10(255.0**2 / errors), rtol=1e-12)
            shown = mask[1:] > 0  # the ground truth's character pixels after frame 0, all channels
            assert shown.any()
            character_error = ((images[0][1:] - target[1:]) ** 2)[shown].mean()
            assert case.character_psnr_copy == pytest.approx(10 * np.log10(255.0**2 / character_error), rel=1e-12)
            assert np.isfinite(case.character_psnr_model)
    for scores in report.presets:
        mine = [case for case in report.cases if case.preset == scores.preset]
        assert scores.psnr_copy == pytest.approx(np.mean([case.psnr_copy[1:].mean() for case in mine]))
        assert scores.character_psnr_copy == pytest.approx(np.mean([case.character_psnr_copy for case in mine]))


def test_every_ground_truth_starts_on_the_source_frame(report):
    scene = report.example
    assert scene.caption == describe_scene(make_scene(SEED, 1, FRAMES))
    assert sorted(scene.targets) == list(range(1, 11))
    for number, target in scene.targets.items():
        assert target.shape == (FRAMES, SIZE, SIZE, 3)
        np.testing.assert_array_equal(target[0], scene.source[0])
        assert not np.array_equal(target[-1], scene.source[-1]), number  # and then it moves


def test_held_out_scenes_are_those_of_the_engine(report):
    again = held_out_scene(1, seed=SEED, size=SIZE, num_frames=FRAMES, device="cpu")
    np.testing.assert_array_equal(again.source, report.example.source)
    np.testing.assert_array_equal(again.targets[10], report.example.targets[10])


def test_frame_0_of_every_ground_truth_is_all_visible_in_the_source_and_a_pan_reveals_more_later(report):
    """Frame 0 is the source's own view; a pan right turns away from it, so fewer pixels stay visible."""
    scene = report.example
    assert scene.focal_px == pytest.approx(SIZE * 96.96969697 / 128)
    for number, visible in scene.visible.items():
        assert visible.shape == scene.targets[number].shape[:3]
        assert visible[0].mean() > 0.98, number  # edge pixels may differ by the depth test's tolerance
    pan = scene.visible[1].mean(axis=(1, 2))
    assert pan[-1] < pan[0] - 0.1


def test_the_ground_truth_as_result_follows_every_preset(report):
    calls = []
    perfect = evaluate_presets(oracle(report.example, calls), steps=3, guidance=2.0, motion_guidance=1.5,
                               **{**SMALL, "num_scenes": 1})  # fmt: skip
    assert perfect.follows == 1.0
    for scores in perfect.presets:
        assert (scores.follows, scores.psnr_model, scores.ssim_model, scores.frame0_psnr) == (1.0, math.inf, 1.0,
                                                                                              math.inf)  # fmt: skip
        assert scores.character_psnr_model == math.inf
        assert scores.character_psnr_model > scores.character_psnr_copy
        assert scores.beats_copy
    assert len(calls) == 10
    video, trajectory, prompt, options = calls[0]
    np.testing.assert_array_equal(video, report.example.source)
    np.testing.assert_allclose(trajectory.poses, get_preset(1)(num_frames=FRAMES).poses)  # relative to its start
    assert prompt == report.example.caption
    generator = options.pop("generator")
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(0).get_state())
    assert options == {"height": 32, "width": 32, "num_frames": 9, "num_inference_steps": 3, "guidance_scale": 2.0,
                       "motion_guidance": 1.5}  # fmt: skip
    assert "3 steps, guidance 2.0, motion guidance 1.5. PSNR" in perfect.to_markdown()
    assert "motion guidance" not in report.to_markdown()
    assert json.loads(perfect.to_json())["presets"][0]["psnr_model"] is None


def test_copying_the_source_does_not_beat_copying_the_source():
    copied = evaluate_presets(copy_the_source, presets=(2, 7), steps=1, **{**SMALL, "num_scenes": 1})
    for scores in copied.presets:
        assert (scores.psnr_model, scores.ssim_model) == (scores.psnr_copy, scores.ssim_copy)
        assert not scores.beats_copy
    beats = [line.split(" | ")[6] for line in copied.to_markdown().splitlines()[4:7]]  # the "beats copy" column
    assert beats == ["no", "no", "0/2"]
    for scores in copied.presets:
        assert scores.character_psnr_model == scores.character_psnr_copy


def test_only_official_presets_are_evaluated():
    with pytest.raises(ValueError, match=r"^preset 'static' is not one of the ten official presets \(1-10\)$"):
        evaluate_presets(copy_the_source, presets=("static",), **SMALL)


def test_the_report_files_are_written_once(report, tmp_path):
    paths = write_report(report, tmp_path)
    names = ["report.json", "report.md", "scores.png", "contact_sheet.png", "videos/01_pan-right.mp4",
             "videos/05_zoom-in.mp4"]  # fmt: skip
    assert paths == [tmp_path / name for name in names]
    assert (tmp_path / "report.md").read_text() == report.to_markdown()
    for picture in ("scores.png", "contact_sheet.png"):
        with Image.open(tmp_path / picture) as image:
            assert image.size[0] > 300
    assert read_video(tmp_path / "videos" / "05_zoom-in.mp4").shape == (FRAMES, SIZE, 3 * SIZE, 3)
    with pytest.raises(OutputExistsError, match=f"^{re.escape(str(tmp_path / 'report.json'))}: exists already"):
        write_report(report, tmp_path)
    assert write_report(report, tmp_path, overwrite=True) == paths
    assert write_report(report, tmp_path / "no-videos", videos=False) == [tmp_path / "no-videos" / name
                                                                            for name in names[:4]]  # fmt: skip
    assert not (tmp_path / "no-videos" / "videos").exists()


def test_cli_writes_the_report_and_refuses_to_overwrite(run, pipeline_dir, tmp_path):  # noqa: F811
    out = tmp_path / "eval"
    args = ("eval", "synthetic", "--model-dir", pipeline_dir, "--scenes", 1, "--size", SIZE, "--frames", FRAMES,
            "--steps", 1, "--preset", 10, "--device", "cpu", "-o", out, "--no-progress")  # fmt: skip
    code, stdout, stderr = run(*args)
    assert code == 0, stderr
    assert "| 10 arc-right |" in stdout
    assert stdout.endswith(f"wrote {out}\n")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "contact_sheet.png", "report.json", "report.md", "scores.png", "videos/10_arc-right.mp4",
    ]  # fmt: skip
    assert json.loads((out / "report.json").read_text())["settings"]["presets"] == [10]
    assert run(*args) == (1, "", f"error: {out / 'report.json'}: exists already; pass --overwrite "
                                 "(overwrite=True) to replace it\n")  # fmt: skip
    assert run(*args, "--overwrite")[0] == 0
    assert run(*args, "--overwrite", "--still-source", "--no-videos")[0] == 0
    assert json.loads((out / "report.json").read_text())["settings"]["still_source"] is True


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--size", "40"), "error: size must be a positive multiple of 16, got 40\n"),
        (("--scenes", "0"), "error: num_scenes must be at least 1, got 0\n"),
        (("--preset", "11"), "error: unknown trajectory preset 11; choose a number 1-10 or one of: pan-right, "),
        (("--frames", "8"), "error: a video of 8 frames cannot be encoded: the frame count must be 4k+1"),
        (("--checkpoint", "missing.ckpt"), "error: missing.ckpt: checkpoint not found\n"),
    ],
)
def test_cli_refuses_bad_options_before_loading_a_model(run, tmp_path, pipeline_dir, option, message):  # noqa: F811
    code, stdout, stderr = run("eval", "synthetic", "-o", tmp_path, "--model-dir", pipeline_dir, *option)
    assert (code, stdout) == (1, "")
    assert stderr.startswith(message)
    assert stderr.count("\n") == 1


def test_a_still_source_is_the_first_pose_held_and_leaves_the_ground_truths_alone():
    moving = held_out_scene(1, seed=SEED, size=SIZE, num_frames=FRAMES, device="cpu")
    still = held_out_scene(1, seed=SEED, size=SIZE, num_frames=FRAMES, device="cpu", still_source=True)
    np.testing.assert_array_equal(still.source[0], moving.source[0])
    assert np.abs(still.source[-1].astype(int) - moving.source[-1]).mean() > 1  # the scene's camera moves
    spec = make_scene(SEED, 1, FRAMES)
    poses = np.broadcast_to(spec.trajectories[0].poses[0], (FRAMES, 4, 4))[None]
    expected = render_tensors(to_render_scene(spec), poses, crop_intrinsics(spec.lens, SIZE, SIZE), (SIZE, SIZE),
                              device="cpu").images[0].numpy()  # fmt: skip
    np.testing.assert_array_equal(still.source, expected)
    for preset in moving.targets:  # a preset starts at the source's first pose, which both share
        np.testing.assert_array_equal(still.targets[preset], moving.targets[preset])


def test_an_evaluation_of_still_sources_scores_against_the_source_standing_still():
    copied = evaluate_presets(copy_the_source, presets=(3,), steps=1, still_source=True, **{**SMALL, "num_scenes": 1})
    assert copied.settings["still_source"] is True
    assert copied.to_markdown().startswith("Held-out synthetic scenes 1..1 of seed 1000 filmed by a camera standing "
                                           "still, 32x32, 9 frames, 1 steps")  # fmt: skip
    still = held_out_scene(1, seed=SEED, size=SIZE, num_frames=FRAMES, device="cpu", still_source=True)
    np.testing.assert_array_equal(copied.example.source, still.source)
    errors = ((still.source.astype(np.float64) - still.targets[3]) ** 2).mean(axis=(1, 2, 3))[1:]
    assert copied.presets[0].psnr_copy == pytest.approx(np.mean(10 * np.log10(255.0**2 / errors)), rel=1e-12)


def test_a_pools_walk_share_gives_the_scenes_that_pool_trained_on():
    """``SyntheticLatentPool(walk_share=w)`` draws ``make_scene(seed, index, frames, w)``; so does held_out_scene."""
    walkers = held_out_scene(1, seed=SEED, size=SIZE, num_frames=FRAMES, device="cpu", walk_share=1.0)
    spec = make_scene(SEED, 1, FRAMES, 1.0)
    assert [character.action for character in spec.characters] == ["walk"] * len(spec.characters)
    assert walkers.caption == describe_scene(spec)
    mixed = held_out_scene(1, seed=SEED, size=SIZE, num_frames=FRAMES, device="cpu")
    assert mixed.caption == describe_scene(make_scene(SEED, 1, FRAMES)) != walkers.caption
    assert not np.array_equal(walkers.source[-1], mixed.source[-1])


def test_frozen_characters_hold_their_first_frame_and_change_nothing_else():
    moving = held_out_scene(2, seed=SEED, size=SIZE, num_frames=FRAMES, device="cpu", still_source=True)
    frozen = held_out_scene(2, seed=SEED, size=SIZE, num_frames=FRAMES, device="cpu", still_source=True,
                            character_speed=0)  # fmt: skip
    np.testing.assert_array_equal(frozen.source, np.broadcast_to(moving.source[0], moving.source.shape))
    assert not np.array_equal(moving.source[-1], moving.source[0])  # the characters move in the scene itself
    for preset, target in frozen.targets.items():
        np.testing.assert_array_equal(target[0], moving.targets[preset][0])
        changed = (target != moving.targets[preset]).any(axis=-1)
        assert (changed & moving.characters[preset]).any(), preset
        # elsewhere only a shadow moves: one of the two pixels is no brighter in any channel
        elsewhere = changed & ~(moving.characters[preset] | frozen.characters[preset])
        held, moved = target[elsewhere].astype(int), moving.targets[preset][elsewhere].astype(int)
        assert ((held <= moved).all(axis=-1) | (moved <= held).all(axis=-1)).all(), preset


def test_source_use_motion_compares_a_result_with_both_truths_where_they_differ():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "scripts" / "source_use.py"
    spec = importlib.util.spec_from_file_location("source_use", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    truth = np.zeros((81, 4, 4, 3), np.uint8)
    frozen = truth.copy()
    truth[1:, 0, 0] = 200  # one pixel moved in every frame after the first
    np.testing.assert_array_equal(script.motion_errors(truth, truth, frozen), [[20 * 3 * 200**2, 0]] * 4)
    np.testing.assert_array_equal(script.motion_errors(frozen, truth, frozen), [[0, 20 * 3 * 200**2]] * 4)
    between = frozen.copy()
    between[:, 1, 1] = 90  # a pixel where the truths agree does not count
    between[61:, 0, 0] = 100
    errors = script.motion_errors(between, truth, frozen)
    np.testing.assert_array_equal(errors[3], [20 * 3 * 100**2, 20 * 3 * 100**2])
    np.testing.assert_array_equal(errors[0], [0, 20 * 3 * 200**2])
