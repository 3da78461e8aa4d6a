"""Distributed training on CPU processes (gloo): DDP on two processes equals one process with the same global batch.

(Lightning's FSDP needs GPUs; the multi-GPU benchmarks run it.)
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from recammaster.models.checkpoints import read_state_dict
from tests.training.test_fit import logged_losses

CONFIG = {"from_scratch": True, "model_config": "tiny", "trainable": "full", "data": "synthetic", "height": 32,
          "width": 32, "num_frames": 5, "max_steps": 3, "checkpoint_every": 3, "checkpoint_dtype": "float32",
          "learning_rate": 1e-3, "gradient_checkpointing": False, "accelerator": "cpu", "log_every": 1}  # fmt: skip


def train(run_dir: Path, pipeline_dir: Path, *options: str) -> dict[str, torch.Tensor]:
    config = run_dir.with_suffix(".yaml")
    config.write_text(yaml.safe_dump({**CONFIG, "model_dir": str(pipeline_dir), "output_dir": str(run_dir)}))
    command = [sys.executable, "-m", "recammaster.cli", "train", "fit", "--config", str(config), "--no-progress",
               *options]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=run_dir.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return read_state_dict(run_dir / "checkpoints" / "step3.ckpt")


def test_ddp_on_two_processes_equals_one_process_with_the_same_global_batch(tmp_path, pipeline_dir):
    one = train(tmp_path / "one", pipeline_dir, "--devices", "1", "--batch-size", "2")
    two = train(tmp_path / "two", pipeline_dir, "--devices", "2", "--batch-size", "1", "--strategy", "ddp")
    assert one.keys() == two.keys()
    assert logged_losses(tmp_path / "two") == pytest.approx(logged_losses(tmp_path / "one"), rel=1e-5)  # all ranks'
    for key in one:  # equal up to summation order (the all-reduce), which Adam amplifies where gradients are ~0
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=2e-5, msg=key)
    three = train(tmp_path / "three", pipeline_dir, "--devices", "1", "--batch-size", "1")  # another global batch
    assert any(not torch.allclose(three[key], one[key], rtol=1e-3, atol=1e-4) for key in one)
