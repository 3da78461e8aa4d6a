"""FID, FVD, CLIP-T/F/V and FVD-V: the Fréchet distance against closed forms and an eigenvalue computation, the
pipelines with tiny random networks of the standard interfaces, and metrics left out with their reasons."""

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from recammaster.evaluation import distribution
from recammaster.evaluation.distribution import (
    ClipNetwork,
    FeatureNetwork,
    Networks,
    NetworkUnavailableError,
    check_inputs,
    clip_f,
    compute_paper_metrics,
    frechet_distance,
    gaussian_statistics,
    load_clip,
    load_i3d,
    load_inception,
    load_networks,
    prepare_clips,
    prepare_frames,
    video_clips,
)

SQRT_HALF = 1 / math.sqrt(2)


def reference_frechet(x: np.ndarray, y: np.ndarray) -> float:
    """FD from samples, with tr((S1 S2)^1/2) as the sum of square roots of the eigenvalues of S1^1/2 S2 S1^1/2."""
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    s1 = (x - mu1).T @ (x - mu1) / (len(x) - 1)
    s2 = (y - mu2).T @ (y - mu2) / (len(y) - 1)
    values, vectors = np.linalg.eigh(s1)
    half = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(half @ s2 @ half), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_root)


def random_videos(count: int, frames: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    return [generator.integers(0, 256, (frames, height, width, 3), dtype=np.uint8) for _ in range(count)]


class Recorder(torch.nn.Module):
    """Wraps a network and keeps the shape and value range of every batch it is given."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network
        self.seen: list[tuple[tuple[int, ...], torch.dtype, float, float]] = []

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        self.seen.append((tuple(batch.shape), batch.dtype, batch.min().item(), batch.max().item()))
        return self.network(batch)


def tiny_image_network(features: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, features, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


# ---------------------------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------------------------


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    generator = np.random.default_rng(1)
    mu1, mu2 = generator.normal(size=6), generator.normal(size=6)
    s1, s2 = generator.uniform(0.1, 3.0, 6), generator.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("samples", "dimensions"), [(50, 6), (4, 30)], ids=["full-rank", "singular"])
def test_frechet_distance_matches_an_eigenvalue_computation(samples, dimensions):
    generator = np.random.default_rng(2)
    x = generator.normal(size=(samples, dimensions)) @ generator.normal(size=(dimensions, dimensions))
    y = generator.normal(size=(samples, dimensions)) + 0.5
    value = frechet_distance(*gaussian_statistics(x), *gaussian_statistics(y))
    assert value == pytest.approx(reference_frechet(x, y), rel=1e-7)
    mu, sigma = gaussian_statistics(x)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)  # rounding of a 30x30 root


def test_a_product_without_a_square_root_falls_back_to_shifted_diagonals():
    sigma1, sigma2 = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 1.0]])  # product is nilpotent
    eps = 1e-6
    shifted_root = np.linalg.eigvals((sigma1 + eps * np.eye(2)) @ (sigma2 + eps * np.eye(2))).astype(complex) ** 0.5
    expected = np.trace(sigma1) + np.trace(sigma2) - 2 * shifted_root.sum().real
    value = frechet_distance(np.zeros(2), sigma1, np.zeros(2), sigma2, eps=eps)
    assert math.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-9)


def test_gaussian_statistics_are_the_mean_and_unbiased_covariance():
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]])
    mu, sigma = gaussian_statistics(x)
    np.testing.assert_allclose(mu, [3.0, 3.0])
    np.testing.assert_allclose(sigma, [[4.0, -1.0], [-1.0, 7.0]])
    with pytest.raises(ValueError, match=r"^features must be \(N, D\) with N >= 2, got shape \(1, 2\)$"):
        gaussian_statistics(x[:1])


# ---------------------------------------------------------------------------------------------------------------
# Preparing frames for a network
# ---------------------------------------------------------------------------------------------------------------


def test_frames_are_resized_bilinearly_and_mapped_onto_the_network_range():
    frames = random_videos(1, 2, 6, 8, seed=3)[0]
    frames[0, 0, 0] = [0, 255, 7]
    network = FeatureNetwork(torch.nn.Identity(), size=(3, 4), value_range=(-1.0, 1.0))
    prepared = prepare_frames(frames, network)
    assert prepared.shape == (2, 3, 3, 4)
    assert prepared.dtype == torch.float32
    halved = frames.reshape(2, 3, 2, 4, 2, 3).astype(np.float64).mean(axis=(2, 4))  # 2x2 block means
    np.testing.assert_allclose(prepared.permute(0, 2, 3, 1).numpy(), halved / 127.5 - 1, atol=1e-6)
    same_size = prepare_frames(frames, FeatureNetwork(torch.nn.Identity(), size=None, value_range=(-1.0, 1.0)))
    assert same_size[0, :, 0, 0].tolist() == [-1.0, 1.0, pytest.approx(7 / 127.5 - 1)]


def test_clips_are_channels_first_then_time():
    clips = np.stack(random_videos(2, 3, 4, 4, seed=4))  # (2, 3, 4, 4, 3)
    prepared = prepare_clips(clips, FeatureNetwork(torch.nn.Identity(), size=None, value_range=(0.0, 255.0)))
    assert prepared.shape == (2, 3, 3, 4, 4)
    assert torch.equal(prepared[1, :, 2], torch.from_numpy(clips[1, 2]).permute(2, 0, 1).float())


def test_videos_give_their_non_overlapping_16_frame_clips():
    video = np.zeros((81, 2, 2, 3), dtype=np.uint8)
    video[:, 0, 0, 0] = np.arange(81)
    clips = video_clips(video)
    assert [clip[0, 0, 0, 0] for clip in clips] == [0, 16, 32, 48, 64]
    assert all(len(clip) == 16 for clip in clips)
    assert video_clips(video[:15]) == []


# ---------------------------------------------------------------------------------------------------------------
# FID and FVD with tiny networks
# ---------------------------------------------------------------------------------------------------------------


def test_fid_compares_prepared_frames_through_the_network():
    generated, sources = random_videos(3, 4, 12, 16, seed=5), random_videos(3, 4, 12, 16, seed=6)
    recorder = Recorder(tiny_image_network())
    networks = Networks(inception=FeatureNetwork(recorder, size=(6, 8), value_range=(-1.0, 1.0)))
    report = compute_paper_metrics(generated, sources, ["a"] * 3, networks, batch_size=3)

    def features(videos: list[np.ndarray]) -> np.ndarray:  # 2x2 block means are exact for a halving resize
        frames = np.concatenate(videos).reshape(-1, 6, 2, 8, 2, 3).astype(np.float64).mean(axis=(2, 4))
        batch = torch.from_numpy(frames / 127.5 - 1).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            return recorder.network(batch).double().numpy()

    assert report.values["FID"] == pytest.approx(reference_frechet(features(generated), features(sources)), rel=1e-5)
    assert {shape for shape, *_ in recorder.seen} == {(3, 3, 6, 8), (1, 3, 6, 8)}  # 4 frames in batches of 3
    assert all(dtype == torch.float32 and low >= -1 and high <= 1 for _, dtype, low, high in recorder.seen)
    same = compute_paper_metrics(generated, sources, ["a"] * 3, networks, reference=generated)
    assert same.values["FID"] == pytest.approx(0, abs=1e-6)


class TinyI3D(torch.nn.Module):
    """StyleGAN-V's I3D interface: (N, 3, T, H, W) in, logits out; refuses inputs it should not get."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.project = torch.nn.Linear(3 * 16, 24)  # the real one has 400 logits; fewer keep the FD fast

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False):
        if rescale or resize or not return_features:
            raise RuntimeError("called with the wrong flags")
        if x.shape[1] != 3 or x.shape[2] != 16 or x.shape[3] != 224 or x.shape[4] != 224:
            raise RuntimeError("expected clips of (3, 16, 224, 224)")
        if x.min() < -1 or x.max() > 1:
            raise RuntimeError("expected values in [-1, 1]")
        return self.project(x.mean(dim=(3, 4)).flatten(1))


@pytest.fixture(scope="module")
def i3d_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("i3d") / "i3d_torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the format of StyleGAN-V's file
        torch.jit.save(torch.jit.script(TinyI3D()), str(path))
    return path


def i3d_features(videos: list[np.ndarray]) -> np.ndarray:
    """TinyI3D's features of every full 16-frame clip, cut and scaled here without the module's helpers."""
    clips = np.stack([video[start : start + 16] for video in videos for start in range(0, len(video) - 15, 16)])
    batch = torch.from_numpy(clips / 127.5 - 1).permute(0, 4, 1, 2, 3).float()
    with torch.no_grad():
        return TinyI3D()(batch, rescale=False, resize=False, return_features=True).double().numpy()


def test_fvd_and_fvd_v_use_the_torchscript_i3d_on_16_frame_clips(i3d_path):
    networks = Networks(i3d=load_i3d(i3d_path))
    generated, sources = random_videos(3, 33, 224, 224, seed=7), random_videos(3, 33, 224, 224, seed=8)
    report = compute_paper_metrics(generated, sources, ["a"] * 3, networks, batch_size=4)
    expected = reference_frechet(i3d_features(generated), i3d_features(sources))  # 6 clips each; frame 32 unused
    assert report.values["FVD"] == pytest.approx(expected, rel=1e-5)
    assert report.values["FVD-V"] == report.values["FVD"]  # without a reference both compare with the sources

    reference = random_videos(4, 16, 224, 224, seed=9)
    with_reference = compute_paper_metrics(generated, sources, ["a"] * 3, networks, reference=reference)
    expected = reference_frechet(i3d_features(generated), i3d_features(reference))
    assert with_reference.values["FVD"] == pytest.approx(expected, rel=1e-5)
    assert with_reference.values["FVD-V"] == pytest.approx(report.values["FVD-V"], rel=1e-12)


def test_fvd_resizes_small_videos_to_what_i3d_expects(i3d_path):
    """TinyI3D raises unless it gets (N, 3, 16, 224, 224) clips in [-1, 1] and StyleGAN-V's flags."""
    generated, sources = random_videos(2, 20, 8, 10, seed=10), random_videos(2, 20, 8, 10, seed=11)
    report = compute_paper_metrics(generated, sources, ["a"] * 2, Networks(i3d=load_i3d(i3d_path)))
    assert set(report.values) == {"FVD", "FVD-V"}
    assert report.values["FVD"] > 0


# ---------------------------------------------------------------------------------------------------------------
# CLIP-T, CLIP-F, CLIP-V with hand-made encoders
# ---------------------------------------------------------------------------------------------------------------

RED, YELLOW = (255, 0, 0), (255, 255, 0)
CAPTIONS = {"red": (1.0, 0.0, 0.0), "yellow": (1.0, 1.0, 0.0)}


def solid(colours: list[tuple[int, int, int]]) -> np.ndarray:
    return np.array(colours, dtype=np.uint8)[:, None, None, :].repeat(4, axis=1).repeat(5, axis=2)


def colour_clip() -> ClipNetwork:
    """Image embedding = mean colour in [0, 1]; text embedding = the colour the caption names."""
    images = FeatureNetwork(lambda batch: batch.mean(dim=(2, 3)), size=None, value_range=(0.0, 1.0))
    return ClipNetwork(images, lambda captions: torch.tensor([CAPTIONS[caption] for caption in captions]))


def test_clip_metrics_are_the_cosines_the_paper_describes():
    generated = [solid([RED, YELLOW, RED, YELLOW]), solid([RED, RED, RED])]
    sources = [solid([YELLOW] * 4), solid([RED] * 3)]
    report = compute_paper_metrics(generated, sources, ["red", "yellow"], Networks(clip=colour_clip()), batch_size=3)
    # video 0 against "red": red frames 1, yellow frames cos 45 deg; video 1 (red) against "yellow": cos 45 deg
    assert report.values["CLIP-T"] == pytest.approx(((1 + SQRT_HALF) / 2 + SQRT_HALF) / 2)
    # video 0 changes colour at every step; video 1 never does
    assert report.values["CLIP-F"] == pytest.approx((SQRT_HALF + 1) / 2)
    # video 0 matches its yellow source on frames 1 and 3; video 1 is its source
    assert report.values["CLIP-V"] == pytest.approx(((SQRT_HALF + 1) / 2 + 1) / 2)
    assert set(report.skipped) == {"FID", "FVD", "FVD-V"}


def test_identical_frames_have_clip_f_one():
    embeddings = np.tile(np.random.default_rng(12).normal(size=8), (5, 1))
    assert clip_f(embeddings) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tiny_clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random CLIP with two layers per tower, a letter tokenizer and a 32-pixel image processor, saved."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("clip")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter], vocab[letter + "</w>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(
        vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"), model_max_length=16
    ).save_pretrained(folder)
    tower = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = {**tower, "vocab_size": len(vocab), "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1}
    config = CLIPConfig(text_config=text, vision_config={**tower, "image_size": 32, "patch_size": 8}, projection_dim=8)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_load_clip_reads_a_saved_transformers_clip(tiny_clip_folder):
    clip = load_clip(tiny_clip_folder)
    generated = random_videos(2, 3, 24, 40, seed=13)
    report = compute_paper_metrics(generated, generated, ["a red car", "a long caption " * 20], Networks(clip=clip))
    assert set(report.values) == {"CLIP-T", "CLIP-F", "CLIP-V"}
    assert all(-1 <= value <= 1 for value in report.values.values())
    assert report.values["CLIP-V"] == pytest.approx(1.0)  # every result frame is its source frame
    assert clip.text(["a", "b"]).shape == (2, 8)


# ---------------------------------------------------------------------------------------------------------------
# Loading the standard networks, and metrics left out
# ---------------------------------------------------------------------------------------------------------------

NO_INCEPTION = (
    "no Inception-v3 weights: pass the file pt_inception-2015-12-05-6726825d.pth (with torchvision or "
    "torch-fidelity installed), or install pytorch-fid or torch-fidelity to fetch it"
)
NO_I3D = "no I3D file given (StyleGAN-V's i3d_torchscript.pt)"
NO_CLIP = "no CLIP model given (a transformers CLIPModel folder or hub id)"


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if none of torchvision, pytorch-fid and torch-fidelity were installed."""
    monkeypatch.setattr(distribution, "_installed", lambda package: False)


def test_networks_that_cannot_be_loaded_say_why(nothing_installed, tmp_path):
    networks = load_networks()
    assert (networks.inception, networks.i3d, networks.clip) == (None, None, None)
    assert networks.unavailable == {"inception": NO_INCEPTION, "i3d": NO_I3D, "clip": NO_CLIP}
    missing = load_networks(inception_weights=tmp_path / "w.pth", i3d=tmp_path / "i3d.pt", clip=tmp_path / "clip")
    assert missing.unavailable == {
        "inception": f"{tmp_path / 'w.pth'}: reading Inception weights needs torchvision or torch-fidelity",
        "i3d": f"{tmp_path / 'i3d.pt'}: no such file",
        "clip": f"{tmp_path / 'clip'}: no such folder",
    }
    with pytest.raises(NetworkUnavailableError, match=r"i3d_torchscript\.pt"):
        load_i3d(None)


def test_metrics_without_their_network_are_skipped_with_the_reason(nothing_installed, i3d_path):
    generated = random_videos(2, 16, 8, 8, seed=14)
    report = compute_paper_metrics(generated, generated, ["a", "b"], load_networks(i3d=i3d_path))
    assert report.skipped == {"FID": NO_INCEPTION, "CLIP-T": NO_CLIP, "CLIP-F": NO_CLIP, "CLIP-V": NO_CLIP}
    assert list(report.values) == ["FVD", "FVD-V"]
    assert report.values["FVD"] == pytest.approx(0, abs=1e-6)  # the results are their own sources

    bare = compute_paper_metrics(generated, generated, ["a", "b"], Networks())
    assert bare.values == {}
    assert bare.skipped == {
        "FID": "no inception network given",
        "FVD": "no i3d network given",
        "CLIP-T": "no clip network given",
        "CLIP-F": "no clip network given",
        "FVD-V": "no i3d network given",
        "CLIP-V": "no clip network given",
    }


def test_metrics_with_too_little_input_are_skipped_with_the_reason(i3d_path):
    single = [solid([RED])]
    inception = FeatureNetwork(tiny_image_network(), size=None, value_range=(-1.0, 1.0))
    networks = Networks(inception=inception, i3d=load_i3d(i3d_path), clip=colour_clip())
    report = compute_paper_metrics(single, single, ["red"], networks)
    too_short = "needs at least 2 clips of 16 frames in each set, the generated set has 0"
    assert report.skipped == {
        "FID": "needs at least 2 frames in each set, the generated set has 1",
        "FVD": too_short,
        "CLIP-F": "needs videos of at least 2 frames, the shortest has 1",
        "FVD-V": too_short,
    }
    assert report.values == {"CLIP-T": pytest.approx(1.0), "CLIP-V": pytest.approx(1.0)}


def test_inception_from_a_weights_file_uses_torchvision(monkeypatch, tmp_path):
    models = pytest.importorskip("torchvision.models")
    monkeypatch.setattr(distribution, "_installed", lambda package: package == "torchvision")
    torch.manual_seed(0)
    state = models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008).state_dict()
    torch.save(state, tmp_path / "pt_inception.pth")
    network = load_inception(tmp_path / "pt_inception.pth")
    assert (network.size, network.value_range) == ((299, 299), (-1.0, 1.0))
    features = network.extract(prepare_frames(random_videos(1, 2, 30, 40, seed=15)[0], network))
    assert features.shape == (2, 2048)


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------

VIDEO = np.zeros((2, 4, 4, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("generated", "sources", "captions", "reference", "message"),
    [
        ([], [], [], None, "generated is empty"),
        ([VIDEO], [VIDEO, VIDEO], ["a"], None, "generated, sources and captions must pair up, got 1, 2 and 1"),
        ([VIDEO.astype(np.float32)], [VIDEO], ["a"], None,
         "generated[0] must be a (T, H, W, 3) uint8 video, got float32 (2, 4, 4, 3)"),
        ([VIDEO], [VIDEO[:1]], ["a"], None, "sources[0] has 1 frames but generated[0] has 2"),
        ([VIDEO], [VIDEO], [3], None, "captions[0] must be a string, got int"),
        ([VIDEO], [VIDEO], ["a"], [], "reference is empty; pass None to compare with the sources"),
        ([VIDEO], [VIDEO], ["a"], [VIDEO[:0]], "reference[0] has no frames"),
    ],
)  # fmt: skip
def test_inputs_are_checked_before_any_network_runs(generated, sources, captions, reference, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_inputs(generated, sources, captions, reference)
