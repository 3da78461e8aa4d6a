"""``MultiCamPairs``: shapes, ranges, pairing rules, and the camera checked against upstream's formula."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recammaster.data import MultiCamPairs
from recammaster.errors import TrajectoryError
from recammaster.video import VideoError, write_video
from tests.data.conftest import CAMERAS, LENS, fake_frames

HEIGHT, WIDTH = 16, 24


def upstream_c2w(text: str) -> np.ndarray:
    """Upstream's conversion (spec §3.1-3.2), written out independently: parse, transpose, reorder, flip, cm -> m."""
    rows = [[float(v) for v in row.replace("[", "").replace("]", "").split()] for row in text.strip().split("] [")]
    matrix = np.array(rows).T[:, [1, 2, 0, 3]]
    matrix[:3, 1] *= -1
    matrix[:3, 3] /= 100
    return matrix


@pytest.fixture(scope="module")
def pairs(multicam_root: Path) -> MultiCamPairs:
    return MultiCamPairs(multicam_root, height=HEIGHT, width=WIDTH, seed=3)


def test_item_shapes_ranges_and_ids(pairs: MultiCamPairs):
    assert len(pairs) == 20
    item = pairs[13]  # scene2, cam04
    assert (item["scene"], item["target_camera"]) == (f"train/{LENS}/scene2", "cam04")
    assert item["source_camera"] in CAMERAS
    assert item["source_camera"] != "cam04"
    for key in ("source_video", "target_video"):
        video = item[key]
        assert video.shape == (3, 81, HEIGHT, WIDTH)
        assert video.dtype == torch.float32
        assert video.min() >= -1
        assert video.max() <= 1
    assert not torch.equal(item["source_video"], item["target_video"])
    # The target clip is cam04's: its flat colour shows away from the moving bar (frame 0, left of centre).
    colour = torch.tensor(fake_frames(3)[0, 0, -1], dtype=torch.float32) / 127.5 - 1
    assert torch.allclose(item["target_video"][:, 0, HEIGHT // 2, -2], colour, atol=0.08)
    assert item["camera"].shape == (21, 12)
    assert item["camera"].dtype == torch.float32
    assert item["caption"] == ""


def test_camera_is_target_relative_to_source_frame_zero(pairs: MultiCamPairs, multicam_root: Path):
    for index in (0, 7, 15):
        item = pairs[index]
        scene = multicam_root / "train" / LENS / item["scene"].rsplit("/", 1)[-1]
        document = json.loads((scene / "cameras" / "camera_extrinsics.json").read_text())
        source0 = upstream_c2w(document["frame0"][item["source_camera"]])
        expected = np.stack(
            [
                (np.linalg.inv(source0) @ upstream_c2w(document[f"frame{4 * k}"][item["target_camera"]]))[:3].ravel()
                for k in range(21)
            ]
        )
        np.testing.assert_allclose(item["camera"].numpy(), expected, atol=2e-5)
        assert not np.allclose(expected[0], np.eye(4)[:3].ravel(), atol=1e-3)  # cameras start apart


def test_source_camera_is_reproducible_and_uniform_over_the_others(multicam_root: Path, pairs: MultiCamPairs):
    again = MultiCamPairs(multicam_root, height=HEIGHT, width=WIDTH, seed=3)
    other = MultiCamPairs(multicam_root, height=HEIGHT, width=WIDTH, seed=4)
    first = [pairs.source_camera_index(i) for i in range(len(pairs))]
    assert first == [again.source_camera_index(i) for i in range(len(pairs))]
    assert first != [other.source_camera_index(i) for i in range(len(pairs))]
    assert all(source != index % 10 for index, source in enumerate(first))
    drawn = []
    for epoch in range(900):
        again.set_epoch(epoch)
        drawn.append(again.source_camera_index(4))
    counts = np.bincount(drawn, minlength=10)
    assert counts[4] == 0
    assert counts[np.arange(10) != 4].min() > 60  # 100 expected for each of the 9 others
    again.set_epoch(0)
    assert again[5]["source_camera"] == pairs[5]["source_camera"]
    assert torch.equal(again[5]["camera"], pairs[5]["camera"])


def test_shorter_clips_and_captions(multicam_root: Path, tmp_path: Path):
    captions = tmp_path / "metadata.csv"
    with captions.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text"])
        writer.writerow([f"{LENS}/scene1/videos/cam02.mp4", "A person waves, seen from the left."])
    short = MultiCamPairs(multicam_root, height=HEIGHT, width=WIDTH, num_frames=9, captions=captions)
    item = short[1]
    assert item["target_video"].shape == (3, 9, HEIGHT, WIDTH)
    assert item["camera"].shape == (3, 12)
    full = MultiCamPairs(multicam_root, height=HEIGHT, width=WIDTH)
    assert torch.equal(item["camera"], full[1]["camera"][:3])  # same seed, same pair, first latent frames
    assert item["caption"] == "A person waves, seen from the left."
    assert short[2]["caption"] == ""
    with pytest.raises(TrajectoryError, match="must be 4k\\+1"):
        MultiCamPairs(multicam_root, num_frames=80)


def test_broken_clip_raises_naming_the_file(multicam_root: Path, tmp_path: Path):
    root = Path(shutil.copytree(multicam_root, tmp_path / "MultiCamVideo-Dataset"))
    short_video = root / "train" / LENS / "scene1" / "videos" / "cam01.mp4"
    write_video(short_video, fake_frames(0, frames=40), fps=15, overwrite=True)
    dataset = MultiCamPairs(root, height=HEIGHT, width=WIDTH)
    with pytest.raises(VideoError) as error:
        dataset[0]  # target cam01
    assert str(error.value).startswith(f"{short_video}: the video has 40 frames but 81 are needed")
    assert re.search("scene1", str(error.value))
