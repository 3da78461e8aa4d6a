"""The package's layers: data flows one way, so no module imports a layer above its own (docs/ARCHITECTURE.md)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "recammaster"
LAYERS = {  # lower numbers sit lower; a module may import its own layer and those below
    "errors": 0, "fileio": 0,
    "cameras": 1,
    "video": 2, "hub": 2, "models": 2,
    "pipeline": 3,
    "data": 4,
    "training": 5, "evaluation": 5,
    "serve": 6,
    "cli": 7,
}  # fmt: skip


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):  # function-level imports count too
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("recammaster."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("recammaster."))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0].removesuffix(".py") in LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    own = LAYERS[path.relative_to(PACKAGE).parts[0].removesuffix(".py")]
    upward = sorted(m for m in _imports(path) if LAYERS.get(_layer(m), -1) > own)
    assert not upward, f"{path.relative_to(PACKAGE)} imports {upward} from a higher layer"


def test_every_top_level_module_has_a_layer():
    names = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    assert names - {"__init__", "__pycache__", "assets"} <= set(LAYERS)  # assets: data files, no code


def test_training_and_the_command_import_without_pyav():
    """The GPU machine trains without FFmpeg bindings: PyAV loads only when a video is read or written."""
    import subprocess
    import sys

    modules = "recammaster.training.fit, recammaster.training.vae, recammaster.cli"
    code = f"import sys; sys.modules['av'] = None; import {modules}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
