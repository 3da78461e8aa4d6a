"""``dataset verify`` and ``dataset stats``: the layout, every injected problem reported at once, the numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recammaster.data.multicam import Scene, find_scenes, natural_key, scan_layout, verify_dataset
from recammaster.video import write_video
from tests.data.conftest import CAMERAS, LENS, fake_frames


@pytest.fixture
def dataset_copy(multicam_root: Path, tmp_path: Path) -> Path:
    """A private copy of the session tree that a test may break."""
    return Path(shutil.copytree(multicam_root, tmp_path / "MultiCamVideo-Dataset"))


def test_natural_order_and_scene_ids(dataset_copy: Path):
    assert sorted(["scene10", "scene2", "scene1"], key=natural_key) == ["scene1", "scene2", "scene10"]
    shutil.copytree(dataset_copy / "train" / LENS / "scene2", dataset_copy / "train" / LENS / "scene10")
    scenes = find_scenes(dataset_copy)
    assert [s.id for s in scenes] == [f"train/{LENS}/scene{n}" for n in (1, 2, 10)]
    assert scenes[0].lens.folder_name == LENS
    # The extraction folder (parent of MultiCamVideo-Dataset/) and a single scene folder work too.
    assert len(find_scenes(dataset_copy.parent)) == 3
    assert find_scenes(scenes[0].path) == [Scene(scenes[0].path)]


def test_val_scene_without_scene_folder_is_found(dataset_copy: Path):
    val = dataset_copy / "val" / "10basic_trajectories"
    shutil.copytree(dataset_copy / "train" / LENS / "scene1", val)
    scenes, problems = scan_layout(dataset_copy)
    assert problems == []
    assert scenes[-1].id == "val/10basic_trajectories"


def test_verify_passes_on_a_good_tree(multicam_root: Path, run_dataset):
    code, out, _ = run_dataset("verify", multicam_root, "--no-progress")
    assert code == 0, out
    assert out.strip() == "2 scenes checked: 2 ok, 0 with problems; resolution 32x32 (2 scenes)"


def test_verify_reports_every_problem_at_once(dataset_copy: Path, run_dataset):
    lens = dataset_copy / "train" / LENS
    shutil.copytree(lens / "scene2", lens / "scene3")
    (lens / "notes").mkdir()
    videos = lens / "scene1" / "videos"
    (videos / "cam03.mp4").unlink()
    write_video(videos / "cam04.mp4", fake_frames(3, frames=80), fps=15, overwrite=True)
    write_video(videos / "cam05.mp4", fake_frames(4)[:, :, :16], fps=15, overwrite=True)
    truncated = lens / "scene2" / "cameras" / "camera_extrinsics.json"
    truncated.write_text(truncated.read_text()[:5000])
    holey = lens / "scene3" / "cameras" / "camera_extrinsics.json"
    document = json.loads(holey.read_text())
    del document["frame12"]["cam07"]
    holey.write_text(json.dumps(document))

    code, out, _ = run_dataset("verify", dataset_copy, "--no-progress")
    lines = out.strip().splitlines()
    assert code == 1
    assert lines[:4] == [
        f"{lens / 'notes'}: unexpected folder; expected sceneN folders",
        f"{videos / 'cam03.mp4'}: missing video",
        f"{videos / 'cam04.mp4'}: has 80 frames, expected 81",
        f"{videos / 'cam05.mp4'}: is 16x32 but the scene's other videos are 32x32",
    ]
    assert lines[4].startswith(f"{truncated}: not valid JSON (Unterminated string starting at: line ")
    assert lines[5] == f"{holey}: frame 12, camera cam07: camera missing from this frame"
    assert lines[6] == "3 scenes checked: 0 ok, 3 with problems, 1 layout problems; resolution 32x32 (3 scenes)"
    assert len(lines) == 7


def test_verify_partial_download(dataset_copy: Path):
    """A download cut short: the last scene lacks files; everything present is still checked."""
    scene2 = dataset_copy / "train" / LENS / "scene2"
    shutil.rmtree(scene2 / "cameras")
    for camera in CAMERAS[6:]:
        (scene2 / "videos" / f"{camera}.mp4").unlink()
    report = verify_dataset(dataset_copy, progress=False)
    assert [s.ok for s in report.scenes] == [True, False]
    assert [str(p) for p in report.problems] == [
        *(f"{scene2 / 'videos' / c}.mp4: missing video" for c in CAMERAS[6:]),
        f"{scene2 / 'cameras' / 'camera_extrinsics.json'}: missing camera file",
    ]
    assert report.scenes[1].frames == dict.fromkeys(CAMERAS[:6], 81)


def test_verify_names_an_unreadable_video(dataset_copy: Path):
    broken = dataset_copy / "train" / LENS / "scene1" / "videos" / "cam02.mp4"
    broken.write_bytes(b"not a video at all")
    report = verify_dataset(dataset_copy, progress=False)
    [problem] = report.problems
    assert problem.path == broken
    assert problem.message.startswith("not a video file PyAV can read")


def test_verify_refuses_a_folder_that_is_no_dataset(tmp_path: Path, run_dataset):
    code, _, err = run_dataset("verify", tmp_path)
    assert code == 1
    assert err.strip() == (
        f"error: {tmp_path}: not a MultiCamVideo dataset folder (no train/ or val/ in it or in MultiCamVideo-Dataset/)"
    )


def test_stats_counts_and_camera_motion(multicam_root: Path, tmp_path: Path, run_dataset):
    output = tmp_path / "stats.json"
    code, out, _ = run_dataset("stats", multicam_root, "--json", output, "--no-progress")
    assert code == 0, out
    assert f"train/{LENS}                    2       20       1620" in out.splitlines()
    stats = json.loads(output.read_text())
    assert stats["totals"] == {"scenes": 2, "videos": 20, "frames": 1620}
    assert stats["resolutions"] == {"32x32": 20}
    rows = {(r["scene"].rsplit("/", 1)[-1], r["camera"]): r for r in stats["cameras"]}
    assert len(rows) == 20
    pan = rows["scene1", "cam01"]  # pan-right: turns 20 degrees in place
    assert pan["path_length_m"] == pytest.approx(0.0, abs=1e-6)
    assert pan["rotation_deg"] == pytest.approx(20.0, abs=1e-4)
    dolly = rows["scene2", "cam05"]  # zoom-in: 2 m forward, no turn
    assert dolly["path_length_m"] == pytest.approx(2.0, abs=1e-5)
    assert dolly["rotation_deg"] == pytest.approx(0.0, abs=1e-4)
    summary = stats["camera_summary"]
    assert list(summary)[-1] == "all"
    assert summary["all"]["rotation_deg"]["count"] == 20
    assert summary["all"]["rotation_deg"]["max"] == pytest.approx(30.0, abs=1e-4)  # the arcs
    assert summary["cam07"]["path_length_m"]["mean"] == pytest.approx(1.0, abs=1e-5)
    # --json refuses to overwrite unasked.
    code, _, err = run_dataset("stats", multicam_root, "--json", output)
    assert code == 1
    assert err.strip() == f"error: {output}: exists already; pass --overwrite (overwrite=True) to replace it"
