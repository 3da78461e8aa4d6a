"""The official model files: where they are on disk, and downloading them from the Hugging Face Hub.

ReCamMaster runs on two downloads (upstream README, "Inference", step 2; spec §4.2):

- ``Wan-AI/Wan2.1-T2V-1.3B``: the base DiT ``diffusion_pytorch_model.safetensors``, the umT5 encoder
  ``models_t5_umt5-xxl-enc-bf16.pth``, the VAE ``Wan2.1_VAE.pth`` and the tokenizer folder ``google/umt5-xxl/``.
  Upstream's ``download_wan2.1.py`` puts them in ``models/Wan-AI/Wan2.1-T2V-1.3B/``.
- ``KwaiVGI/ReCamMaster-Wan2.1``: the checkpoint ``step20000.ckpt``, which upstream expects in
  ``models/ReCamMaster/checkpoints/``.

Finding files never touches the network. A model folder may hold them in upstream's layout, flat, or as a hub
cache; without one, the huggingface_hub cache is searched. Downloading fails at once when the Hub cannot be reached
and says which files to fetch by hand and where to put them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars, httpx

from recammaster.errors import ModelFilesNotFoundError

logger = logging.getLogger(__name__)

WAN_REPO = "Wan-AI/Wan2.1-T2V-1.3B"
RECAMMASTER_REPO = "KwaiVGI/ReCamMaster-Wan2.1"
RECAMMASTER_FILE = "step20000.ckpt"

# What `snapshot_download` fetches of the Wan repo: the weights, the tokenizer and the small original config,
# not the repo's example videos and images. Shards and an index are accepted in case a repo ships them.
WAN_ALLOW_PATTERNS = [
    "diffusion_pytorch_model*.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "models_t5_umt5-xxl-enc-bf16.pth",
    "Wan2.1_VAE.pth",
    "config.json",
    "google/umt5-xxl/*",
]

# Upstream's layout inside its `models/` folder, which `--model-dir` downloads into.
UPSTREAM_WAN_DIR = PurePosixPath(WAN_REPO)
UPSTREAM_CHECKPOINT_DIR = PurePosixPath("ReCamMaster/checkpoints")

# A connection check before downloading: huggingface_hub's own first request (repo info) has no timeout, and its
# per-file requests retry five times. HF_HUB_ETAG_TIMEOUT (seconds) overrides it. On a silent network
# huggingface_hub 2 may first spend up to 3 s more on its best-effort agent-harness registry fetch.
HUB_CHECK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class OfficialWeights:
    """Paths of the official files, as the loaders in ``recammaster.models`` take them."""

    transformer: Path  # Wan2.1 DiT: diffusion_pytorch_model.safetensors (or its shard index)
    vae: Path  # Wan2.1_VAE.pth
    text_encoder: Path  # models_t5_umt5-xxl-enc-bf16.pth
    tokenizer: Path  # the google/umt5-xxl folder next to the text encoder
    recammaster_checkpoint: Path  # step20000.ckpt: the full DiT with camera layers


@dataclass(frozen=True)
class _File:
    """One official file: the ``OfficialWeights`` field it fills and where it lies in its Hub repo."""

    role: str
    repo_id: str
    names: tuple[str, ...]  # accepted paths inside the repo, first match wins; the first is what the repo holds
    size: str  # for messages; the DiT is 1.42 G fp32 parameters, the checkpoint bf16 expected (spec §2.6, unverified)
    folder: bool = False  # the role is the folder holding the file (the tokenizer), not the file

    @property
    def label(self) -> str:
        return f"{PurePosixPath(self.names[0]).parent}/" if self.folder else self.names[0]


# Any one of these marks the tokenizer folder, as `recammaster.models.text_encoder.load_tokenizer` accepts it.
_TOKENIZER_FILES = tuple(
    f"google/umt5-xxl/{name}" for name in ("tokenizer_config.json", "spiece.model", "tokenizer.json")
)
_TRANSFORMER_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json")
FILES = (  # in the order of the OfficialWeights fields
    _File("transformer", WAN_REPO, _TRANSFORMER_FILES, "about 5.7 GB"),
    _File("vae", WAN_REPO, ("Wan2.1_VAE.pth",), "about 0.5 GB"),
    _File("text_encoder", WAN_REPO, ("models_t5_umt5-xxl-enc-bf16.pth",), "about 11.4 GB"),
    _File("tokenizer", WAN_REPO, _TOKENIZER_FILES, "small", folder=True),
    _File("recammaster_checkpoint", RECAMMASTER_REPO, (RECAMMASTER_FILE,), "about 3 GB"),
)
REPOS = {WAN_REPO: UPSTREAM_WAN_DIR, RECAMMASTER_REPO: UPSTREAM_CHECKPOINT_DIR}  # repo id -> upstream folder


# ---------------------------------------------------------------------------------------------------------------
# Finding files (never the network)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """A place one repo's files may be: a plain folder, or the repo in a hub cache."""

    description: str
    find: Callable[[str], Path | None]  # path inside the repo -> file on disk


def _folder(path: Path) -> _Place:
    return _Place(str(path), lambda name: path / name if (path / name).is_file() else None)


def _hub_cache(repo_id: str, cache_dir: Path | None) -> _Place:
    cache = Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE)

    def find(name: str) -> Path | None:
        hit = try_to_load_from_cache(repo_id, name, cache_dir=cache)  # the snapshot `refs/main` points to
        return Path(hit) if isinstance(hit, str) else None

    return _Place(f"hub cache {cache / ('models--' + repo_id.replace('/', '--'))}", find)


def _places(model_dir: Path | None) -> dict[str, list[_Place]]:
    """Where each repo's files may be, in the order they are tried."""
    if model_dir is None:
        return {repo_id: [_hub_cache(repo_id, None)] for repo_id in REPOS}
    # `model_dir` may be upstream's `models/` folder or the repository holding it; a flat folder; or a hub cache.
    return {
        repo_id: [
            _folder(model_dir),
            _folder(model_dir / upstream),
            _folder(model_dir / "models" / upstream),
            _hub_cache(repo_id, model_dir),
        ]
        for repo_id, upstream in REPOS.items()
    }


@dataclass(frozen=True)
class _Search:
    found: dict[str, Path]  # role -> path
    missing: list[_File]
    looked_in: dict[str, list[str]]  # repo id -> place descriptions

    def weights(self) -> OfficialWeights:
        return OfficialWeights(**self.found)


def _look(place: _Place, file: _File) -> Path | None:
    path = next((hit for name in file.names if (hit := place.find(name)) is not None), None)
    return path.parent if path is not None and file.folder else path


def _search(places: dict[str, list[_Place]]) -> _Search:
    """Each repo's files from the first place that holds all of them, else from the one that holds the most."""
    found: dict[str, Path] = {}
    missing: list[_File] = []
    for repo_id, candidates in places.items():
        files = [file for file in FILES if file.repo_id == repo_id]
        hits = [{file.role: _look(place, file) for file in files} for place in candidates]
        best = max(hits, key=lambda hit: sum(path is not None for path in hit.values()))  # first of equals
        found.update({role: path for role, path in best.items() if path is not None})
        missing.extend(file for file in files if best[file.role] is None)
    looked_in = {repo_id: [place.description for place in candidates] for repo_id, candidates in places.items()}
    return _Search(found, missing, looked_in)


def _model_dir(model_dir: str | Path | None) -> Path | None:
    model_dir = None if model_dir is None else Path(model_dir)
    if model_dir is not None and model_dir.exists() and not model_dir.is_dir():
        raise ModelFilesNotFoundError(f"{model_dir}: is a file; --model-dir takes the folder that holds the models")
    return model_dir


def _no_such_folder(model_dir: Path) -> ModelFilesNotFoundError:
    return ModelFilesNotFoundError(
        f"{model_dir}: no such folder; run `recammaster download --model-dir {model_dir}` to download the model "
        "files there"
    )


def locate_official_files(model_dir: str | Path | None = None) -> dict[str, Path | None]:
    """Where each official file is (``None``: not found), by ``OfficialWeights`` field. Never uses the network."""
    model_dir = _model_dir(model_dir)
    if model_dir is not None and not model_dir.exists():
        raise _no_such_folder(model_dir)
    search = _search(_places(model_dir))
    return {file.role: search.found.get(file.role) for file in FILES}


def find_official_weights(
    model_dir: str | Path | None = None, *, missing_ok: bool | None = None
) -> OfficialWeights | None:
    """The official files in ``model_dir``, or in the huggingface_hub cache when it is ``None``. Never uses the network.

    ``model_dir`` may hold upstream's layout (``Wan-AI/Wan2.1-T2V-1.3B/...`` and
    ``ReCamMaster/checkpoints/step20000.ckpt``, directly or under ``models/``), all files flat in one folder, or a
    hub cache (``models--Wan-AI--Wan2.1-T2V-1.3B/...``, as ``download_official_weights(cache_dir=...)`` leaves it).
    Missing files return ``None`` when searching the hub cache and raise :class:`ModelFilesNotFoundError` naming
    them, the places searched and how to get them with an explicit ``model_dir``; ``missing_ok`` overrides that.
    """
    model_dir = _model_dir(model_dir)
    search = _search(_places(model_dir))
    if not search.missing:
        return search.weights()
    if missing_ok if missing_ok is not None else model_dir is None:
        return None
    if model_dir is not None and not model_dir.exists():
        raise _no_such_folder(model_dir)
    where = model_dir if model_dir is not None else Path(constants.HF_HUB_CACHE)
    lacking = " and ".join(
        f"{', '.join(file.label for file in files)} (looked in {', '.join(search.looked_in[repo_id])})"
        for repo_id, files in _by_repo(search.missing).items()
    )
    command = "recammaster download" + ("" if model_dir is None else f" --model-dir {model_dir}")
    raise ModelFilesNotFoundError(
        f"{where}: missing {lacking}. Run `{command}`, or {_by_hand(search.missing, model_dir)}"
    )


def _by_repo(files: list[_File]) -> dict[str, list[_File]]:
    grouped: dict[str, list[_File]] = {}
    for file in files:
        grouped.setdefault(file.repo_id, []).append(file)
    return grouped


def _by_hand(files: list[_File], model_dir: Path | None) -> str:
    """Which files to download from where, and where they go under ``--model-dir``."""
    root = model_dir if model_dir is not None else Path("<model_dir>")
    steps = [
        f"{', '.join(f'{file.label} ({file.size})' for file in group)} from https://huggingface.co/{repo_id} "
        f"into {root / REPOS[repo_id]}/"
        for repo_id, group in _by_repo(files).items()
    ]
    hint = "" if model_dir is not None else f" and pass --model-dir {root}"
    return f"download {' and '.join(steps)}{hint}"


# ---------------------------------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------------------------------


def _offline_reason() -> str | None:
    """Why no download may be tried, or None. huggingface_hub reads these variables at import; read them again."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").upper() in constants.ENV_VARS_TRUE_VALUES:
            return f"{variable} is set"
    return "huggingface_hub is in offline mode" if constants.HF_HUB_OFFLINE else None


def _unreachable(reason: str, missing: list[_File], model_dir: Path | None) -> ModelFilesNotFoundError:
    root = model_dir if model_dir is not None else "<model_dir>"
    return ModelFilesNotFoundError(
        f"cannot download the model files: {reason}. On a machine with network, run `recammaster download "
        f"--model-dir {root}` and copy that folder here, or {_by_hand(missing, model_dir)}"
    )


# What the Hub raises when it cannot be reached or does not answer (httpx is httpx2 under huggingface_hub 2).
_HUB_ERRORS = (httpx.TransportError, OfflineModeIsEnabled, HfHubHTTPError, LocalEntryNotFoundError)


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _check_hub(repo_id: str) -> None:
    """One quick request, so that a missing or blocked network fails now instead of after minutes of retries."""
    timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or HUB_CHECK_TIMEOUT_S)
    HfApi().model_info(repo_id, timeout=timeout)


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    was_disabled = are_progress_bars_disabled()
    if not enabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


def download_official_weights(
    cache_dir: str | Path | None = None, *, model_dir: str | Path | None = None, progress: bool = True
) -> OfficialWeights:
    """Download whatever official files are missing, and return where all of them are.

    Files go to the huggingface_hub cache (``cache_dir``, default ``HF_HUB_CACHE``), or with ``model_dir`` into
    upstream's layout there: ``<model_dir>/Wan-AI/Wan2.1-T2V-1.3B/`` and ``<model_dir>/ReCamMaster/checkpoints/``.
    Of the Wan repo only :data:`WAN_ALLOW_PATTERNS` is fetched (about 17.6 GB), plus the 3 GB checkpoint. A repo
    whose files are all present already is not contacted. Downloads resume: huggingface_hub keeps partial files
    and skips finished ones, so re-run after an interruption.

    Raises :class:`ModelFilesNotFoundError` at once, naming the files to fetch by hand and where they go, when
    ``HF_HUB_OFFLINE`` is set or the Hub does not answer within ``HF_HUB_ETAG_TIMEOUT`` (default 5) seconds.
    """
    if cache_dir is not None and model_dir is not None:
        raise ValueError("pass cache_dir (a hub cache) or model_dir (upstream's folder layout), not both")
    model_dir = _model_dir(model_dir)
    places = _places(model_dir) if cache_dir is None else {repo: [_hub_cache(repo, Path(cache_dir))] for repo in REPOS}
    search = _search(places)
    if not search.missing:
        return search.weights()

    repos = list(_by_repo(search.missing))
    if (reason := _offline_reason()) is not None:
        raise _unreachable(f"{reason}, so nothing may be downloaded", search.missing, model_dir)
    try:
        _check_hub(repos[0])
    except _HUB_ERRORS as error:
        raise _unreachable(
            f"cannot reach {repos[0]} on the Hugging Face Hub ({_first_line(error)})", search.missing, model_dir
        ) from error

    try:
        with _progress_bars(progress):
            for repo_id in repos:
                local_dir = None if model_dir is None else model_dir / REPOS[repo_id]
                logger.info("downloading %s into %s", repo_id, local_dir or cache_dir or constants.HF_HUB_CACHE)
                if repo_id == WAN_REPO:
                    folder = snapshot_download(
                        WAN_REPO, allow_patterns=WAN_ALLOW_PATTERNS, cache_dir=cache_dir, local_dir=local_dir
                    )
                else:
                    folder = Path(
                        hf_hub_download(repo_id, RECAMMASTER_FILE, cache_dir=cache_dir, local_dir=local_dir)
                    ).parent
                places[repo_id] = [_folder(Path(folder))]
    except _HUB_ERRORS as error:
        raise _unreachable(
            f"the download stopped ({_first_line(error)}); run it again to resume", search.missing, model_dir
        ) from error

    search = _search(places)
    if search.missing:  # the repo no longer holds a file under the name upstream uses
        lacking = "; ".join(
            f"{', '.join(file.label for file in files)} in {places[repo_id][0].description} "
            f"(see https://huggingface.co/{repo_id})"
            for repo_id, files in _by_repo(search.missing).items()
        )
        raise ModelFilesNotFoundError(f"downloaded, but found no {lacking}")
    return search.weights()


EMBEDDED_MODEL_DIR = Path(__file__).parent / "assets" / "embedded"
EXAMPLE_DIR = Path(__file__).parent / "assets" / "example"  # the bundled clip (example.mp4) and its caption


def embedded_model_dir() -> Path | None:
    """The small model shipped inside the package (a saved pipeline), or None in a build without it."""
    return EMBEDDED_MODEL_DIR if (EMBEDDED_MODEL_DIR / "model_index.json").is_file() else None


def example_clip() -> tuple[Path, str]:
    """The bundled synthetic example clip (81 frames, 128x128) and its caption: what ``demo`` re-films."""
    caption = json.loads((EXAMPLE_DIR / "example.json").read_text(encoding="utf-8"))["caption"]
    return EXAMPLE_DIR / "example.mp4", caption
