"""Case folders: exact round trips of write_case and read_case, which folders are cases, and every refusal by name.

The videos are a held-out synthetic scene at 32 x 32 pixels and 5 frames: the source and its arc-left ground truth.
"""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from recammaster.cameras.files import write_multicam_json
from recammaster.cameras.presets import get_preset
from recammaster.cameras.trajectory import Trajectory
from recammaster.errors import OutputExistsError, ReCamMasterError
from recammaster.evaluation.cases import Case, CaseError, find_cases, read_case, write_case
from recammaster.evaluation.synthetic import held_out_scene
from recammaster.video import VideoError, read_video, write_video

SIZE, FRAMES = 32, 5
ARC_LEFT = get_preset("arc-left").number


@pytest.fixture(scope="module")
def case() -> Case:
    """A complete case: every optional part given, the result a shifted copy of the ground truth."""
    scene = held_out_scene(1, seed=1000, size=SIZE, num_frames=FRAMES, device="cpu")
    target = scene.targets[ARC_LEFT]
    visible = np.random.default_rng(0).random(target.shape[:3]) < 0.7
    return Case("scene-1", scene.source, np.roll(target, 3, axis=2), scene.requests[ARC_LEFT], caption=scene.caption,
                target=target, visible=visible, focal_px=27.5)  # fmt: skip


def bare(case: Case, name: str = "bare") -> Case:
    return Case(name, case.source, case.result, case.trajectory)


def assert_same(read: Case, written: Case) -> None:
    for part in ("source", "result", "target", "visible"):
        expected, found = getattr(written, part), getattr(read, part)
        if expected is None:
            assert found is None, part
        else:
            assert found.dtype == expected.dtype, part
            np.testing.assert_array_equal(found, expected, err_msg=part)
    np.testing.assert_array_equal(read.trajectory.poses, written.trajectory.poses)
    assert (read.name, read.caption, read.focal_px) == (written.name, written.caption, written.focal_px)


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------


def test_write_case_then_read_case_is_exact(case, tmp_path):
    folder = write_case(tmp_path, case)
    assert folder == tmp_path / "scene-1"
    assert sorted(path.name for path in folder.iterdir()) == [
        "caption.txt", "intrinsics.json", "result.npz", "source.npz", "target.npz", "trajectory.json", "visible.npz",
    ]  # fmt: skip
    read = read_case(folder)
    assert_same(read, case)
    assert read.paths["result"] == folder / "result.npz"
    assert json.loads((folder / "intrinsics.json").read_text()) == {"focal_px": 27.5}
    assert (folder / "caption.txt").read_text() == case.caption + "\n"


def test_a_case_with_only_the_required_parts_reads_back_without_the_others(case, tmp_path):
    folder = write_case(tmp_path, bare(case))
    assert sorted(path.name for path in folder.iterdir()) == ["result.npz", "source.npz", "trajectory.json"]
    assert_same(read_case(folder), bare(case))


def test_videos_and_trajectories_in_other_formats_are_read(case, tmp_path):
    folder = tmp_path / "mp4"
    folder.mkdir()
    write_video(folder / "source.mp4", case.source)
    write_video(folder / "result.mp4", case.result)
    np.save(folder / "trajectory.npy", case.trajectory.poses)
    read = read_case(folder)
    np.testing.assert_array_equal(read.source, read_video(folder / "source.mp4"))
    assert read.result.shape == case.result.shape
    np.testing.assert_array_equal(read.trajectory.poses, case.trajectory.poses)
    assert (read.caption, read.target, read.visible, read.focal_px) == (None, None, None, None)


def test_a_one_camera_multicamvideo_file_is_a_trajectory(case, tmp_path):
    """MultiCamVideo files are in Unreal Engine units and axes, written to a few decimals: equal up to rounding."""
    folder = write_case(tmp_path, bare(case))
    (folder / "trajectory.json").unlink()
    write_multicam_json([case.trajectory], folder / "trajectory.json")
    read = read_case(folder).trajectory.relative_to_start().poses
    np.testing.assert_allclose(read, case.trajectory.relative_to_start().poses, atol=1e-5)


def test_write_case_refuses_to_overwrite_unless_asked_and_then_leaves_only_the_new_case(case, tmp_path):
    folder = write_case(tmp_path, case)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError) as caught:
        write_case(tmp_path, bare(case, "scene-1"))
    exists = "exists already; pass --overwrite (overwrite=True) to replace it"
    assert str(caught.value) == f"{folder / 'caption.txt'}: {exists}"
    assert_same(read_case(folder), case)  # untouched

    write_case(tmp_path, bare(case, "scene-1"), overwrite=True)
    names = sorted(path.name for path in folder.iterdir())
    assert names == ["notes.txt", "result.npz", "source.npz", "trajectory.json"]  # notes are not the case's
    assert_same(read_case(folder), bare(case, "scene-1"))


@pytest.mark.parametrize("name", ["", "..", "a/b", ".hidden"])
def test_a_case_name_must_be_a_plain_folder_name(case, tmp_path, name):
    with pytest.raises(CaseError) as caught:
        write_case(tmp_path, bare(case, name))
    assert str(caught.value) == f"case {name!r}: a case name must be a plain folder name, not starting with '.'"


# ---------------------------------------------------------------------------
# Which folders are cases
# ---------------------------------------------------------------------------


def test_find_cases_lists_case_folders_in_name_order_and_skips_the_rest(case, tmp_path):
    for name in ("b", "a", "c10"):
        write_case(tmp_path, bare(case, name))
    (tmp_path / "report").mkdir()  # a report written into the root: not a case
    (tmp_path / "report" / "report.json").write_text("{}")
    (tmp_path / ".cache").mkdir()  # hidden, even with case files
    (tmp_path / ".cache" / "source.npz").write_bytes(b"")
    (tmp_path / "README.md").write_text("results of model X")
    assert find_cases(tmp_path) == [tmp_path / "a", tmp_path / "b", tmp_path / "c10"]


def test_find_cases_checks_every_folder_before_anything_is_read(case, tmp_path):
    write_case(tmp_path, bare(case, "a"))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "caption.txt").write_text("a case without its videos")
    with pytest.raises(CaseError) as caught:
        find_cases(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'b'}: missing source.(npz|mp4|mov|webm) and result.(npz|mp4|mov|webm) and "
        "trajectory.(json|yaml|yml|npy)"
    )


def test_a_root_without_cases_is_refused(tmp_path):
    with pytest.raises(CaseError) as caught:
        find_cases(tmp_path / "missing")
    assert str(caught.value) == f"{tmp_path / 'missing'}: no such folder"
    (tmp_path / "notes").mkdir()
    with pytest.raises(CaseError) as caught:
        find_cases(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}: no case folders: a case is a subfolder holding source.*, result.* and trajectory.*"
    )


def test_a_case_folder_given_as_the_root_is_refused_with_a_hint(case, tmp_path):
    folder = write_case(tmp_path, bare(case))
    with pytest.raises(CaseError) as caught:
        find_cases(folder)
    assert (
        str(caught.value) == f"{folder}: a case folder itself; give the folder above it, whose subfolders are the cases"
    )


# ---------------------------------------------------------------------------
# Refusals, naming the file
# ---------------------------------------------------------------------------


def save_video(path: Path, array: np.ndarray, key: str = "video") -> None:
    np.savez(path, **{key: array})


def break_source(folder: Path) -> str:
    (folder / "source.mp4").write_bytes(b"")
    return f"{folder}: source.mp4 and source.npz: keep one source file"


def break_suffix(folder: Path) -> str:
    (folder / "trajectory.json").rename(folder / "trajectory.txt")
    return (
        f"{folder / 'trajectory.txt'}: not a readable trajectory file; use one of trajectory.json, trajectory.yaml, "
        "trajectory.yml, trajectory.npy"
    )


def break_frames(folder: Path) -> str:
    save_video(folder / "result.npz", np.load(folder / "result.npz")["video"][:4])
    return f"{folder / 'result.npz'}: 4 frames, but the source has 5"


def break_trajectory(folder: Path) -> str:
    np.save(folder / "trajectory.npy", get_preset("arc-left")(num_frames=6).poses)
    (folder / "trajectory.json").unlink()
    return f"{folder / 'trajectory.npy'}: 6 poses, but the result has 5 frames"


def break_target(folder: Path) -> str:
    save_video(folder / "target.npz", np.zeros((5, 16, 16, 3), np.uint8))
    return f"{folder / 'target.npz'}: shape (5, 16, 16, 3), but the result's is (5, 32, 32, 3)"


def break_dtype(folder: Path) -> str:
    save_video(folder / "result.npz", np.zeros((5, 32, 32, 3), np.float32))
    return f"{folder / 'result.npz'}: must be a non-empty (T, H, W, 3) uint8 video, got float32 (5, 32, 32, 3)"


def break_key(folder: Path) -> str:
    save_video(folder / "source.npz", np.zeros((5, 32, 32, 3), np.uint8), key="frames")
    return f"{folder / 'source.npz'}: no array 'video'; it holds frames"


def break_archive(folder: Path) -> str:
    (folder / "target.npz").write_bytes(b"not a zip")
    return f"{folder / 'target.npz'}: not an .npz archive (numpy.savez)"


def break_mask(folder: Path) -> str:
    save_video(folder / "visible.npz", np.ones((5, 32, 32), np.uint8), key="visible")
    return f"{folder / 'visible.npz'}: must be a (5, 32, 32) bool mask of the target, got uint8 (5, 32, 32)"


def break_mask_target(folder: Path) -> str:
    (folder / "target.npz").unlink()
    return f"{folder / 'visible.npz'}: a visible mask needs a target: it marks the target's pixels"


def break_focal(folder: Path) -> str:
    (folder / "intrinsics.json").write_text('{"focal_px": -3}')
    return f"{folder / 'intrinsics.json'}: focal_px must be a positive number of pixels, got -3"


def break_intrinsics(folder: Path) -> str:
    (folder / "intrinsics.json").write_text('{"fx": 30}')
    return f'{folder / "intrinsics.json"}: expected {{"focal_px": <the focal length in pixels>}}'


def break_caption(folder: Path) -> str:
    (folder / "caption.txt").write_text(" \n")
    return f"{folder / 'caption.txt'}: empty; write the caption or leave the file out"


BREAKS = [break_source, break_suffix, break_frames, break_trajectory, break_target, break_dtype, break_key,
          break_archive, break_mask, break_mask_target, break_focal, break_intrinsics, break_caption]  # fmt: skip


@pytest.mark.parametrize("damage", BREAKS, ids=lambda damage: damage.__name__.removeprefix("break_"))
def test_a_bad_case_folder_is_refused_naming_the_file_and_the_problem(case, tmp_path, damage):
    folder = write_case(tmp_path, case)
    message = damage(folder)
    with pytest.raises(CaseError) as caught:
        read_case(folder)
    assert str(caught.value) == message
    assert isinstance(caught.value, ReCamMasterError)


def test_an_undecodable_video_is_refused_by_the_video_reader(case, tmp_path):
    folder = write_case(tmp_path, bare(case))
    (folder / "result.npz").unlink()
    (folder / "result.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(VideoError, match=f"^{re.escape(str(folder / 'result.mp4'))}: "):
        read_case(folder)


def test_a_case_built_in_memory_names_the_part(case):
    with pytest.raises(CaseError) as caught:
        Case("x", case.source, case.result[:4], case.trajectory)
    assert str(caught.value) == "case x: result: 4 frames, but the source has 5"
    longer = Trajectory(get_preset("arc-left")(num_frames=6).poses)
    with pytest.raises(CaseError) as caught:
        Case("x", case.source, case.result, longer)
    assert str(caught.value) == "case x: trajectory: 6 poses, but the result has 5 frames"


def test_a_copied_folder_reads_as_its_own_case(case, tmp_path):
    """The name is the folder's: cases can be copied and renamed."""
    shutil.copytree(write_case(tmp_path, case), tmp_path / "renamed")
    assert read_case(tmp_path / "renamed").name == "renamed"
