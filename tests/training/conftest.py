"""The tiny MultiCamVideo tree of tests/data and a tiny ReCamMaster pipeline saved to disk, as users pass it."""

from tests.data.conftest import multicam_root  # noqa: F401
from tests.pipeline.conftest import pipeline_dir, source_video, tiny_pipeline  # noqa: F401

# the captioned dataset and its cache, shared by the cache and the fitting tests
from tests.training.test_cache import cached, dataset  # noqa: F401
