"""Latent caching: exact encoder outputs on disk, upstream's files read, resume, broken clips, settings, shards, CLI."""

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from recammaster.errors import ReCamMasterError
from recammaster.models.text_encoder import clean_prompt, encode_prompt
from recammaster.models.vae import encode_video
from recammaster.training import CacheError, cache_dataset, cache_path, find_cached_clip, read_cached_clip
from recammaster.training.cache import read_empty_prompt, report_path, trim_context
from recammaster.video import preprocess_frames, read_video, write_video
from tests.data.conftest import CAMERAS, LENS, fake_frames

HEIGHT = WIDTH = 32
FRAMES = 9
MAX_LENGTH = 512
UNCAPTIONED = ("scene2", "cam10")  # the one clip metadata.csv leaves out
SMALL_OPTIONS = ("--height", 32, "--width", 32, "--frames", 9, "--device", "cpu", "--workers", 0, "--no-progress")


def caption_of(scene: str, camera: str) -> str:
    """One caption per scene, as a captioner of the scene would give, but scene1/cam03 has its own."""
    if (scene, camera) == ("scene1", "cam03"):
        return "The camera slowly pans to the left across a quiet mountain village."
    return f"A person walks along the coastal road in {scene}."


def video_of(root: Path, scene: str, camera: str) -> Path:
    return root / "train" / LENS / scene / "videos" / f"{camera}.mp4"


def cache(pipeline, root: Path, cache_dir: Path, **options):
    options = {"height": HEIGHT, "width": WIDTH, "num_frames": FRAMES, "device": "cpu", "progress": False, **options}
    return cache_dataset(pipeline, root, cache_dir, **options)


@pytest.fixture(scope="module")
def dataset(multicam_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny dataset with upstream's metadata.csv (paths relative to train/) for all clips but one."""
    root = tmp_path_factory.mktemp("captioned") / "MultiCamVideo-Dataset"
    shutil.copytree(multicam_root, root)
    with (root / "metadata.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text"])
        for scene in ("scene1", "scene2"):
            for camera in CAMERAS:
                if (scene, camera) != UNCAPTIONED:
                    writer.writerow([f"{LENS}/{scene}/videos/{camera}.mp4", caption_of(scene, camera)])
    return root


@pytest.fixture(scope="module")
def cached(tiny_pipeline, dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """The dataset cached once: (cache folder, report)."""
    cache_dir = tmp_path_factory.mktemp("cache")
    return cache_dir, cache(tiny_pipeline, dataset, cache_dir)


def contents(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(path, framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata()  # noqa: SIM118


def same_contents(first: Path, second: Path) -> bool:
    """Same tensors and metadata (the bytes may differ: safetensors writes metadata in hash-map order)."""
    (tensors, metadata), (other, other_metadata) = contents(first), contents(second)
    same = tensors.keys() == other.keys() and all(torch.equal(tensors[key], other[key]) for key in tensors)
    return same and metadata == other_metadata


def expected_context(pipeline, caption: str) -> torch.Tensor:
    return encode_prompt(pipeline.tokenizer, pipeline.text_encoder, [caption], max_length=MAX_LENGTH, device="cpu")[0]


def test_cached_clip_holds_the_encoders_outputs_exactly(tiny_pipeline, dataset: Path, cached):
    cache_dir = cached[0]
    video = video_of(dataset, "scene1", "cam03")
    path = cache_path(cache_dir, dataset, video)
    assert path == cache_dir / "train" / LENS / "scene1" / "videos" / "cam03.mp4.safetensors"
    clip = read_cached_clip(path)

    pixels = preprocess_frames(read_video(video, FRAMES), HEIGHT, WIDTH)[None]
    latents = encode_video(tiny_pipeline.vae, pixels)[0].to(torch.bfloat16)
    assert (clip.latents.shape, clip.latents.dtype) == ((16, 3, 4, 4), torch.bfloat16)
    assert torch.equal(clip.latents, latents)
    after = read_cached_clip(cache_path(cache_dir, dataset, video_of(dataset, "scene1", "cam04")))
    assert not torch.equal(after.latents, clip.latents)  # the clips differ, so a mix-up would show
    assert after.caption == caption_of("scene1", "cam04")  # neighbours share an encoding, but only the same text
    assert torch.equal(after.context, expected_context(tiny_pipeline, after.caption).to(torch.bfloat16))

    caption = caption_of("scene1", "cam03")
    tokens = len(tiny_pipeline.tokenizer(clean_prompt(caption)).input_ids)  # with </s>
    context = expected_context(tiny_pipeline, caption).to(torch.bfloat16)
    assert (clip.context.shape, clip.context.dtype) == ((MAX_LENGTH, 16), torch.bfloat16)
    assert torch.equal(clip.context, context)
    assert clip.context[:tokens].ne(0).any(dim=1).all()
    assert not clip.context[tokens:].any()
    assert clip.caption == caption

    with safe_open(path, framework="pt") as handle:
        assert handle.get_slice("context").get_shape() == [tokens, 16]  # the padding is not stored
        assert handle.metadata() == {"caption": caption, "num_frames": "9", "height": "32", "width": "32",
                                     "max_sequence_length": "512"}  # fmt: skip


def test_cache_folder_settings_empty_prompt_and_report(tiny_pipeline, dataset: Path, cached):
    cache_dir, report = cached
    assert (report.encoded, report.skipped, report.failed, report.clips) == (20, 0, [], 20)
    assert report.missing_captions == [video_of(dataset, *UNCAPTIONED)]
    assert json.loads((cache_dir / "cache.json").read_text()) == {
        "height": 32, "width": 32, "num_frames": 9, "max_sequence_length": 512,
        "dataset_root": str(dataset.resolve()), "latent_shape": [16, 3, 4, 4], "context_dim": 16,
    }  # fmt: skip
    assert json.loads(report_path(cache_dir).read_text()) == {
        "shard_index": 0, "num_shards": 1, "clips": 20, "encoded": 20, "skipped": 0, "failed": [],
        "missing_captions": [str(video_of(dataset, *UNCAPTIONED))],
    }  # fmt: skip
    assert report_path(cache_dir) == cache_dir / "data_process_report.json"
    assert torch.equal(read_empty_prompt(cache_dir), expected_context(tiny_pipeline, "").to(torch.bfloat16))
    uncaptioned = read_cached_clip(cache_path(cache_dir, dataset, video_of(dataset, *UNCAPTIONED)))
    assert uncaptioned.caption == ""
    assert torch.equal(uncaptioned.context, read_empty_prompt(cache_dir))
    files = sorted(p.relative_to(cache_dir).as_posix() for p in cache_dir.rglob("*.safetensors"))
    assert len(files) == 21
    assert files[0] == "empty_prompt.safetensors"


def test_trimming_is_lossless():
    context = torch.zeros(8, 3)
    context[:3] = torch.randn(3, 3)
    context[1] = 0  # a zero row inside the caption stays
    assert trim_context(context).shape == (3, 3)
    assert trim_context(torch.zeros(4, 3)).shape == (0, 3)


def test_upstream_tensors_pth_is_read_and_ours_comes_first(dataset: Path, cached, tmp_path: Path):
    cache_dir, _ = cached
    root = tmp_path / "data"
    video = video_of(root, "scene1", "cam01")
    video.parent.mkdir(parents=True)
    assert find_cached_clip(tmp_path / "cache", root, video) is None
    latents = torch.randn(16, 3, 4, 4).to(torch.bfloat16)
    context = torch.zeros(1, MAX_LENGTH, 16, dtype=torch.bfloat16)
    context[0, :5] = torch.randn(5, 16).to(torch.bfloat16)
    upstream = video.with_name("cam01.mp4.tensors.pth")
    torch.save({"latents": latents, "prompt_emb": {"context": context}, "image_emb": {}}, upstream)

    assert find_cached_clip(tmp_path / "cache", root, video) == upstream
    assert find_cached_clip(None, root, video) == upstream
    clip = read_cached_clip(upstream)
    assert torch.equal(clip.latents, latents)
    assert torch.equal(clip.context, context[0])
    assert clip.caption == ""
    ours = cache_path(tmp_path / "cache", root, video)
    ours.parent.mkdir(parents=True)
    shutil.copy(cache_path(cache_dir, dataset, video_of(dataset, "scene1", "cam01")), ours)
    assert find_cached_clip(tmp_path / "cache", root, video) == ours


def _write(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif path.suffix == ".safetensors":
        save_file(content[0], path, metadata=content[1])
    else:
        torch.save(content, path)
    return path


SMALL = torch.zeros(2, 2, dtype=torch.bfloat16)
LATENTS = torch.zeros(16, 1, 2, 2, dtype=torch.bfloat16)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.safetensors", b"\x00not safetensors",
         "damaged or not a safetensors file (Error while deserializing header: header too large); "
         "delete it and cache it again"),
        ("a.safetensors", ({"context": SMALL}, {"max_sequence_length": "4"}), "lacks the tensor 'latents'"),
        ("a.safetensors", ({"latents": LATENTS}, {"max_sequence_length": "4"}), "lacks the tensor 'context'"),
        ("a.safetensors", ({"latents": LATENTS, "context": SMALL}, {}),
         "lacks the metadata max_sequence_length (an integer)"),
        ("a.safetensors", ({"latents": SMALL.clone(), "context": SMALL}, {"max_sequence_length": "4"}),
         "the tensor 'latents' has shape (2, 2), expected 4 dimensions"),
        ("a.safetensors", ({"latents": LATENTS, "context": SMALL}, {"max_sequence_length": "1"}),
         "the context has 2 rows, more than max_sequence_length 1"),
        ("a.mp4.tensors.pth", b"garbage", "damaged or not a torch file (UnpicklingError)"),
        ("a.mp4.tensors.pth", [1, 2], "holds a list, not upstream's dict of latents and prompt_emb"),
        ("a.mp4.tensors.pth", {"latents": LATENTS, "prompt_emb": {}}, "lacks the tensor prompt_emb['context']"),
    ],
)  # fmt: skip
def test_damaged_or_incomplete_files_raise_naming_the_file(tmp_path: Path, name, content, message):
    path = _write(tmp_path / name, content)
    with pytest.raises(CacheError) as error:
        read_cached_clip(path)
    assert str(error.value) == f"{path}: {message}"


def test_a_second_run_resumes(tiny_pipeline, dataset: Path, cached, tmp_path: Path):
    cache_dir = tmp_path / "cache"
    shutil.copytree(cached[0], cache_dir)
    again = cache(tiny_pipeline, dataset, cache_dir)
    assert (again.encoded, again.skipped, again.failed) == (0, 20, [])
    gone = cache_path(cache_dir, dataset, video_of(dataset, "scene2", "cam05"))
    before = cached[0] / gone.relative_to(cache_dir)
    kept = cache_path(cache_dir, dataset, video_of(dataset, "scene1", "cam01"))
    kept_time = kept.stat().st_mtime_ns
    gone.unlink()
    third = cache(tiny_pipeline, dataset, cache_dir)
    assert (third.encoded, third.skipped, third.failed) == (1, 19, [])
    assert same_contents(gone, before)  # the encoders are deterministic
    assert kept.stat().st_mtime_ns == kept_time


@pytest.fixture
def broken_dataset(dataset: Path, tmp_path: Path) -> Path:
    """The dataset with scene1/cam03 overwritten by garbage and scene2/cam04 only 5 frames long."""
    root = tmp_path / "broken"
    shutil.copytree(dataset, root)
    video_of(root, "scene1", "cam03").write_bytes(b"\x00\x01 not a video" * 50)
    video_of(root, "scene2", "cam04").unlink()
    write_video(video_of(root, "scene2", "cam04"), fake_frames(3, frames=5), fps=15)
    return root


def test_broken_clips_are_reported_and_the_others_cached(tiny_pipeline, broken_dataset: Path, tmp_path: Path):
    cache_dir = tmp_path / "cache"
    report = cache(tiny_pipeline, broken_dataset, cache_dir, num_workers=1)  # reasons cross the worker process
    garbage, short = video_of(broken_dataset, "scene1", "cam03"), video_of(broken_dataset, "scene2", "cam04")
    assert (report.encoded, report.skipped) == (18, 0)
    assert [path for path, _ in report.failed] == [garbage, short]
    assert report.failed[0][1].startswith("not a video file PyAV can read")
    assert report.failed[1][1].startswith("the video has 5 frames but 9 are needed")
    written = json.loads(report_path(cache_dir).read_text())["failed"]
    assert written == [{"path": str(path), "reason": reason} for path, reason in report.failed]
    cached_videos = {p.name for p in cache_dir.rglob("cam*.mp4.safetensors")}
    assert len(cached_videos) == 10  # names repeat across the two scenes
    assert not cache_path(cache_dir, broken_dataset, garbage).exists()
    assert not cache_path(cache_dir, broken_dataset, short).exists()


def test_other_settings_are_refused(tiny_pipeline, dataset: Path, cached, tmp_path: Path):
    cache_dir = cached[0]
    with pytest.raises(CacheError) as error:
        cache(tiny_pipeline, dataset, cache_dir, num_frames=5)
    assert str(error.value) == (
        f"{cache_dir}: this cache was made with num_frames 9, not 5; "
        "use the same settings to resume it, or another output folder"
    )
    with pytest.raises(CacheError, match=r"^height must be a positive multiple of 16, got 40$"):
        cache(tiny_pipeline, dataset, tmp_path, height=40)
    with pytest.raises(ReCamMasterError, match=r"the frame count must be 4k\+1"):
        cache(tiny_pipeline, dataset, tmp_path, num_frames=8)
    with pytest.raises(ReCamMasterError, match="not a MultiCamVideo dataset folder"):
        cache(tiny_pipeline, tmp_path, tmp_path / "cache")


def test_two_shards_cover_every_clip_once(tiny_pipeline, dataset: Path, cached, tmp_path: Path):
    cache_dir = tmp_path / "cache"
    second = cache(tiny_pipeline, dataset, cache_dir, shard_index=1, num_shards=2)
    assert not (cache_dir / "cache.json").exists()  # shard 0 writes the shared files
    assert not (cache_dir / "empty_prompt.safetensors").exists()
    first = cache(tiny_pipeline, dataset, cache_dir, shard_index=0, num_shards=2)
    assert (first.encoded, second.encoded, first.skipped, second.skipped) == (10, 10, 0, 0)
    assert (cache_dir / "cache.json").read_text() == (cached[0] / "cache.json").read_text()
    assert not (cache_dir / "data_process_report.json").exists()
    reports = [json.loads((cache_dir / f"data_process_report.shard{i}.json").read_text()) for i in (0, 1)]
    assert [(r["shard_index"], r["num_shards"], r["clips"]) for r in reports] == [(0, 2, 10), (1, 2, 10)]
    assert reports[1]["missing_captions"] == [str(video_of(dataset, *UNCAPTIONED))]  # clip 19 is odd
    sharded = sorted(p.relative_to(cache_dir) for p in cache_dir.rglob("*.safetensors"))
    whole = sorted(p.relative_to(cached[0]) for p in cached[0].rglob("*.safetensors"))
    assert sharded == whole
    for relative in sharded:  # each clip once, with the same content as the unsharded run
        assert same_contents(cache_dir / relative, cached[0] / relative)


def test_cli_caches_a_shard_from_the_environment(run, monkeypatch, pipeline_dir: Path, dataset: Path, tmp_path: Path):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    cache_dir = tmp_path / "cache"
    code, out, err = run("train", "data-process", dataset, "-o", cache_dir, "--model-dir", pipeline_dir, *SMALL_OPTIONS)
    report = cache_dir / "data_process_report.shard1.json"
    assert code == 0
    assert out == f"shard 1 of 2: encoded 10 clips, skipped 0 already cached, 0 failed, of 10\nwrote {report}\n"
    assert err == (
        "warning: 1 clips have no caption in metadata.csv; they are cached with the empty caption "
        "(listed in the report)\n"
    )
    assert json.loads(report.read_text())["encoded"] == 10


def test_cli_lists_broken_clips_and_exits_1(run, pipeline_dir: Path, broken_dataset: Path, tmp_path: Path):
    cache_dir = tmp_path / "cache"
    args = ["train", "data-process", broken_dataset, "-o", cache_dir, "--model-dir", pipeline_dir, *SMALL_OPTIONS]
    code, out, err = run(*args)
    assert code == 1
    written = f"wrote {cache_dir / 'data_process_report.json'}\n"
    assert out == "encoded 18 clips, skipped 0 already cached, 2 failed, of 20\n" + written
    lines = err.splitlines()
    assert lines[0].startswith(f"failed: {video_of(broken_dataset, 'scene1', 'cam03')}: not a video file PyAV can read")
    assert lines[1].startswith(f"failed: {video_of(broken_dataset, 'scene2', 'cam04')}: the video has 5 frames")
    assert len(lines) == 3
    assert run(*args)[:2] == (1, "encoded 0 clips, skipped 18 already cached, 2 failed, of 20\n" + written)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--height", "40"), "error: height must be a positive multiple of 16, got 40\n"),
        (("--frames", "80"),
         "error: a video of 80 frames cannot be encoded: the frame count must be 4k+1 (81, 49, 17, ...)\n"),
        (("--shard-index", "2", "--num-shards", "2"),
         "error: --shard-index must be in 0..1 for --num-shards 2, got 2\n"),
    ],
)  # fmt: skip
def test_cli_refuses_bad_input_before_loading_a_model(run, dataset: Path, tmp_path: Path, options, message):
    missing_model = tmp_path / "no-such-model"  # loading it would fail with another message
    code, out, err = run("train", "data-process", dataset, "-o", tmp_path / "cache", "--model-dir", missing_model,
                         "--device", "cpu", *options)  # fmt: skip
    assert (code, out, err) == (1, "", message)
    assert not (tmp_path / "cache").exists()


def test_cli_refuses_a_folder_without_scenes(run, tmp_path: Path):
    (tmp_path / "train").mkdir()
    code, _, err = run("train", "data-process", tmp_path, "-o", tmp_path / "cache", "--device", "cpu")
    assert (code, err) == (1, f"error: {tmp_path}: holds no scenes in train\n")
