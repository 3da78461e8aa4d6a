"""The engine's files: MultiCamVideo layout, videos, cameras, captions, determinism, resuming, the CLI."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from recammaster.cameras.conventions import ue_to_opencv
from recammaster.cameras.multicam_json import read_camera_extrinsics
from recammaster.cli.synth import synth
from recammaster.data.multicam import verify_dataset
from recammaster.data.synth.engine import make_scene, render_scene, synthesize, to_render_scene
from recammaster.data.synth.scene import ACTION_PHRASES, describe_scene
from recammaster.video import probe_video

FRAMES, SIZE, SCENES = 9, 32, 2
CAMS = [f"cam{i:02d}" for i in range(1, 11)]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    result = synthesize(out, SCENES, size=SIZE, seed=7, depth=True, masks=True, progress=False, num_frames=FRAMES)
    assert (result.rendered, result.skipped) == (SCENES, 0)
    return out


def test_layout_is_exactly_multicamvideo(dataset):
    expected = {"metadata.csv"}
    for index in range(1, SCENES + 1):
        folder = f"train/{make_scene(7, index, FRAMES).lens.folder_name}/scene{index}"
        expected.add(f"{folder}/cameras/camera_extrinsics.json")
        for cam in CAMS:
            expected |= {f"{folder}/videos/{cam}.mp4", f"{folder}/depth/{cam}.npz", f"{folder}/masks/{cam}.npz"}
    assert set(_files(dataset)) == expected


def test_videos_have_the_frames_size_and_rate(dataset):
    for video in dataset.rglob("*.mp4"):
        info = probe_video(video)
        assert (info.frames, info.width, info.height) == (FRAMES, SIZE, SIZE)
        assert float(info.fps) == pytest.approx(15.0)


def test_camera_files_hold_the_sampled_trajectories(dataset):
    for index in range(1, SCENES + 1):
        spec = make_scene(7, index, FRAMES)
        path = dataset / "train" / spec.lens.folder_name / f"scene{index}" / "cameras" / "camera_extrinsics.json"
        cameras = read_camera_extrinsics(path)
        assert sorted(cameras) == CAMS
        for cam, trajectory in zip(CAMS, spec.trajectories, strict=True):
            poses = ue_to_opencv(cameras[cam])
            assert poses.shape == (FRAMES, 4, 4)
            np.testing.assert_allclose(poses, trajectory.poses.astype(np.float32), atol=1e-4)


def test_metadata_lists_every_video_with_its_caption(dataset):
    with open(dataset / "metadata.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 * SCENES
    assert list(rows[0]) == ["file_name", "text"]
    for row in rows:
        assert (dataset / "train" / row["file_name"]).is_file()
    for index in range(1, SCENES + 1):
        spec = make_scene(7, index, FRAMES)
        texts = {row["text"] for row in rows if f"/scene{index}/" in row["file_name"]}
        assert texts == {describe_scene(spec)}
        text = texts.pop()
        assert text.startswith(("An outdoor", "An indoor"))
        for character in spec.characters:
            assert ACTION_PHRASES[character.action] in text
            assert f"{character.shirt} shirt and {character.trousers} trousers" in text


def test_depth_and_masks(dataset):
    spec = make_scene(7, 1, FRAMES)
    folder = dataset / "train" / spec.lens.folder_name / "scene1"
    depth = np.load(folder / "depth" / "cam01.npz")["depth"]
    masks = np.load(folder / "masks" / "cam01.npz")["masks"]
    assert depth.dtype == np.float16
    assert depth.shape == (FRAMES, SIZE, SIZE)
    assert masks.dtype == np.uint8
    assert masks.shape == (FRAMES, SIZE, SIZE)
    assert masks.max() <= len(spec.characters)
    assert np.all(np.isfinite(depth[masks > 0]))
    assert np.all(depth[masks > 0] > 0)


def test_masks_mark_the_main_character_in_every_camera():
    spec = make_scene(3, 1, 3)
    output = render_scene(spec, 32, masks=True, depth=True)
    for camera in range(10):
        assert (output.masks[camera, 0] == 1).sum() >= 2


def test_character_speed_plays_the_same_motion_faster_or_slower_from_the_same_start():
    spec = make_scene(3, 1, 9, walk_share=1.0)  # walkers: they move the most
    normal, half = to_render_scene(spec), to_render_scene(spec, character_speed=0.5)
    held = to_render_scene(spec, character_speed=0)
    for name in ("sphere_centre", "capsule_start", "capsule_end"):  # every moving primitive, (frames, n, 3)
        whole = getattr(normal, name)
        assert not torch.equal(whole[4], whole[0]), name
        torch.testing.assert_close(getattr(half, name)[::2], whole[:5], rtol=0, atol=1e-6)  # frame 2k: time k
        assert torch.equal(getattr(held, name), whole[:1].expand_as(whole)), name
    assert torch.equal(half.texture, normal.texture)


def test_same_seed_same_bytes_and_resume(dataset, tmp_path):
    again = tmp_path / "again"
    synthesize(again, SCENES, size=SIZE, seed=7, depth=True, masks=True, progress=False, num_frames=FRAMES)
    first, second = _files(dataset), _files(again)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []

    video = next(again.rglob("cam01.mp4"))
    stamp = video.stat().st_mtime_ns
    result = synthesize(again, SCENES, size=SIZE, seed=7, depth=True, masks=True, progress=False, num_frames=FRAMES)
    assert (result.rendered, result.skipped) == (0, SCENES)
    assert video.stat().st_mtime_ns == stamp
    assert _files(again) == second


def test_scene_does_not_depend_on_the_number_of_scenes():
    assert describe_scene(make_scene(5, 3, FRAMES)) == describe_scene(make_scene(5, 3, FRAMES))
    assert describe_scene(make_scene(5, 3, FRAMES)) != describe_scene(make_scene(5, 4, FRAMES))


def test_full_length_clip(tmp_path):
    synthesize(tmp_path, 1, size=16, seed=1, progress=False)
    videos = sorted(tmp_path.glob("train/*/scene1/videos/*.mp4"))
    assert [v.name for v in videos] == [f"{cam}.mp4" for cam in CAMS]
    assert probe_video(videos[0]).frames == 81
    assert len(read_camera_extrinsics(next(tmp_path.glob("train/*/scene1/cameras/camera_extrinsics.json")))) == 10
    report = verify_dataset(tmp_path, progress=False)  # the dataset tools accept what the engine writes
    assert report.problems == []
    assert len(report.scenes) == 1


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(synth)
    return app


@pytest.mark.parametrize(
    ("arguments", "message"), [(["--scenes", "0"], "at least 1"), (["--scenes", "1", "--size", "40"], "multiple of 16")]
)
def test_cli_refuses_impossible_values(tmp_path, arguments, message):
    result = CliRunner().invoke(_cli(), [*arguments, "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "x").exists()


def test_cli_renders(tmp_path):
    result = CliRunner().invoke(_cli(), ["--scenes", "1", "--size", "16", "--frames", "5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "rendered 1 scene(s)" in result.output
    assert len(list(tmp_path.glob("train/*/scene1/videos/cam*.mp4"))) == 10
