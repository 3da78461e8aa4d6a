"""The tiny MultiCamVideo tree of tests/data and a tiny ReCamMaster pipeline saved to disk, as users pass it."""

from pathlib import Path

import pytest
import torch

from recammaster.pipeline import ReCamMasterPipeline
from tests.data.conftest import multicam_root  # noqa: F401
from tests.pipeline.conftest import source_video, tiny_components  # noqa: F401


@pytest.fixture(scope="session")
def pipeline_dir(tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``save_pretrained`` folder of a tiny random pipeline, checked to load back with the same weights."""
    folder = tmp_path_factory.mktemp("tiny-pipeline")
    components = tiny_components(tokenizer)
    ReCamMasterPipeline(**components).save_pretrained(folder)
    loaded = ReCamMasterPipeline.load(folder, torch_dtype=torch.float32)
    for name in ("text_encoder", "vae", "transformer"):
        saved, back = components[name].state_dict(), getattr(loaded, name).state_dict()
        assert saved.keys() == back.keys(), name
        assert all(torch.equal(saved[key], back[key]) for key in saved), name
    return folder


@pytest.fixture(scope="session")
def tiny_pipeline(pipeline_dir: Path) -> ReCamMasterPipeline:
    """The saved pipeline loaded back in float32 on the CPU, as ``train data-process --device cpu`` loads it."""
    return ReCamMasterPipeline.load(pipeline_dir, torch_dtype=torch.float32)


# the captioned dataset and its cache, shared by the cache and the fitting tests
from tests.training.test_cache import cached, dataset  # noqa: E402, F401
