"""The ``recammaster`` command: help everywhere, real outputs, and one-line errors with exit status 1."""

import json

import numpy as np
import pytest

from recammaster.cameras import get_preset, load_trajectory
from recammaster.cli import app


def _command_paths(group, prefix=()):
    import typer.main

    command = typer.main.get_command(group)
    for name, sub in command.commands.items():
        yield (*prefix, name)
        if hasattr(sub, "commands"):
            for sub_name in sub.commands:
                yield (*prefix, name, sub_name)


def test_every_command_has_help(run):
    paths = list(_command_paths(app))
    assert ("trajectories", "show") in paths
    for path in [(), *paths]:
        code, out, _ = run(*path, "--help")
        assert code == 0, path
        assert "Usage: recammaster" in out


def test_list_shows_all_presets(run):
    code, out, _ = run("trajectories", "list")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["1", "pan-right"]
    assert lines[9].split()[:2] == ["10", "arc-right"]


def test_condition_prints_the_camera_condition(run):
    code, out, _ = run("trajectories", "condition", "tilt-up")
    assert code == 0
    np.testing.assert_allclose(json.loads(out), get_preset("tilt-up")().condition(), atol=1e-7)


def test_export_writes_multicam_json_and_refuses_to_overwrite(run, tmp_path):
    path = tmp_path / "camera_extrinsics.json"
    code, out, _ = run("trajectories", "export", "1", "arc-left:angle=60", "-o", path)
    assert (code, out.strip()) == (0, f"wrote {path}")
    np.testing.assert_allclose(
        load_trajectory(f"{path}#cam02").relative_to_start().poses, get_preset(9)(angle=60).poses, atol=5e-6
    )
    code, _, err = run("trajectories", "export", "1", "-o", path)
    assert (code, err) == (1, f"error: {path}: exists already; pass --overwrite (overwrite=True) to replace it\n")
    assert run("trajectories", "export", "1", "-o", path, "--overwrite")[0] == 0
    assert len(load_trajectory(path).poses) == 81  # one camera now


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("condition", "spin"), "error: unknown trajectory preset 'spin'; choose a number 1-10 or one of: "),
        (("condition", "pan-right:frames=80"), "error: a video of 80 frames cannot be encoded"),
        (("condition", "missing.yaml"), "error: missing.yaml: trajectory file not found"),
    ],
)
def test_bad_input_gives_one_line_and_status_1(run, args, message):
    code, out, err = run("trajectories", *args)
    assert code == 1
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_show_draws_the_ten_presets_by_default(run, tmp_path):
    from PIL import Image

    path = tmp_path / "presets.png"
    assert run("trajectories", "show", "-o", path) == (0, f"wrote {path}\n", "")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > image.height > 500


def test_preview_writes_an_animation(run, tmp_path):
    from PIL import Image

    path = tmp_path / "pan.gif"
    code, _, _ = run("trajectories", "preview", "pan-right:frames=9", "-o", path, "--width", 64, "--height", 36)
    assert code == 0
    with Image.open(path) as image:
        assert (image.n_frames, image.size) == (9, (64, 36))


def test_sample_writes_ten_seeded_cameras(run, tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    code, out, _ = run("trajectories", "sample", "--seed", 5, "-o", first)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[:10]] == [f"cam{i:02d}" for i in range(1, 11)]
    run("trajectories", "sample", "--seed", 5, "-o", second)
    assert first.read_bytes() == second.read_bytes()
    assert load_trajectory(f"{first}#cam10").num_frames == 81
