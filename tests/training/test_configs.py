"""The recipes in configs/ are valid: each passes its run's checks before any GPU time is spent on it."""

from pathlib import Path

import pytest

from recammaster.models.configs import TRANSFORMER_CONFIGS
from recammaster.training.fit import FitConfig
from recammaster.training.vae import VaeConfig

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_the_recipes_are_found():
    assert {"embedded.yaml", "embedded-vae.yaml", "table3.yaml", "embedded-4x4c-vae.yaml"} <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_each_recipe_passes_its_checks(path):
    if "-vae" in path.stem:
        VaeConfig.from_yaml(path).check()
    else:
        config = FitConfig.from_yaml(path)
        config.check()
        assert config.model_config in TRANSFORMER_CONFIGS
