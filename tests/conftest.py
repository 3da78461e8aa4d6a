"""Shared test fixtures: paths to the golden files."""

from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="session")
def official_cameras_path() -> Path:
    return GOLDEN / "official_camera_extrinsics.json"


@pytest.fixture(scope="session")
def golden_embeddings_path() -> Path:
    return GOLDEN / "recammaster_cam_embeddings_10types.json"
