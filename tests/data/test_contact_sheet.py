"""``dataset show``: the contact sheet PNG, its size and content, and no overwriting unasked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from recammaster.data import contact_sheet
from tests.data.conftest import LENS, fake_frames


def test_show_writes_the_sheet_and_refuses_to_overwrite(multicam_root: Path, tmp_path: Path, run_dataset):
    scene = multicam_root / "train" / LENS / "scene1"
    output = tmp_path / "sheet.png"
    code, out, err = run_dataset("show", scene, "-o", output)
    assert (code, out.strip()) == (0, f"wrote {output}"), err
    image = np.asarray(Image.open(output).convert("RGB"))
    width_in = len(contact_sheet.CAMERA_NAMES) * contact_sheet.THUMB_IN + 0.6
    height_in = 3 * contact_sheet.THUMB_IN + contact_sheet.MAP_HEIGHT_IN + 0.8
    assert image.shape[:2] == (round(height_in * 100), round(width_in * 100))
    for camera in (0, 9):  # the thumbnails show each camera's own colour
        colour = fake_frames(camera)[0, 0, -1].astype(int)
        assert (np.abs(image.astype(int) - colour).max(axis=-1) <= 12).sum() > 1000

    code, _, err = run_dataset("show", scene, "-o", output)
    assert code == 1
    assert err.strip() == f"error: {output}: exists already; pass --overwrite (overwrite=True) to replace it"
    code, _, _ = run_dataset("show", scene, "-o", output, "--overwrite", "--frames", "0,80")
    assert code == 0
    assert Image.open(output).size[1] == round((2 * contact_sheet.THUMB_IN + contact_sheet.MAP_HEIGHT_IN + 0.8) * 100)
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]  # no temporary files left


def test_show_names_a_video_too_short_for_the_frames(multicam_root: Path, tmp_path: Path, run_dataset):
    scene = multicam_root / "train" / LENS / "scene2"
    code, _, err = run_dataset("show", scene, "-o", tmp_path / "sheet.png", "--frames", "0,90")
    assert code == 1
    assert err.startswith(f"error: {scene / 'videos' / 'cam01.mp4'}: the video has 81 frames but 91 are needed")
    assert not (tmp_path / "sheet.png").exists()
