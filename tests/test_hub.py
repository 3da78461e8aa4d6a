"""Finding and downloading the official files: every layout, exact messages, and never the network.

Model folders hold empty placeholder files (discovery only checks presence). huggingface_hub's network calls are
replaced by fakes that fail the test if called, unless a test installs its own.
"""

import time
from dataclasses import fields
from pathlib import Path

import pytest
from huggingface_hub import constants
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.utils import are_progress_bars_disabled, filter_repo_objects, httpx
from typer.testing import CliRunner

from recammaster import hub
from recammaster.cli.download import app
from recammaster.errors import ModelFilesNotFoundError
from recammaster.hub import OfficialWeights, download_official_weights, find_official_weights

TOKENIZER = ["spiece.model", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
WAN_FILES = [
    "config.json",
    "diffusion_pytorch_model.safetensors",
    "models_t5_umt5-xxl-enc-bf16.pth",
    "Wan2.1_VAE.pth",
    *(f"google/umt5-xxl/{name}" for name in TOKENIZER),
]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def touch(folder: Path, names, *, skip=()) -> Path:
    for name in names:
        if name not in skip:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"")
    return folder


def cached_repo(cache: Path, repo_id: str, names) -> Path:
    """The hub cache layout: models--org--name/snapshots/<commit>/... plus refs/main naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    touch(repo / "refs", ["main"])
    (repo / "refs" / "main").write_text(COMMIT)
    return touch(repo / "snapshots" / COMMIT, names)


def weights(wan: Path, checkpoint_dir: Path) -> OfficialWeights:
    return OfficialWeights(
        transformer=wan / "diffusion_pytorch_model.safetensors",
        vae=wan / "Wan2.1_VAE.pth",
        text_encoder=wan / "models_t5_umt5-xxl-enc-bf16.pth",
        tokenizer=wan / "google" / "umt5-xxl",
        recammaster_checkpoint=checkpoint_dir / "step20000.ckpt",
    )


def upstream_models(root: Path, *, skip=()) -> Path:
    """Upstream's `models/` folder, as `download_wan2.1.py` and its README leave it."""
    models = root / "models"
    touch(models / "Wan-AI" / "Wan2.1-T2V-1.3B", WAN_FILES, skip=skip)
    touch(models / "ReCamMaster" / "checkpoints", ["step20000.ckpt"], skip=skip)
    return models


def fail_network(*args, **kwargs):
    raise AssertionError(f"network call {args} {kwargs}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """No real Hub, no real cache, no offline mode inherited from the environment."""
    monkeypatch.setattr(hub.HfApi, "model_info", fail_network)
    monkeypatch.setattr(hub, "snapshot_download", fail_network)
    monkeypatch.setattr(hub, "hf_hub_download", fail_network)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_ETAG_TIMEOUT", raising=False)


# ---------------------------------------------------------------------------------------------------------------
# The file table
# ---------------------------------------------------------------------------------------------------------------


def test_file_table_fills_every_field():
    assert [file.role for file in hub.FILES] == [field.name for field in fields(OfficialWeights)]


def test_allow_patterns_fetch_every_wan_file_and_nothing_else():
    repo_files = [*WAN_FILES, "README.md", "assets/logo.png", "examples/i2v_input.JPG", "LICENSE.txt"]
    assert sorted(filter_repo_objects(repo_files, allow_patterns=hub.WAN_ALLOW_PATTERNS)) == sorted(WAN_FILES)


# ---------------------------------------------------------------------------------------------------------------
# Finding files
# ---------------------------------------------------------------------------------------------------------------


def test_finds_upstream_layout_from_models_or_the_repository(tmp_path):
    models = upstream_models(tmp_path)
    expected = weights(models / "Wan-AI" / "Wan2.1-T2V-1.3B", models / "ReCamMaster" / "checkpoints")
    assert find_official_weights(models) == expected
    assert find_official_weights(str(tmp_path)) == expected


def test_finds_a_flat_folder(tmp_path):
    touch(tmp_path, [*WAN_FILES, "step20000.ckpt"])
    assert find_official_weights(tmp_path) == weights(tmp_path, tmp_path)


def test_finds_a_hub_cache_given_as_model_dir(tmp_path):
    wan = cached_repo(tmp_path, hub.WAN_REPO, WAN_FILES)
    checkpoint_dir = cached_repo(tmp_path, hub.RECAMMASTER_REPO, ["step20000.ckpt"])
    assert find_official_weights(tmp_path) == weights(wan, checkpoint_dir)


def test_finds_a_sharded_transformer_by_its_index(tmp_path):
    shards = ["diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model-00001-of-00002.safetensors"]
    touch(tmp_path, [*WAN_FILES, *shards, "step20000.ckpt"], skip={"diffusion_pytorch_model.safetensors"})
    assert find_official_weights(tmp_path).transformer == tmp_path / "diffusion_pytorch_model.safetensors.index.json"


def test_the_first_complete_wan_folder_wins(tmp_path):
    models = upstream_models(tmp_path)
    touch(models, ["Wan2.1_VAE.pth"])  # a stray file in the flat place does not split the set
    assert find_official_weights(models).vae == models / "Wan-AI" / "Wan2.1-T2V-1.3B" / "Wan2.1_VAE.pth"


def test_missing_files_are_named_with_where_they_were_looked_for(tmp_path):
    models = upstream_models(
        tmp_path, skip={"Wan2.1_VAE.pth", "step20000.ckpt", *(f"google/umt5-xxl/{n}" for n in TOKENIZER)}
    )
    with pytest.raises(ModelFilesNotFoundError) as error:
        find_official_weights(models)
    assert str(error.value) == (
        f"{models}: missing Wan2.1_VAE.pth, google/umt5-xxl/ (looked in {models}, {models}/Wan-AI/Wan2.1-T2V-1.3B, "
        f"{models}/models/Wan-AI/Wan2.1-T2V-1.3B, hub cache {models}/models--Wan-AI--Wan2.1-T2V-1.3B) and "
        f"step20000.ckpt (looked in {models}, {models}/ReCamMaster/checkpoints, "
        f"{models}/models/ReCamMaster/checkpoints, hub cache {models}/models--KwaiVGI--ReCamMaster-Wan2.1). "
        f"Run `recammaster download --model-dir {models}`, "
        "or download Wan2.1_VAE.pth (about 0.5 GB), google/umt5-xxl/ (small) from "
        f"https://huggingface.co/Wan-AI/Wan2.1-T2V-1.3B into {models}/Wan-AI/Wan2.1-T2V-1.3B/ and step20000.ckpt "
        f"(about 3 GB) from https://huggingface.co/KwaiVGI/ReCamMaster-Wan2.1 into {models}/ReCamMaster/checkpoints/"
    )
    assert find_official_weights(models, missing_ok=True) is None


def test_model_dir_that_does_not_exist_or_is_a_file(tmp_path):
    with pytest.raises(ModelFilesNotFoundError) as error:
        find_official_weights(tmp_path / "nowhere")
    assert str(error.value) == (
        f"{tmp_path}/nowhere: no such folder; run `recammaster download --model-dir {tmp_path}/nowhere` to download "
        "the model files there"
    )
    with pytest.raises(ModelFilesNotFoundError, match="nowhere: no such folder"):
        hub.locate_official_files(tmp_path / "nowhere")
    assert find_official_weights(tmp_path / "nowhere", missing_ok=True) is None
    with pytest.raises(ModelFilesNotFoundError) as error:
        find_official_weights(touch(tmp_path, ["model.ckpt"]) / "model.ckpt")
    assert str(error.value) == f"{tmp_path}/model.ckpt: is a file; --model-dir takes the folder that holds the models"


def test_finds_the_hub_cache_without_network(tmp_path):
    cache = Path(constants.HF_HUB_CACHE)
    assert find_official_weights() is None
    wan = cached_repo(cache, hub.WAN_REPO, WAN_FILES)
    assert find_official_weights() is None  # the checkpoint is still missing
    with pytest.raises(ModelFilesNotFoundError) as error:
        find_official_weights(missing_ok=False)
    assert str(error.value) == (
        f"{cache}: missing step20000.ckpt (looked in hub cache {cache}/models--KwaiVGI--ReCamMaster-Wan2.1). "
        "Run `recammaster download`, or download step20000.ckpt (about 3 GB) from "
        "https://huggingface.co/KwaiVGI/ReCamMaster-Wan2.1 into <model_dir>/ReCamMaster/checkpoints/ and pass "
        "--model-dir <model_dir>"
    )
    checkpoint_dir = cached_repo(cache, hub.RECAMMASTER_REPO, ["step20000.ckpt"])
    assert find_official_weights() == weights(wan, checkpoint_dir)
    assert hub.locate_official_files()["tokenizer"] == wan / "google" / "umt5-xxl"


# ---------------------------------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------------------------------


def test_offline_mode_fails_at_once_naming_repos_and_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelFilesNotFoundError) as error:
        download_official_weights(model_dir=tmp_path / "models")
    assert time.perf_counter() - start < 1.0
    models = tmp_path / "models"
    assert str(error.value) == (
        "cannot download the model files: HF_HUB_OFFLINE is set, so nothing may be downloaded. On a machine with "
        f"network, run `recammaster download --model-dir {models}` and copy that folder here, or download "
        "diffusion_pytorch_model.safetensors (about 5.7 GB), Wan2.1_VAE.pth (about 0.5 GB), "
        "models_t5_umt5-xxl-enc-bf16.pth (about 11.4 GB), google/umt5-xxl/ (small) from "
        f"https://huggingface.co/Wan-AI/Wan2.1-T2V-1.3B into {models}/Wan-AI/Wan2.1-T2V-1.3B/ and step20000.ckpt "
        f"(about 3 GB) from https://huggingface.co/KwaiVGI/ReCamMaster-Wan2.1 into {models}/ReCamMaster/checkpoints/"
    )


def test_offline_mode_still_returns_files_already_there(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = upstream_models(tmp_path)
    expected = weights(models / "Wan-AI" / "Wan2.1-T2V-1.3B", models / "ReCamMaster" / "checkpoints")
    assert download_official_weights(model_dir=models) == expected


def test_unreachable_hub_fails_at_once_with_a_short_timeout(monkeypatch):
    timeouts = []

    def model_info(self, repo_id, *, timeout=None, **kwargs):
        timeouts.append((repo_id, timeout))
        raise httpx.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(hub.HfApi, "model_info", model_info)
    with pytest.raises(ModelFilesNotFoundError) as error:
        download_official_weights()
    assert timeouts == [(hub.WAN_REPO, hub.HUB_CHECK_TIMEOUT_S)]
    assert str(error.value).startswith(
        "cannot download the model files: cannot reach Wan-AI/Wan2.1-T2V-1.3B on the Hugging Face Hub "
        "([Errno -2] Name or service not known). "
        "On a machine with network, run `recammaster download --model-dir <model_dir>` and copy that folder here, "
        "or download diffusion_pytorch_model.safetensors (about 5.7 GB), "
    )
    assert str(error.value).endswith("into <model_dir>/ReCamMaster/checkpoints/ and pass --model-dir <model_dir>")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    with pytest.raises(ModelFilesNotFoundError):
        download_official_weights()
    assert timeouts[-1] == (hub.WAN_REPO, 2.0)


def test_a_download_cut_off_says_it_resumes(monkeypatch):
    monkeypatch.setattr(hub.HfApi, "model_info", lambda self, repo_id, **kwargs: None)

    def snapshot_download(repo_id, **kwargs):
        raise LocalEntryNotFoundError("An error happened while downloading.\nPlease check your connection.")

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    with pytest.raises(ModelFilesNotFoundError) as error:
        download_official_weights()
    assert str(error.value).startswith(
        "cannot download the model files: the download stopped (An error happened while downloading.); run it "
        "again to resume. On a machine with network, "
    )


@pytest.fixture
def fake_hub(monkeypatch):
    """snapshot_download and hf_hub_download that write placeholders where the real ones would, and record calls."""
    calls = []

    def destination(repo_id, cache_dir, local_dir, names):
        if local_dir is not None:
            return touch(Path(local_dir), names)
        return cached_repo(Path(cache_dir or constants.HF_HUB_CACHE), repo_id, names)

    def snapshot_download(repo_id, *, allow_patterns=None, cache_dir=None, local_dir=None):
        calls.append(("snapshot_download", repo_id, allow_patterns, cache_dir, local_dir, are_progress_bars_disabled()))
        return str(destination(repo_id, cache_dir, local_dir, WAN_FILES))

    def hf_hub_download(repo_id, filename, *, cache_dir=None, local_dir=None):
        calls.append(("hf_hub_download", repo_id, filename, cache_dir, local_dir, are_progress_bars_disabled()))
        return str(destination(repo_id, cache_dir, local_dir, [filename]) / filename)

    monkeypatch.setattr(hub.HfApi, "model_info", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(hub, "hf_hub_download", hf_hub_download)
    return calls


def test_download_into_the_hub_cache_then_found_there(fake_hub):
    cache = Path(constants.HF_HUB_CACHE)
    downloaded = download_official_weights(progress=False)
    assert downloaded == weights(
        cache / "models--Wan-AI--Wan2.1-T2V-1.3B" / "snapshots" / COMMIT,
        cache / "models--KwaiVGI--ReCamMaster-Wan2.1" / "snapshots" / COMMIT,
    )
    assert fake_hub == [
        ("snapshot_download", "Wan-AI/Wan2.1-T2V-1.3B", hub.WAN_ALLOW_PATTERNS, None, None, True),
        ("hf_hub_download", "KwaiVGI/ReCamMaster-Wan2.1", "step20000.ckpt", None, None, True),
    ]
    assert not are_progress_bars_disabled()
    assert find_official_weights() == downloaded


def test_download_into_a_given_cache_dir(fake_hub, tmp_path):
    downloaded = download_official_weights(tmp_path / "cache")
    assert [call[3] for call in fake_hub] == [tmp_path / "cache"] * 2
    assert find_official_weights(tmp_path / "cache") == downloaded


def test_download_into_model_dir_uses_upstream_layout(fake_hub, tmp_path):
    models = tmp_path / "models"
    downloaded = download_official_weights(model_dir=models)
    assert downloaded == weights(models / "Wan-AI" / "Wan2.1-T2V-1.3B", models / "ReCamMaster" / "checkpoints")
    assert [(call[1], call[4]) for call in fake_hub] == [
        ("Wan-AI/Wan2.1-T2V-1.3B", models / "Wan-AI" / "Wan2.1-T2V-1.3B"),
        ("KwaiVGI/ReCamMaster-Wan2.1", models / "ReCamMaster" / "checkpoints"),
    ]
    assert fake_hub[0][2] == hub.WAN_ALLOW_PATTERNS
    assert find_official_weights(models) == downloaded


def test_download_fetches_only_what_is_missing(fake_hub, tmp_path):
    touch(tmp_path, [*WAN_FILES, "step20000.ckpt"], skip={"step20000.ckpt"})  # Wan flat, checkpoint missing
    downloaded = download_official_weights(model_dir=tmp_path)
    assert [call[:3] for call in fake_hub] == [("hf_hub_download", "KwaiVGI/ReCamMaster-Wan2.1", "step20000.ckpt")]
    assert downloaded == weights(tmp_path, tmp_path / "ReCamMaster" / "checkpoints")
    fake_hub.clear()
    assert download_official_weights(model_dir=tmp_path) == downloaded
    assert fake_hub == []


def test_download_names_files_the_repo_no_longer_holds(fake_hub, monkeypatch, tmp_path):
    def snapshot_download(repo_id, *, allow_patterns=None, cache_dir=None, local_dir=None):
        return str(touch(Path(local_dir), WAN_FILES, skip={"Wan2.1_VAE.pth"}))

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    with pytest.raises(ModelFilesNotFoundError) as error:
        download_official_weights(model_dir=tmp_path)
    assert str(error.value) == (
        f"downloaded, but found no Wan2.1_VAE.pth in {tmp_path}/Wan-AI/Wan2.1-T2V-1.3B "
        "(see https://huggingface.co/Wan-AI/Wan2.1-T2V-1.3B)"
    )


def test_download_refuses_a_cache_dir_and_a_model_dir(tmp_path):
    with pytest.raises(ValueError, match=r"pass cache_dir \(a hub cache\) or model_dir"):
        download_official_weights(tmp_path / "cache", model_dir=tmp_path / "models")


# ---------------------------------------------------------------------------------------------------------------
# `recammaster download`
# ---------------------------------------------------------------------------------------------------------------


def test_cli_check_shows_where_each_file_is(tmp_path):
    models = upstream_models(tmp_path)
    result = CliRunner().invoke(app, ["--check", "--model-dir", str(models)])
    assert result.exit_code == 0, result.output
    wan = models / "Wan-AI" / "Wan2.1-T2V-1.3B"
    assert result.output.splitlines() == [
        f"transformer             {wan}/diffusion_pytorch_model.safetensors",
        f"vae                     {wan}/Wan2.1_VAE.pth",
        f"text_encoder            {wan}/models_t5_umt5-xxl-enc-bf16.pth",
        f"tokenizer               {wan}/google/umt5-xxl",
        f"recammaster_checkpoint  {models}/ReCamMaster/checkpoints/step20000.ckpt",
    ]


def test_cli_check_names_missing_files_and_fails(tmp_path):
    models = upstream_models(tmp_path, skip={"step20000.ckpt"})
    result = CliRunner().invoke(app, ["--check", "--model-dir", str(models)])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "recammaster_checkpoint  missing"
    assert isinstance(result.exception, ModelFilesNotFoundError)
    assert str(result.exception).startswith(f"{models}: missing step20000.ckpt (looked in {models}, ")


def test_cli_download_prints_the_paths(fake_hub, tmp_path):
    result = CliRunner().invoke(app, ["--model-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        f"recammaster_checkpoint  {tmp_path}/ReCamMaster/checkpoints/step20000.ckpt"
    )


def test_cli_refuses_a_file_as_model_dir_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(touch(tmp_path, ["x.ckpt"]))
    result = CliRunner().invoke(app, ["--model-dir", "x.ckpt"])
    assert result.exit_code == 2
    assert "Invalid value for '--model-dir': dir 'x.ckpt' is a file." in result.output


def test_cli_help_has_examples():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "recammaster download --model-dir models" in result.output
    assert "--check" in result.output
