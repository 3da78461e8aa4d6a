"""Shared test fixtures: paths to the golden files, a tiny real umT5-style tokenizer, and diffusers' attention
backend put back after each test."""

import sys
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerBase

from recammaster.cli import main
from recammaster.models.text_encoder import train_tokenizer

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def _process_attention_backend():
    """Setting a model's attention backend also sets diffusers' process-wide default (every model whose
    processors name none); put it back, so a test's kernel choice does not reach the next test's models."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    active = _AttentionBackendRegistry._active_backend
    yield
    _AttentionBackendRegistry.set_active_backend(active)


@pytest.fixture(scope="session")
def official_cameras_path() -> Path:
    return GOLDEN / "official_camera_extrinsics.json"


@pytest.fixture(scope="session")
def golden_embeddings_path() -> Path:
    return GOLDEN / "recammaster_cam_embeddings_10types.json"


CORPUS = [
    "A red car drives along a coastal road at sunset, waves below.",
    "The camera slowly pans to the left across a quiet mountain village.",
    "A person walks through a busy market street full of colourful stalls.",
    "Ein Hund läuft über die Wiese und springt über einen kleinen Bach.",
    "一只猫坐在窗台上, 看着窗外的雨。",
]


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerBase:
    """A tiny real umT5-style tokenizer: SentencePiece unigram, <pad>=0, </s>=1, <unk>=2, saved and reloaded."""
    loaded = train_tokenizer(CORPUS * 4, tmp_path_factory.mktemp("umt5-tokenizer"), vocab_size=100)
    assert (loaded.pad_token_id, loaded.eos_token_id, len(loaded) <= 100) == (0, 1, True)
    return loaded


@pytest.fixture
def run(monkeypatch, capsys):
    """Run the ``recammaster`` command in-process: returns (exit status, stdout, stderr)."""

    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["recammaster", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke
