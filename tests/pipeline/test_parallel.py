"""Several processes on one video (gloo on CPU processes): the same output as one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recammaster.pipeline.parallel import ParallelLayout, plan_layout
from recammaster.video import read_video

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("world", "guidance", "expected"),
    [(1, True, (1, 1, 1)), (2, True, (2, 1, 1)), (4, True, (2, 1, 2)), (8, True, (2, 1, 4)), (6, True, (2, 1, 3)),
     (3, True, (1, 1, 3)), (16, True, (2, 2, 4)), (8, False, (1, 2, 4)), (2, False, (1, 1, 2))],
)  # fmt: skip
def test_layout_splits_guidance_then_heads_then_the_ring(world, guidance, expected):
    layout = plan_layout(world, 12, guidance=guidance)
    assert (layout.guidance, layout.ring, layout.ulysses) == expected
    assert layout.world_size == world


def torchrun(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", *arguments]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("layout", [ParallelLayout(2, 1, 1), ParallelLayout(1, 1, 2)], ids=["guidance", "ulysses"])
def test_two_processes_render_what_one_renders(tmp_path, pipeline_dir, layout):
    result = tmp_path / "result.json"
    worker = Path(__file__).with_name("parallel_worker.py")
    torchrun(str(worker), str(pipeline_dir), str(layout.guidance), str(layout.ring), str(layout.ulysses), str(result),
             cwd=tmp_path)  # fmt: skip
    measured = json.loads(result.read_text())
    assert measured["scale"] > 0.1
    assert max(measured["max_difference"]) <= 1e-5 * measured["scale"]


def test_render_command_on_two_processes_writes_the_one_process_video(tmp_path, pipeline_dir, source_video):
    from recammaster.video import write_video

    video = write_video(tmp_path / "source.mp4", source_video[:9], fps=15)
    options = ["-t", "pan-left", "-p", "a scene", "--model-dir", str(pipeline_dir), "--height", "32", "--width", "32",
               "--frames", "9", "--steps", "2", "--guidance", "4", "--device", "cpu"]  # fmt: skip
    subprocess.run([sys.executable, "-m", "recammaster.cli", "render", str(video), *options, "-o", "one.mp4"],
                   check=True, cwd=tmp_path, capture_output=True)  # fmt: skip
    done = torchrun("-m", "recammaster.cli", "render", str(video), *options, "-o", "two.mp4", cwd=tmp_path)
    assert "2 processes: 2 guidance branch(es) x ring 1 x Ulysses 1" in done.stdout
    np.testing.assert_array_equal(read_video(tmp_path / "two.mp4"), read_video(tmp_path / "one.mp4"))


def test_batch_mode_gives_each_process_its_own_videos(tmp_path, pipeline_dir, source_video):
    from recammaster.video import write_video

    dataset = tmp_path / "batch"
    names = [f"clip{i}.mp4" for i in range(3)]
    for index, name in enumerate(names):
        write_video(dataset / "videos" / name, np.roll(source_video[:9], index, axis=2), fps=15)
    (dataset / "metadata.csv").write_text("file_name,text\n" + "".join(f"{n},scene {n}\n" for n in names))
    options = ["--dataset_path", str(dataset), "--cam_type", "2", "--model-dir", str(pipeline_dir), "--height", "32",
               "--width", "32", "--frames", "9", "--steps", "2", "--device", "cpu"]  # fmt: skip
    subprocess.run([sys.executable, "-m", "recammaster.cli", "render", *options, "--output_dir", "one"], check=True,
                   cwd=tmp_path, capture_output=True)  # fmt: skip
    done = torchrun("-m", "recammaster.cli", "render", *options, "--output_dir", "two", cwd=tmp_path)
    assert done.stdout.count("wrote") == 3  # each video once, by the process it fell to
    for index in range(3):
        one = read_video(tmp_path / "one" / "cam_type2" / f"video{index}.mp4")
        np.testing.assert_array_equal(read_video(tmp_path / "two" / "cam_type2" / f"video{index}.mp4"), one)
