"""The paper's visual-quality and view-synchronization metrics: FID, FVD, CLIP-T, CLIP-F, FVD-V and CLIP-V.

Source: Bai et al., "ReCamMaster: Camera-Controlled Generative Rendering from A Single Video", ICCV 2025,
https://arxiv.org/abs/2503.11647 (v2), Table 1. Section 5.1 says: "we calculate the FVD-V score in SV4D, and
the average CLIP similarity between source and target frames at the same timestamp, denoted as CLIP-V"; visual
quality is split into fidelity, coherence with the text and temporal consistency, measured by FID, FVD, CLIP-T
and CLIP-F. Section 5.2 adds: "For view synchronization, we calculate the clip similarity score and FVD between
video frames of different viewpoints within one scene, denoted as CLIP-V and FVD-V." SV4D (Xie et al.,
https://arxiv.org/abs/2407.17470, section 4) defines "FVD-V: calculate FVD over views at each frame"; a
re-rendering has two views, the source and the result, so FVD-V here is the FVD between the source videos and
the results. The authors publish no evaluation code; the conventions below are the usual ones.

- **FID** (Heusel et al. 2017): Fréchet distance between Gaussians fitted to the 2048-d pool features of
  Inception-v3 (TensorFlow's 2015-12-05 graph, as pytorch-fid) of every frame of the results and of every frame
  of the reference videos. Frames are resized to 299x299 (bilinear, no crop; torch-fidelity uses its own
  TensorFlow-like resize) and mapped to [-1, 1].
- **FVD** (Unterthiner et al. 2019): the same distance over the 400-d logits of the Kinetics-400 I3D that
  StyleGAN-V ported to TorchScript (``i3d_torchscript.pt``, called with ``rescale=False, resize=False,
  return_features=True``), one feature per clip of 16 consecutive frames resized to 224x224 in [-1, 1]; a video
  gives its non-overlapping clips (frames 0-15, 16-31, ...), so an 81-frame result gives five.
- FID and FVD compare with ``reference`` videos when given, else with the source videos: the paper's sources
  are in-the-wild videos (WebVid) with no ground truth for the new camera. Without a reference, FVD = FVD-V.
- **CLIP-T**: cosine similarity of the caption's CLIP text embedding with each frame's image embedding, mean
  over the frames of a video, then over videos.
- **CLIP-F**: cosine similarity of the image embeddings of consecutive frames, mean over the T - 1 pairs, then
  over videos.
- **CLIP-V**: cosine similarity of source frame t and result frame t, mean over t, then over videos.
- **FVD-V**: FVD between the clips of the source videos and those of the results.

CLIP values are cosines in [-1, 1]; Table 1 prints them times 100 (CLIP-T 34.53, CLIP-F 98.74, CLIP-V 90.36).

The networks are plugged in as :class:`FeatureNetwork` values (a callable plus the input size and value range
it expects), so the tests drive the code with tiny random networks and users load the standard ones with
:func:`load_networks`. A network that cannot be loaded (package not installed, no file given) leaves its
metrics out of the report with the reason, and the other metrics are still computed.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from recammaster.errors import ReCamMasterError

logger = logging.getLogger(__name__)

Array = np.ndarray

METRICS = ("FID", "FVD", "CLIP-T", "CLIP-F", "FVD-V", "CLIP-V")  # Table 1's order
NETWORK_OF_METRIC = {
    "FID": "inception",
    "FVD": "i3d",
    "FVD-V": "i3d",
    "CLIP-T": "clip",
    "CLIP-F": "clip",
    "CLIP-V": "clip",
}
FVD_CLIP_FRAMES = 16  # the clip length of the original FVD and of StyleGAN-V
INCEPTION_SIZE = (299, 299)
I3D_SIZE = (224, 224)
FRECHET_EPS = 1e-6  # added to both diagonals when the covariance product has no computable square root
IMAGINARY_TOLERANCE = 1e-3  # pytorch-fid's bound on the imaginary part of the square root's diagonal
DEFAULT_BATCH_SIZE = 16  # frames (Inception, CLIP) or clips (I3D) per forward pass


# ---------------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------------


class FeatureExtractor(Protocol):
    """A network as the metrics see it: a float batch in, one feature row per item out, (N, D)."""

    def __call__(self, batch: torch.Tensor, /) -> torch.Tensor: ...


@dataclass(frozen=True)
class FeatureNetwork:
    """A feature extractor and the input it expects.

    Frames (uint8, RGB) reach ``extract`` as float32 ``(N, 3, H, W)`` batches, or ``(N, 3, T, H, W)`` clips for a
    video network, on ``device``, resized to ``size`` (None: left as they are) and with [0, 255] mapped linearly
    onto ``value_range``.
    """

    extract: FeatureExtractor
    size: tuple[int, int] | None
    value_range: tuple[float, float]
    device: torch.device | str = "cpu"


TextEncoder = Callable[[Sequence[str]], torch.Tensor]  # captions -> (N, D) embeddings


@dataclass(frozen=True)
class ClipNetwork:
    """CLIP's two towers: ``images`` embeds frames, ``text`` embeds captions, in one space."""

    images: FeatureNetwork
    text: TextEncoder


@dataclass
class Networks:
    """The networks the metrics need; ``unavailable`` says why one is None (see :func:`load_networks`)."""

    inception: FeatureNetwork | None = None
    i3d: FeatureNetwork | None = None
    clip: ClipNetwork | None = None
    unavailable: dict[str, str] = field(default_factory=dict)


class NetworkUnavailableError(ReCamMasterError, RuntimeError):
    """A standard network that cannot be loaded here: no file given, the file missing, or its package absent."""


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise NetworkUnavailableError(f"{path}: no such file")
    return path


def load_inception(weights: str | Path | None = None, device: torch.device | str = "cpu") -> FeatureNetwork:
    """FID's Inception-v3, pool features (2048-d), from whichever route is installed.

    With a weights file (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``): torch-fidelity's network (the
    one torchmetrics' FID uses, exact) if installed, else torchvision's ``inception_v3`` architecture, whose
    pooling differs from TensorFlow's graph (its average pools count the zero padding, its last block averages
    where TensorFlow's takes the maximum), so that its FID is close to, not equal to, the standard one. Without
    a file: pytorch-fid or torch-fidelity, which fetch the same weights themselves.
    """
    if weights is not None:
        if _installed("torch_fidelity"):
            return _fidelity_inception(_existing_file(weights), device)
        if _installed("torchvision"):
            return _torchvision_inception(_existing_file(weights), device)
        raise NetworkUnavailableError(f"{weights}: reading Inception weights needs torchvision or torch-fidelity")
    if _installed("pytorch_fid"):
        return _pytorch_fid_inception(device)
    if _installed("torch_fidelity"):
        return _fidelity_inception(None, device)
    raise NetworkUnavailableError(
        "no Inception-v3 weights: pass the file pt_inception-2015-12-05-6726825d.pth (with torchvision or "
        "torch-fidelity installed), or install pytorch-fid or torch-fidelity to fetch it"
    )


def _fidelity_inception(weights: Path | None, device: torch.device | str) -> FeatureNetwork:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = None if weights is None else str(weights)
    network = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
    network = network.to(device)

    def extract(batch: torch.Tensor) -> torch.Tensor:  # it takes uint8 only and resizes to 299 itself
        return network(batch.round().to(torch.uint8))[0]

    return FeatureNetwork(extract, size=None, value_range=(0.0, 255.0), device=device)


def _pytorch_fid_inception(device: torch.device | str) -> FeatureNetwork:
    from pytorch_fid.inception import InceptionV3

    network = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=False, normalize_input=False)
    network = network.eval().to(device)

    def extract(batch: torch.Tensor) -> torch.Tensor:  # it returns a list of (N, 2048, 1, 1) maps
        return network(batch)[0].flatten(1)

    return FeatureNetwork(extract, size=INCEPTION_SIZE, value_range=(-1.0, 1.0), device=device)


def _torchvision_inception(weights: Path, device: torch.device | str) -> FeatureNetwork:
    from torchvision.models import inception_v3

    network = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    network.fc = torch.nn.Identity()  # the features are the pooled 2048 channels, not the 1008 logits
    return FeatureNetwork(network.eval().to(device), size=INCEPTION_SIZE, value_range=(-1.0, 1.0), device=device)


def load_i3d(path: str | Path | None, device: torch.device | str = "cpu") -> FeatureNetwork:
    """FVD's I3D from a TorchScript file (StyleGAN-V's ``i3d_torchscript.pt``); its logits are the features."""
    if path is None:
        raise NetworkUnavailableError("no I3D file given (StyleGAN-V's i3d_torchscript.pt)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch deprecates TorchScript; the file is TorchScript
        detector = torch.jit.load(str(_existing_file(path)), map_location=device).eval()

    def extract(clips: torch.Tensor) -> torch.Tensor:  # the clips are already resized and in [-1, 1]
        return detector(clips, rescale=False, resize=False, return_features=True)

    return FeatureNetwork(extract, size=I3D_SIZE, value_range=(-1.0, 1.0), device=device)


def load_clip(model: str | Path | None, device: torch.device | str = "cpu") -> ClipNetwork:
    """A transformers CLIP (a saved folder or a hub id) with its own image processor and tokenizer.

    Frames go through the saved image processor (resize, centre crop, normalisation) as uint8; captions are
    truncated to the tokenizer's length (77 tokens for OpenAI's CLIP).
    """
    if model is None:
        raise NetworkUnavailableError("no CLIP model given (a transformers CLIPModel folder or hub id)")
    if (isinstance(model, Path) or Path(model).is_absolute()) and not Path(model).is_dir():
        raise NetworkUnavailableError(f"{model}: no such folder")  # transformers would call it a bad hub id
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    network = CLIPModel.from_pretrained(model).eval().to(device)
    processor = AutoImageProcessor.from_pretrained(model)
    tokenizer = AutoTokenizer.from_pretrained(model)

    def embed_frames(batch: torch.Tensor) -> torch.Tensor:
        pixels = processor(images=list(batch.round().to(torch.uint8).cpu()), return_tensors="pt")["pixel_values"]
        return network.get_image_features(pixel_values=pixels.to(device)).pooler_output

    def embed_captions(captions: Sequence[str]) -> torch.Tensor:
        tokens = tokenizer(list(captions), padding=True, truncation=True, return_tensors="pt").to(device)
        return network.get_text_features(**tokens).pooler_output

    return ClipNetwork(FeatureNetwork(embed_frames, size=None, value_range=(0.0, 255.0), device=device), embed_captions)


def load_networks(
    *,
    inception_weights: str | Path | None = None,
    i3d: str | Path | None = None,
    clip: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> Networks:
    """Load every standard network that can be loaded here; record why each of the others cannot.

    A network is left out when no file or model is given, the file is missing or its package is absent; a file
    that exists but does not load raises, since that is a mistake to fix rather than a metric to skip.
    """
    loaders = {
        "inception": lambda: load_inception(inception_weights, device),
        "i3d": lambda: load_i3d(i3d, device),
        "clip": lambda: load_clip(clip, device),
    }
    networks = Networks()
    for name, load in loaders.items():
        try:
            setattr(networks, name, load())
        except (NetworkUnavailableError, OSError) as error:  # OSError: transformers' "no such model"
            networks.unavailable[name] = str(error)
    return networks


# ---------------------------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------------------------


def gaussian_statistics(features: Array) -> tuple[Array, Array]:
    """Mean and unbiased covariance of (N, D) features (rows are samples), in float64, as FID and FVD fit them."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance(mu1: Array, sigma1: Array, mu2: Array, sigma2: Array, eps: float = FRECHET_EPS) -> float:
    """Squared Fréchet distance of two Gaussians: |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    The square root is scipy's Schur method. With fewer samples than dimensions the product is singular; when
    its root is then not finite, ``eps`` is added to both diagonals for the root (pytorch-fid's fix). The product
    of two covariances has real non-negative eigenvalues, so the root's imaginary part is rounding error and is
    dropped; a large one (over ``IMAGINARY_TOLERANCE`` on the diagonal) is logged.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"statistics differ in shape: {mu1.shape}, {sigma1.shape} vs {mu2.shape}, {sigma2.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # singular products are handled below
        root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(root).all():
        logger.warning("covariance product has no finite square root; adding %g to the diagonals", eps)
        offset = eps * np.eye(len(mu1))
        root = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(root):
        imaginary = np.abs(np.diagonal(root).imag).max()
        if imaginary > IMAGINARY_TOLERANCE:
            logger.warning("square root of the covariance product has imaginary parts up to %g", imaginary)
        root = root.real
    difference = mu1 - mu2
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(root))


def _distance_or_reason(first: Array, second: Array, names: tuple[str, str], items: str) -> float | str:
    """FD of two feature sets, or why it cannot be computed: a covariance needs two samples."""
    for name, features in zip(names, (first, second), strict=True):
        if len(features) < 2:
            return f"needs at least 2 {items} in each set, the {name} set has {len(features)}"
    return frechet_distance(*gaussian_statistics(first), *gaussian_statistics(second))


# ---------------------------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------------------------


def prepare_frames(frames: Array, network: FeatureNetwork) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) -> float32 (N, 3, h, w) on the network's device, at its size and value range.

    Resizing is bilinear (``align_corners=False``), without antialiasing and without cropping, as pytorch-fid and
    the original FVD resize; since it is linear it commutes with the value mapping.
    """
    batch = torch.from_numpy(np.ascontiguousarray(frames)).to(network.device).permute(0, 3, 1, 2).float()
    if network.size is not None and tuple(batch.shape[-2:]) != tuple(network.size):
        batch = F.interpolate(batch, size=network.size, mode="bilinear", align_corners=False)
    low, high = network.value_range
    return batch * ((high - low) / 255.0) + low


def prepare_clips(clips: Array, network: FeatureNetwork) -> torch.Tensor:
    """uint8 clips (N, T, H, W, 3) -> float32 (N, 3, T, h, w), each frame as :func:`prepare_frames` does it."""
    count, length = clips.shape[:2]
    frames = prepare_frames(clips.reshape(count * length, *clips.shape[2:]), network)  # (N*T, 3, h, w)
    return frames.reshape(count, length, *frames.shape[1:]).permute(0, 2, 1, 3, 4)


def _features(network: FeatureNetwork, batch: torch.Tensor) -> Array:
    with torch.inference_mode():
        features = network.extract(batch)
    if features.ndim != 2 or len(features) != len(batch):
        raise ValueError(
            f"a feature network must return (N, D) features, got {tuple(features.shape)} for N={len(batch)}"
        )
    return features.float().cpu().numpy()


def frame_features(
    network: FeatureNetwork, videos: Sequence[Array], batch_size: int = DEFAULT_BATCH_SIZE
) -> list[Array]:
    """Features of every frame, one (T, D) array per video."""
    per_video = []
    for video in videos:
        batches = range(0, len(video), batch_size)
        per_video.append(
            np.concatenate([_features(network, prepare_frames(video[i : i + batch_size], network)) for i in batches])
        )
    return per_video


def video_clips(video: Array, length: int = FVD_CLIP_FRAMES) -> list[Array]:
    """The non-overlapping clips of ``length`` consecutive frames, from frame 0; a shorter tail is left out."""
    return [video[start : start + length] for start in range(0, len(video) - length + 1, length)]


def clip_features(
    network: FeatureNetwork,
    videos: Sequence[Array],
    batch_size: int = DEFAULT_BATCH_SIZE,
    length: int = FVD_CLIP_FRAMES,
) -> Array:
    """Features of every clip of every video (see :func:`video_clips`), (number of clips, D)."""
    clips = [clip for video in videos for clip in video_clips(video, length)]
    batches = [np.stack(clips[start : start + batch_size]) for start in range(0, len(clips), batch_size)]
    if not batches:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate([_features(network, prepare_clips(batch, network)) for batch in batches])


def text_features(encoder: TextEncoder, captions: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> Array:
    """Embeddings of the captions, (N, D)."""
    with torch.inference_mode():
        batches = [encoder(captions[start : start + batch_size]) for start in range(0, len(captions), batch_size)]
    return torch.cat(batches).float().cpu().numpy()


def _cosines(a: Array, b: Array) -> Array:
    """Row-wise cosine similarity of broadcastable (..., D) arrays, in float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def clip_t(frames: Array, caption: Array) -> float:
    """CLIP-T of one video: mean over frames of cos(caption embedding, frame embedding); (T, D) and (D,)."""
    return float(_cosines(frames, caption).mean())


def clip_f(frames: Array) -> float:
    """CLIP-F of one video: mean over t of cos(frame t, frame t + 1); (T >= 2, D)."""
    return float(_cosines(frames[:-1], frames[1:]).mean())


def clip_v(result: Array, source: Array) -> float:
    """CLIP-V of one pair: mean over t of cos(result frame t, source frame t); both (T, D)."""
    return float(_cosines(result, source).mean())


# ---------------------------------------------------------------------------------------------------------------
# The metrics
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricReport:
    """Metric name -> value for the metrics computed, and metric name -> reason for those left out."""

    values: dict[str, float]
    skipped: dict[str, str]


def _check_video(video: Array, name: str) -> None:
    if not isinstance(video, np.ndarray) or video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        got = f"{video.dtype} {video.shape}" if isinstance(video, np.ndarray) else type(video).__name__
        raise ValueError(f"{name} must be a (T, H, W, 3) uint8 video, got {got}")
    if len(video) == 0:
        raise ValueError(f"{name} has no frames")


def check_inputs(
    generated: Sequence[Array], sources: Sequence[Array], captions: Sequence[str], reference: Sequence[Array] | None
) -> None:
    """Raise ValueError naming the argument and index of the first input the metrics cannot use."""
    if len(generated) == 0:
        raise ValueError("generated is empty")
    if len(sources) != len(generated) or len(captions) != len(generated):
        raise ValueError(
            f"generated, sources and captions must pair up, got {len(generated)}, {len(sources)} and {len(captions)}"
        )
    for index, (result, source, caption) in enumerate(zip(generated, sources, captions, strict=True)):
        _check_video(result, f"generated[{index}]")
        _check_video(source, f"sources[{index}]")
        if len(source) != len(result):  # CLIP-V pairs frames by time
            raise ValueError(f"sources[{index}] has {len(source)} frames but generated[{index}] has {len(result)}")
        if not isinstance(caption, str):
            raise ValueError(f"captions[{index}] must be a string, got {type(caption).__name__}")
    if reference is not None:
        if len(reference) == 0:
            raise ValueError("reference is empty; pass None to compare with the sources")
        for index, video in enumerate(reference):
            _check_video(video, f"reference[{index}]")


def compute_paper_metrics(
    generated: Sequence[Array],
    sources: Sequence[Array],
    captions: Sequence[str],
    networks: Networks,
    reference: Sequence[Array] | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> MetricReport:
    """Table 1's FID, FVD, CLIP-T, CLIP-F, FVD-V and CLIP-V of re-rendered videos (definitions in the module doc).

    ``generated[i]`` is the re-rendering of ``sources[i]`` (same number of frames) described by ``captions[i]``;
    all are uint8 (T, H, W, 3). FID and FVD compare with ``reference`` if given, else with the sources. A metric
    whose network is absent, or whose inputs are too few or too short, is in ``skipped`` with the reason.
    """
    check_inputs(generated, sources, captions, reference)
    real, real_name = (sources, "source") if reference is None else (reference, "reference")
    found: dict[str, float | str] = {}
    for metric in METRICS:
        network = NETWORK_OF_METRIC[metric]
        if getattr(networks, network) is None:
            found[metric] = networks.unavailable.get(network, f"no {network} network given")

    # 1. FID: every frame of the results against every frame of the reference
    if networks.inception is not None:
        fake = np.concatenate(frame_features(networks.inception, generated, batch_size))
        true = np.concatenate(frame_features(networks.inception, real, batch_size))
        found["FID"] = _distance_or_reason(fake, true, ("generated", real_name), "frames")

    # 2. FVD and FVD-V: 16-frame clips of the results against those of the reference and of the sources
    if networks.i3d is not None:
        clips = f"clips of {FVD_CLIP_FRAMES} frames"
        fake = clip_features(networks.i3d, generated, batch_size)
        source = clip_features(networks.i3d, sources, batch_size)
        true = source if reference is None else clip_features(networks.i3d, reference, batch_size)
        found["FVD"] = _distance_or_reason(fake, true, ("generated", real_name), clips)
        found["FVD-V"] = _distance_or_reason(fake, source, ("generated", "source"), clips)

    # 3. CLIP-T, CLIP-F, CLIP-V: per video, then the mean over videos
    if networks.clip is not None:
        results = frame_features(networks.clip.images, generated, batch_size)
        originals = frame_features(networks.clip.images, sources, batch_size)
        texts = text_features(networks.clip.text, captions, batch_size)
        found["CLIP-T"] = float(np.mean([clip_t(frames, text) for frames, text in zip(results, texts, strict=True)]))
        shortest = min(len(frames) for frames in results)
        found["CLIP-F"] = (
            float(np.mean([clip_f(frames) for frames in results]))
            if shortest >= 2
            else f"needs videos of at least 2 frames, the shortest has {shortest}"
        )
        found["CLIP-V"] = float(np.mean([clip_v(a, b) for a, b in zip(results, originals, strict=True)]))

    return MetricReport(
        values={metric: found[metric] for metric in METRICS if isinstance(found[metric], float)},
        skipped={metric: found[metric] for metric in METRICS if isinstance(found[metric], str)},
    )
