"""The torch.compile-fused kernels render the same pictures as the plain ones (run apart: fusing is process-wide)."""

import subprocess
import sys

PROGRAM = """
import importlib
import numpy as np
from recammaster.data.synth.engine import make_scene, render_scene
render = importlib.import_module("recammaster.data.synth.render")
spec = make_scene(0, 1, 3)
plain = render_scene(spec, 32, depth=True)
plain_kernel = render._capsule_hits
render.fuse_kernels()
assert render._capsule_hits is not plain_kernel  # swapped for the compiled version
fused = render_scene(spec, 32, depth=True)
levels = np.abs(plain.images.astype(int) - fused.images.astype(int))
print(levels.max(), float(np.nanmax(np.abs(np.nan_to_num(plain.depth - fused.depth, posinf=0.0, neginf=0.0)))))
"""


def test_fused_kernels_render_the_same_images():
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=300, check=True)
    worst_level, worst_depth = result.stdout.split()
    assert int(worst_level) <= 1
    assert float(worst_depth) < 1e-3
