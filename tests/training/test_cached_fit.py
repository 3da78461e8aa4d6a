"""Fine-tuning on cached MultiCamVideo latents: the pairs, LoRA and the tricks, through the CLI to a render."""

from pathlib import Path

import numpy as np
import torch

from recammaster.data.pairs import MultiCamPairs
from recammaster.models.checkpoints import read_state_dict
from recammaster.models.weights import official_state_dict
from recammaster.pipeline import ReCamMasterPipeline
from recammaster.training.cache import cache_path, read_cached_clip
from recammaster.training.data import CachedPairs
from tests.training.test_cache import FRAMES


def test_cached_pairs_follow_upstream_pairing(dataset: Path, cached):
    cache_dir, _ = cached
    pairs, reference = CachedPairs(dataset, cache_dir, seed=4), MultiCamPairs(dataset, seed=4, num_frames=FRAMES)
    for index, epoch in ((0, 0), (13, 0), (13, 1), (19, 5)):
        item, expected = pairs[(index, epoch)], reference.describe(index, epoch)
        target = read_cached_clip(cache_path(cache_dir, dataset, expected.target_video))
        source = read_cached_clip(cache_path(cache_dir, dataset, expected.source_video))
        assert torch.equal(item["target_latents"], target.latents)
        assert torch.equal(item["source_latents"], source.latents)
        assert torch.equal(item["text"], target.context)
        np.testing.assert_array_equal(item["camera"].numpy(), expected.camera)
        assert item["camera"].shape == (3, 12)
    sources = {MultiCamPairs(dataset, seed=4).describe(13, epoch).source_camera for epoch in range(12)}
    assert len(sources) > 3
    assert "cam04" not in sources


def test_lora_fit_with_the_papers_tricks_then_render_its_checkpoint(run, dataset: Path, cached, pipeline_dir: Path,
                                                                     tmp_path: Path):  # fmt: skip
    cache_dir, _ = cached
    out = tmp_path / "run"
    status, stdout, stderr = run(
        "train", "fit", "--dataset", str(dataset), "--cache-dir", str(cache_dir), "--model-dir", str(pipeline_dir),
        "--trainable", "lora", "--lora-rank", "4", "--max-steps", "3", "--checkpoint-every", "3",
        "--condition-noise", "200,500", "--condition-drop", "0.2", "--text-drop", "0.1", "--sample-every", "3",
        "--learning-rate", "1e-2", "--no-gradient-checkpointing", "-o", str(out), "--no-progress",
    )  # fmt: skip
    assert status == 0, stderr
    assert "trained to step 3" in stdout
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step0000003_0.mp4", "step0000003_1.mp4"]

    # only the self-attention and the camera layers moved; the file has the base model's official keys
    trained = read_state_dict(out / "checkpoints" / "step3.ckpt")
    base = official_state_dict(ReCamMasterPipeline.load(pipeline_dir, torch_dtype=torch.float32).transformer)
    assert trained.keys() == base.keys()
    changed = {key for key in base if not torch.equal(trained[key], base[key].to(trained[key].dtype))}
    assert changed
    assert all(".self_attn." in key or ".cam_encoder." in key or ".projector." in key for key in changed)
    assert any(".self_attn.q.weight" in key for key in changed)

    video = dataset / "train" / "f18_aperture10" / "scene1" / "videos" / "cam01.mp4"
    status, stdout, stderr = run(
        "render", str(video), "-t", "arc-left", "-p", "a scene", "--model-dir", str(pipeline_dir), "--checkpoint",
        str(out / "checkpoints" / "step3.ckpt"), "--height", "32", "--width", "32", "--frames", "9", "--steps", "2",
        "--device", "cpu", "-o", str(tmp_path / "rendered.mp4"),
    )  # fmt: skip
    assert status == 0, stderr
    assert (tmp_path / "rendered.mp4").is_file()


def test_fit_refuses_a_missing_cache(run, dataset: Path, pipeline_dir: Path, tmp_path: Path):
    status, _, stderr = run("train", "fit", "--dataset", str(dataset), "--cache-dir", str(tmp_path / "nothing"),
                            "--model-dir", str(pipeline_dir), "-o", str(tmp_path / "run"))  # fmt: skip
    assert status == 1
    assert "cache.json: not found" in stderr
